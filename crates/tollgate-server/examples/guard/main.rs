//! Guarding your own axum routes with tollgate tokens, in process.
//!
//! ```text
//! cargo run -p tollgate-server --example guard            # serves on 127.0.0.1:3000
//! GUARD_LISTEN=127.0.0.1:0 GUARD_DB="$YOUR_DATABASE_FILE" cargo run -p tollgate-server --example guard
//! ```
//!
//! It opens (or creates) a SQLite database, issues a demo token restricted to the `search` tool,
//! prints it with curl commands, and serves until Ctrl-C.

mod app;

use std::net::SocketAddr;

use tollgate::{
    Actor, AuditEvent, Clock, Description, NewServiceAccount, NewToken, OwnerId, Principal, ServiceAccountId,
    SystemClock, TokenManager, TokenName, ToolList, Username,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = std::env::var("GUARD_DB").unwrap_or_else(|_| "./tollgate.db".to_owned());
    let listen = std::env::var("GUARD_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let store = tollgate::open(&format!("sqlite://{database}")).await?;
    let key = tollgate::load_or_create_key_file(format!("{database}.key").as_ref())?;
    let tokens = TokenManager::builder(std::sync::Arc::clone(&store), key.hasher()?).build();

    // Every token has an owner: here a service account named "guard-demo", created on first run.
    let name = Username::parse_field("name", "guard-demo")?;
    let owner = match store.owner_by_name(&name).await? {
        Some(owner) => owner.id,
        None => {
            let id = ServiceAccountId::generate();
            let now = SystemClock.now();
            let account = NewServiceAccount { name, description: Description::parse("the guard example")? };
            let insert = tollgate::ServiceAccountInsert { id, account, created_at: now };
            let event = AuditEvent::new(Actor::cli(), "service_account.create", id, now);
            store.insert_service_account(&insert, &event).await?;
            OwnerId::ServiceAccount(id)
        }
    };
    let mut demo = NewToken::new(TokenName::parse("guard example")?, owner);
    demo.allowed_tools = ToolList::parse(&["search"])?;
    let created = tokens.create(&Principal::Operator, demo).await?;

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    println!("guarded app on http://{address}");
    println!("demo token (allowed tool: search): {}", created.secret.expose());
    println!("  curl -H 'Authorization: Bearer {}' http://{address}/search", created.secret.expose());
    println!(
        "  curl -H 'Authorization: Bearer {}' http://{address}/me   # 403 tool_not_allowed",
        created.secret.expose()
    );
    println!("  curl http://{address}/search                             # 401 missing_credential");

    let router = app::app(tokens.clone());
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    tokens.flush().await?;
    Ok(())
}

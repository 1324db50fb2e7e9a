//! Embedding the HTTP control API from its docs alone: `app(AppState)` over an in-memory database,
//! served on a real socket, an admin token created with the library, then the API used over HTTP: create a
//! token, verify it, revoke it, see it refused. Run: `cargo run -p tollgate-server --example control_api`.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::{
    Caller, Description, JwtKeys, KeyId, Metering, NewServiceAccount, NewToken, OwnerId, Permission, Principal,
    TokenHasher, TokenManager, TokenName, UserService, Username,
};
use tollgate_server::AppState;

/// One HTTP/1.1 request on a fresh connection; the status and the JSON body.
async fn call(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: example\r\nAuthorization: Bearer {bearer}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let json = answer.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok());
    (status, json.unwrap_or(Value::Null))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = tollgate::open("sqlite::memory:").await?;
    let metering = Metering::builder(Arc::clone(&store)).start().await?;
    let tokens =
        TokenManager::builder(store, TokenHasher::new(KeyId(1), &[7u8; 32])?).metering(metering.clone()).build();
    let users = UserService::builder(&tokens, JwtKeys::new("k1", &[9u8; 32])?, TokenHasher::new(KeyId(1), &[8u8; 32])?)
        .build()?;

    // The first admin credential comes from the library (the CLI's bootstrap does the same).
    let account = NewServiceAccount { name: Username::parse("operator")?, description: Description::default() };
    let owner = OwnerId::ServiceAccount(users.create_service_account(&Caller::operator(), account).await?.id);
    let mut admin = NewToken::new(TokenName::parse("admin")?, owner);
    admin.permission = Permission::Admin;
    let admin = tokens.create(&Principal::Operator, admin).await?.secret.expose().to_owned();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = tollgate_server::app(AppState::new(tokens, users, metering));
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).await.expect("serve");
    });
    println!("control API on http://{address}");

    let (status, created) = call(address, "POST", "/v1/tokens", &admin, Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, 201, "{created}");
    let (id, secret) = (created["id"].as_str().unwrap_or_default(), created["token"].as_str().unwrap_or_default());
    println!("created {id}; its secret is in this answer only");
    let (status, verified) = call(address, "GET", "/v1/auth/verify", secret, None).await;
    println!("verify: {status} {}", verified["token_id"]);
    let (status, _) = call(address, "POST", &format!("/v1/tokens/{id}/revoke"), &admin, Some(json!({}))).await;
    assert_eq!(status, 200);
    let (status, refused) = call(address, "GET", "/v1/auth/verify", secret, None).await;
    println!("after revoke: {status} {}", refused["code"]);
    assert_eq!(status, 401);
    Ok(())
}

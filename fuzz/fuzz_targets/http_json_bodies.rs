//! Fuzzes every JSON request body the server accepts, through the real router over a real SQLite
//! store (built once, in a temporary directory).
//!
//! The first input byte picks an operation from the route table's operations that take a body
//! (`tollgate_server::fuzzing::json_body_operations`); the rest is sent as its body with an admin
//! bearer token. Path parameters name real records made at start-up (or well-formed unknown ids).
//! Properties: no panic, and never a 5xx answer other than 503 `timeout` on an overloaded machine.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tollgate::{
    AgentName, AgentService, Caller, Description, Email, JwtKeys, KeyId, ManualClock, MasterKeys, Metering, NewAgent,
    NewProject, NewServiceAccount, NewToken, NewUser, OwnerId, Password, Permission, Principal, ProjectName, Role,
    SqliteOptions, SqliteStore, Timestamp, TokenHasher, TokenManager, TokenName, UserService, Username,
};
use tollgate_server::{App, AppState, ServerSettings};
use tower::ServiceExt as _;

/// The app with every request coming from one peer address.
type PeerApp = <MockConnectInfo<SocketAddr> as tower::Layer<App>>::Service;

struct Server {
    runtime: tokio::runtime::Runtime,
    router: PeerApp,
    operations: Vec<(Method, String)>,
    bearer: String,
    _directory: tempfile::TempDir,
}

fn name(text: &str) -> Username {
    Username::parse(text).expect("valid name")
}

/// The app over a fresh SQLite store, the records path parameters name, and an admin token.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let directory = tempfile::tempdir().expect("temp dir");
        let (router, operations, bearer) = runtime.block_on(build(&directory));
        Server { runtime, router, operations, bearer, _directory: directory }
    })
}

async fn build(directory: &tempfile::TempDir) -> (PeerApp, Vec<(Method, String)>, String) {
    let db_file = directory.path().join("tollgate.db");
    let sqlite = SqliteStore::open(&db_file, &SqliteOptions::default()).await.expect("open sqlite");
    let store: Arc<dyn tollgate::Store> = Arc::new(sqlite);
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_micros(1_893_456_000_000_000)));
    let hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).expect("hasher");
    let metering = Metering::builder(Arc::clone(&store)).clock(clock.clone()).start().await.expect("metering");
    let tokens =
        TokenManager::builder(Arc::clone(&store), hasher).clock(clock.clone()).metering(metering.clone()).build();
    let jwt_keys = JwtKeys::new("fuzz", &[7u8; 32]).expect("jwt keys");
    let refresh_hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).expect("hasher");
    let users = UserService::builder(&tokens, jwt_keys, refresh_hasher)
        .clock(clock.clone())
        .insecure_bcrypt_cost_for_tests(4)
        .build()
        .expect("user service");
    let vault = MasterKeys::load_or_create(&directory.path().join("fuzz.vault.key")).expect("vault key");
    let agents = AgentService::builder(&tokens, vault).build();
    let operator = Caller::operator();

    let account = |text: &str| NewServiceAccount { name: name(text), description: Description::default() };
    let admin_owner = users.create_service_account(&operator, account("fuzz-admin")).await.expect("account").id;
    let victim_account = users.create_service_account(&operator, account("fuzz-victim")).await.expect("account").id;
    let mut admin = NewToken::new(TokenName::parse("admin").expect("name"), OwnerId::ServiceAccount(admin_owner));
    admin.permission = Permission::Admin;
    let admin = tokens.create(&Principal::Operator, admin).await.expect("admin token");
    let victim = NewToken::new(TokenName::parse("victim").expect("name"), OwnerId::ServiceAccount(victim_account));
    let victim_token = tokens.create(&Principal::Operator, victim).await.expect("token").record.id;
    let user = NewUser::new(name("fuzz-user"), Email::parse("fuzz@example.com").expect("email"), Role::User);
    let password = Password::new("correct horse battery staple".to_owned()).expect("password");
    let user = users.create(&operator, user, password).await.expect("user").id;
    let project =
        NewProject { name: ProjectName::parse("fuzz-project").expect("name"), description: Description::default() };
    let project = users.create_project(&operator, project).await.expect("project").id;
    let agent = NewAgent {
        name: AgentName::parse("fuzz-agent").expect("name"),
        owner: OwnerId::ServiceAccount(victim_account),
        project: None,
        providers: Default::default(),
        provider_key: None,
        description: Description::default(),
        metadata: Default::default(),
    };
    let agent = agents.create_agent(&operator, agent).await.expect("agent").id;

    let state = AppState::with_agents(tokens, users, metering, agents, ServerSettings::default());
    let peer: SocketAddr = "192.0.2.10:40000".parse().expect("peer");
    let router = tower::Layer::layer(&MockConnectInfo(peer), tollgate_server::app(state));
    let unknown = |prefix: &str| format!("{prefix}{}", "0".repeat(32));
    let operations = tollgate_server::fuzzing::json_body_operations()
        .into_iter()
        .map(|(method, template)| {
            let id = match template.split('/').nth(2).unwrap_or("") {
                "tokens" => victim_token.to_string(),
                "users" => user.to_string(),
                "service-accounts" => victim_account.to_string(),
                "projects" => project.to_string(),
                "agents" => agent.to_string(),
                "limits" => victim_token.to_string(),
                "reservations" => unknown("rsv_"),
                "sessions" => unknown("ses_"),
                "provider-keys" => unknown("pk_"),
                "budget" if template.contains("/leases/") => unknown("bls_"),
                "budget" => unknown("brq_"),
                _ => unknown("tok_"),
            };
            let path = template
                .replace("{id}", &id)
                .replace("{kind}", "token")
                .replace("{name}", "requests_per_minute")
                .replace("{member}", &user.to_string())
                .replace("{credential_id}", &unknown("tok_"))
                .replace("{provider}", "acme")
                .replace("{model}", "fast-1");
            assert!(!path.contains('{'), "a path parameter the fuzz target does not fill: {template}");
            (method, path)
        })
        .collect::<Vec<_>>();
    assert!(operations.iter().any(|(method, path)| method == Method::POST && path == "/v1/tokens"));
    (router, operations, admin.secret.expose().to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let server = server();
    let (method, path) = &server.operations[usize::from(pick) % server.operations.len()];
    let request = Request::builder()
        .method(method.clone())
        .uri(path.as_str())
        .header("authorization", format!("Bearer {}", server.bearer))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, reply) = server.runtime.block_on(async {
        let response = server.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let reply = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("reply body");
        (status, reply)
    });
    if status.is_server_error() {
        let problem: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
        assert!(
            status == 503 && problem["code"] == "timeout",
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
});

//! Test fixture: a real database — a SQLite file in a temporary directory, or with
//! `TOLLGATE_TEST_BACKEND=postgres` a scratch schema on the server `TOLLGATE_TEST_PG_URL` names —, a
//! manual clock, the app over them, and a small request helper that drives the router with `oneshot`.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tollgate::{
    Caller, Description, Email, JwtKeys, KeyId, ManualClock, Metering, NewServiceAccount, NewToken, NewUser, OwnerId,
    Password, Permission, Principal, Role, Scope, SqliteOptions, SqliteStore, Timestamp, TokenHasher, TokenId,
    TokenManager, TokenName, UserId, UserService, Username,
};
use tollgate_server::{App, AppState, ServerSettings};
use tower::{Layer as _, ServiceExt as _};

/// The app with every request coming from the fixture's peer address.
pub type TestApp = <MockConnectInfo<SocketAddr> as tower::Layer<App>>::Service;

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// 2030-01-01T00:00:00Z: tests set times relative to this.
pub const START: Timestamp = Timestamp::from_unix_micros(1_893_456_000_000_000);

pub struct Fixture {
    pub tokens: TokenManager,
    pub agents: tollgate::AgentService,
    /// The vault's master key file.
    pub vault_key_file: std::path::PathBuf,
    /// The SQLite database file.
    pub db_file: std::path::PathBuf,
    pub users: UserService,
    pub metering: Metering,
    pub clock: Arc<ManualClock>,
    /// The store under test (either backend).
    pub store: Arc<dyn tollgate::Store>,
    /// The same store, by backend (tests of a backend's own behaviour use it).
    pub backend: Backend,
    pub state: AppState,
    router: TestApp,
    _directory: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_settings(ServerSettings::default(), "192.0.2.10:40000").await
    }

    /// A fixture whose requests come from `peer`.
    pub async fn with_settings(settings: ServerSettings, peer: &str) -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let db_file = directory.path().join("tollgate.db");
        let (store, backend) = open_store(&db_file).await;
        let clock = Arc::new(ManualClock::new(START));
        let hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).expect("hasher");
        let metering =
            Metering::builder(Arc::clone(&store)).clock(clock.clone()).start().await.expect("start metering");
        let tokens =
            TokenManager::builder(Arc::clone(&store), hasher).clock(clock.clone()).metering(metering.clone()).build();
        let jwt_keys = JwtKeys::new("test", &[7u8; 32]).expect("jwt keys");
        let refresh_hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).expect("hasher");
        let users = UserService::builder(&tokens, jwt_keys, refresh_hasher)
            .clock(clock.clone())
            .insecure_bcrypt_cost_for_tests(4)
            .build()
            .expect("user service");
        let vault_key_file = directory.path().join("tollgate.db.vault.key");
        let vault = tollgate::MasterKeys::load_or_create(&vault_key_file).expect("vault key file");
        let agents = tollgate::AgentService::builder(&tokens, vault).build();
        let state = AppState::with_agents(tokens.clone(), users.clone(), metering.clone(), agents.clone(), settings);
        let peer: SocketAddr = peer.parse().expect("peer address");
        let router = MockConnectInfo(peer).layer(tollgate_server::app(state.clone()));
        Self {
            tokens,
            agents,
            vault_key_file,
            db_file,
            users,
            metering,
            clock,
            store,
            backend,
            state,
            router,
            _directory: directory,
        }
    }

    /// Closes the store (a database gone away).
    pub async fn close_store(&self) {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.close().await,
            Backend::Postgres(postgres) => postgres.close().await,
        }
    }

    /// The owner named `name`: the user or service account of that name, or a new service account.
    pub async fn owner(&self, name: &str) -> OwnerId {
        let username = Username::parse_field("name", name).unwrap();
        if let Some(owner) = self.store.owner_by_name(&username).await.expect("look up owner") {
            return owner.id;
        }
        let account = NewServiceAccount { name: username, description: Description::default() };
        let created = self.users.create_service_account(&Caller::operator(), account).await.expect("service account");
        OwnerId::ServiceAccount(created.id)
    }

    /// A new project named `name`.
    pub async fn project(&self, name: &str) -> tollgate::ProjectId {
        let project = tollgate::NewProject {
            name: tollgate::ProjectName::parse(name).unwrap(),
            description: Description::default(),
        };
        self.users.create_project(&Caller::operator(), project).await.expect("project").id
    }

    /// Creates a token as the operator for the owner named `owner` (a service account made on the
    /// fly unless a user or account has the name); returns its secret and id.
    pub async fn token(&self, owner: &str, permission: Permission) -> (String, TokenId) {
        let mut token = NewToken::new(TokenName::parse("test").unwrap(), self.owner(owner).await);
        token.permission = permission;
        self.create(token).await
    }

    /// A token with the `tokens:verify` scope.
    pub async fn verifier(&self, owner: &str) -> (String, TokenId) {
        let mut token = NewToken::new(TokenName::parse("gateway").unwrap(), self.owner(owner).await);
        token.scopes = vec![Scope::parse("tokens:verify").unwrap()];
        self.create(token).await
    }

    pub async fn create(&self, token: NewToken) -> (String, TokenId) {
        let created = self.tokens.create(&Principal::Operator, token).await.expect("create token");
        (created.secret.expose().to_owned(), created.record.id)
    }

    /// Creates a user as the operator with the password `PASSWORD`.
    pub async fn user(&self, username: &str, role: Role) -> UserId {
        let user = NewUser::new(
            Username::parse(username).unwrap(),
            Email::parse(&format!("{username}@example.com")).unwrap(),
            role,
        );
        let password = Password::new(PASSWORD.to_owned()).unwrap();
        self.users.create(&Caller::operator(), user, password).await.expect("create user").id
    }

    /// Logs `username` in over HTTP; returns the whole reply body.
    pub async fn login(&self, username: &str) -> Value {
        let reply =
            self.post("/v1/auth/login", None, serde_json::json!({ "username": username, "password": PASSWORD })).await;
        reply.ok(200).clone()
    }

    /// A user with `role` and a fresh access JWT of theirs.
    pub async fn user_jwt(&self, username: &str, role: Role) -> (UserId, String) {
        let id = self.user(username, role).await;
        let login = self.login(username).await;
        (id, login["access_token"].as_str().expect("access_token").to_owned())
    }

    /// A token owned by user `user_id` (so its permission is capped by the user's role).
    pub async fn user_token(&self, user_id: UserId, permission: Permission) -> (String, TokenId) {
        let mut token = NewToken::new(TokenName::parse("mine").unwrap(), OwnerId::User(user_id));
        token.permission = permission;
        self.create(token).await
    }

    pub fn router(&self) -> TestApp {
        self.router.clone()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("body");
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Reply { status, headers, body, json }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.send(request(Method::GET, path, bearer, None)).await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.send(request(Method::POST, path, bearer, Some(body))).await
    }

    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.send(request(Method::DELETE, path, bearer, None)).await
    }

    pub async fn put(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.send(request(Method::PUT, path, bearer, Some(body))).await
    }

    pub async fn patch(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.send(request(Method::PATCH, path, bearer, Some(body))).await
    }
}

/// The backend a fixture runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A scratch schema on PostgreSQL.
    Postgres(tollgate_postgres::PgStore),
}

/// The store the environment asks for: SQLite at `db_file`, or with `TOLLGATE_TEST_BACKEND=postgres`
/// a PostgreSQL scratch schema, dropped when the test ends.
async fn open_store(db_file: &std::path::Path) -> (Arc<dyn tollgate::Store>, Backend) {
    if std::env::var("TOLLGATE_TEST_BACKEND").as_deref() == Ok("postgres") {
        let url =
            std::env::var("TOLLGATE_TEST_PG_URL").expect("TOLLGATE_TEST_BACKEND=postgres needs TOLLGATE_TEST_PG_URL");
        let store = tollgate_postgres::scratch::store(&url, "tollgate_server_test_").await;
        return (Arc::new(store.clone()), Backend::Postgres(store));
    }
    let sqlite = SqliteStore::open(db_file, &SqliteOptions::default()).await.expect("open sqlite");
    (Arc::new(sqlite.clone()), Backend::Sqlite(sqlite))
}

/// A request with an optional bearer token and an optional JSON body.
pub fn request(method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(bearer) = bearer {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
}

impl Reply {
    /// Asserts a problem+json answer with this status and code; returns the problem.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text());
        assert_eq!(self.headers["content-type"], "application/problem+json", "{}", self.text());
        assert_eq!(self.json["code"], code, "{}", self.text());
        assert_eq!(self.json["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(self.json[member].is_string(), "problem lacks {member}: {}", self.text());
        }
        &self.json
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        &self.json
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

//! Usage over real HTTP: the control API served on a socket over a SQLite file, 64 keep-alive
//! connections posting `POST /v1/usage` (one event per request, or batches of 100) and an agent's
//! `POST /v1/analytics/events` (batches of 100), each answered once its events are fsync'd. Every
//! event carries its own `event_id`, as gateways and agent runtimes send them.
//!
//! `cargo bench -p tollgate-server --bench usage_http -- --warm-up-time 1 --measurement-time 5`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tollgate::{
    AccountStore, Actor, AgentName, AgentService, AuditEvent, Caller, Clock, Description, JwtKeys, KeyId, MasterKeys,
    Metadata, Metering, NewAgent, NewServiceAccount, NewToken, OwnerId, Permission, Principal, ProviderList,
    ServiceAccountId, SqliteOptions, SqliteStore, SystemClock, TokenHasher, TokenManager, TokenName, UserService,
    Username,
};
use tollgate_server::AppState;

const CONNECTIONS: usize = 64;
/// Requests per measured iteration, over all connections.
const REQUESTS: u64 = 6_400;

struct Served {
    runtime: tokio::runtime::Runtime,
    address: std::net::SocketAddr,
    admin: String,
    token_id: String,
    credential: String,
    metering: Metering,
    _directory: tempfile::TempDir,
}

fn serve() -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let (address, admin, token_id, credential, metering) = runtime.block_on(async {
        let store =
            Arc::new(SqliteStore::open(&directory.path().join("bench.db"), &SqliteOptions::default()).await.unwrap());
        let id = ServiceAccountId::generate();
        let account = NewServiceAccount {
            name: Username::parse_field("name", "gateway").unwrap(),
            description: Description::default(),
        };
        let insert = tollgate_store::ServiceAccountInsert { id, account, created_at: SystemClock.now() };
        let event = AuditEvent::new(Actor::cli(), "service_account.create", id, insert.created_at);
        store.insert_service_account(&insert, &event).await.unwrap();
        let metering = Metering::builder(store.clone()).start().await.unwrap();
        let hasher = TokenHasher::new(KeyId(1), &[9u8; 32]).unwrap();
        let tokens = TokenManager::builder(store.clone(), hasher).metering(metering.clone()).build();
        let mut token = NewToken::new(TokenName::parse("gateway").unwrap(), OwnerId::ServiceAccount(id));
        token.permission = Permission::Admin;
        let created = tokens.create(&Principal::Operator, token).await.unwrap();
        let jwt = JwtKeys::new("bench", &[7u8; 32]).unwrap();
        let users =
            UserService::builder(&tokens, jwt, TokenHasher::new(KeyId(1), &[8u8; 32]).unwrap()).build().unwrap();
        let agents = AgentService::builder(&tokens, MasterKeys::ephemeral().unwrap()).build();
        let agent = NewAgent {
            name: AgentName::parse("runtime").unwrap(),
            owner: OwnerId::ServiceAccount(id),
            project: None,
            providers: ProviderList::default(),
            provider_key: None,
            description: Description::default(),
            metadata: Metadata::default(),
        };
        let agent = agents.create_agent(&Caller::operator(), agent).await.unwrap().id;
        let credential = agents.create_credential(&Caller::operator(), &agent, None, None).await.unwrap();
        let state = AppState::with_agents(tokens, users, metering.clone(), agents, Default::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = tollgate_server::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let credential = credential.secret.expose().to_owned();
        (address, created.secret.expose().to_owned(), created.record.id.to_string(), credential, metering)
    });
    Served { runtime, address, admin, token_id, credential, metering, _directory: directory }
}

/// One keep-alive connection: sends a POST, reads the answer (Content-Length bodies only).
struct Connection {
    stream: BufReader<TcpStream>,
    head: String,
}

impl Connection {
    async fn open(served: &Served, path: &str, bearer: &str) -> Self {
        let stream = TcpStream::connect(served.address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {bearer}\r\nContent-Type: application/json\r\n"
        );
        Self { stream: BufReader::new(stream), head }
    }

    async fn post(&mut self, body: &str) -> u16 {
        let request = format!("{}Content-Length: {}\r\n\r\n{body}", self.head, body.len());
        self.stream.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        status
    }
}

/// A batch of `count` analytics events numbered from `first`.
fn analytics_body(_: &str, first: u64, count: u64) -> String {
    let event = |n: u64| {
        format!(
            r#"{{"event_id":"a{n}","timestamp":"2026-01-01T00:00:00Z","type":"llm_request_completed","provider":"openai","model":"gpt-4o-mini","input_tokens":{},"output_tokens":50,"cost_microdollars":90}}"#,
            200 + n % 1_000
        )
    };
    let events: Vec<String> = (first..first + count).map(event).collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

fn body(token_id: &str, first: u64, count: u64) -> String {
    let event = |n: u64| {
        format!(
            r#"{{"event_id":"e{n}","token_id":"{token_id}","provider":"openai","model":"gpt-4o-mini","input_tokens":{},"output_tokens":50}}"#,
            200 + n % 1_000
        )
    };
    if count == 1 {
        return event(first);
    }
    let events: Vec<String> = (first..first + count).map(event).collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

/// Posts `REQUESTS` requests of `per_request` events over `connections` (each its own task);
/// returns the connections and the time taken.
async fn post_all(
    token_id: &str,
    body: fn(&str, u64, u64) -> String,
    connections: Vec<Connection>,
    per_request: u64,
    next_event: &AtomicU64,
) -> (Vec<Connection>, Duration) {
    let remaining = Arc::new(AtomicU64::new(REQUESTS));
    let first = next_event.fetch_add(REQUESTS * per_request, Ordering::AcqRel);
    let next = Arc::new(AtomicU64::new(first));
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let (remaining, next, token_id) = (Arc::clone(&remaining), Arc::clone(&next), token_id.to_owned());
            tokio::spawn(async move {
                while remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1)).is_ok() {
                    let first = next.fetch_add(per_request, Ordering::AcqRel);
                    let status = connection.post(&body(&token_id, first, per_request)).await;
                    assert_eq!(status, 200, "usage answered {status}");
                }
                connection
            })
        })
        .collect();
    let mut connections = Vec::with_capacity(tasks.len());
    for task in tasks {
        connections.push(task.await.unwrap());
    }
    (connections, start.elapsed())
}

type Body = fn(&str, u64, u64) -> String;

fn usage_http(c: &mut Criterion) {
    let served = serve();
    let next_event = AtomicU64::new(0);
    let mut group = c.benchmark_group("usage_http");
    group.sample_size(10);
    let cases: [(&str, &str, &str, Body, u64); 3] = [
        ("one_event_per_request_64_connections", "/v1/usage", &served.admin, body, 1),
        ("batches_of_100_64_connections", "/v1/usage", &served.admin, body, 100),
        (
            "analytics_events_batches_of_100_64_connections",
            "/v1/analytics/events",
            &served.credential,
            analytics_body,
            100,
        ),
    ];
    for (name, path, bearer, body, per_request) in cases {
        let mut connections = served.runtime.block_on(open_connections(&served, path, bearer));
        group.throughput(Throughput::Elements(REQUESTS * per_request));
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let taken = std::mem::take(&mut connections);
                    let (back, elapsed) =
                        served.runtime.block_on(post_all(&served.token_id, body, taken, per_request, &next_event));
                    connections = back;
                    total += elapsed;
                }
                total
            })
        });
    }
    group.finish();
    let stats = served.metering.stats();
    assert_eq!(stats.duplicate_events + stats.dead_lettered_events, 0, "every event was new and stored");
    served.runtime.block_on(served.metering.shutdown()).unwrap();
}

async fn open_connections(served: &Served, path: &str, bearer: &str) -> Vec<Connection> {
    let mut connections = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        connections.push(Connection::open(served, path, bearer).await);
    }
    connections
}

criterion_group!(benches, usage_http);
criterion_main!(benches);

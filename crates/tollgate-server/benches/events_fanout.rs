//! Live-event fan-out over real sockets: 100 SSE subscribers of `GET /v1/events` (one admin token),
//! 1,000 events per second published into the hub for 10 seconds; each subscriber notes how long
//! every event took from `publish` to its arrival, and the run prints the percentiles. Then the same
//! for events that come from the audit log's tail (token revocations, 100 per second), which adds
//! the tail's poll interval.
//!
//! `cargo bench -p tollgate-server --bench events_fanout`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate::{
    AccountStore, Actor, AuditEvent, Clock, Description, JwtKeys, KeyId, Metering, NewLiveEvent, NewServiceAccount,
    NewToken, OwnerId, Permission, Principal, ServiceAccountId, SqliteOptions, SqliteStore, SystemClock, TailSettings,
    TokenHasher, TokenManager, TokenName, UserService, Username,
};
use tollgate_server::{AppState, EventClient};

const SUBSCRIBERS: usize = 100;
const PER_SECOND: u64 = 1_000;
const SECONDS: u64 = 10;

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    sorted[(sorted.len() * percent / 100).min(sorted.len() - 1)]
}

fn report(name: &str, mut latencies: Vec<Duration>, expected: usize) {
    latencies.sort();
    println!(
        "{name}: {} deliveries (expected {expected}), p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies[(latencies.len() * 999 / 1000).min(latencies.len() - 1)],
        latencies[latencies.len() - 1],
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probes
    }
    let directory = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&directory.path().join("bench.db"), &SqliteOptions::default()).await.unwrap());
    let id = ServiceAccountId::generate();
    let account =
        NewServiceAccount { name: Username::parse_field("name", "ops").unwrap(), description: Description::default() };
    let insert = tollgate_store::ServiceAccountInsert { id, account, created_at: SystemClock.now() };
    store
        .insert_service_account(
            &insert,
            &AuditEvent::new(Actor::cli(), "service_account.create", id, insert.created_at),
        )
        .await
        .unwrap();
    let metering = Metering::builder(store.clone()).start().await.unwrap();
    let tokens = TokenManager::builder(store.clone(), TokenHasher::new(KeyId(1), &[9u8; 32]).unwrap())
        .metering(metering.clone())
        .build();
    let mut admin = NewToken::new(TokenName::parse("ops").unwrap(), OwnerId::ServiceAccount(id));
    admin.permission = Permission::Admin;
    let admin = tokens.create(&Principal::Operator, admin).await.unwrap().secret.expose().to_owned();
    let users = UserService::builder(
        &tokens,
        JwtKeys::new("bench", &[7u8; 32]).unwrap(),
        TokenHasher::new(KeyId(1), &[8u8; 32]).unwrap(),
    )
    .build()
    .unwrap();
    let mut settings = tollgate_server::ServerSettings::default();
    settings.live.per_principal = SUBSCRIBERS + 1;
    let state = AppState::with_settings(tokens.clone(), users, metering, settings);
    let tail = state.start_live_tail(TailSettings::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = tollgate_server::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let origin = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(SUBSCRIBERS * (PER_SECOND * SECONDS) as usize)));
    let revocations = Arc::new(Mutex::new(Vec::new()));
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = EventClient::connect(&url, &admin, "", None, Duration::from_secs(10)).await.unwrap();
        let (latencies, revocations) = (Arc::clone(&latencies), Arc::clone(&revocations));
        subscribers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Ok(Some(event)) = client.next().await {
                match event.event.as_str() {
                    "bench" => {
                        let sent = Duration::from_nanos(event.data["data"]["sent_ns"].as_u64().unwrap());
                        mine.push(origin.elapsed().saturating_sub(sent));
                    }
                    "token.revoked" => {
                        let sent = event.data["data"]["reason"].as_str().unwrap().parse::<u64>().unwrap();
                        revocations.lock().unwrap().push(origin.elapsed().saturating_sub(Duration::from_nanos(sent)));
                    }
                    "done" => break,
                    _ => {}
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    while state.live().subscribers() < SUBSCRIBERS {
        tokio::task::yield_now().await;
    }
    let publish = |kind: &'static str, data: serde_json::Value| {
        state.live().publish(NewLiveEvent { kind, at: SystemClock.now(), subject: None, data, owner: None });
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..PER_SECOND * SECONDS {
        ticker.tick().await;
        publish("bench", json!({ "sent_ns": origin.elapsed().as_nanos() as u64 }));
    }
    // Revocations through the store: each reaches subscribers by the audit log's tail.
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for index in 0..200 {
        ticker.tick().await;
        let new = NewToken::new(TokenName::parse(&format!("t{index}")).unwrap(), OwnerId::ServiceAccount(id));
        let created = tokens.create(&Principal::Operator, new).await.unwrap();
        let sent = origin.elapsed().as_nanos().to_string();
        tokens.revoke(&Principal::Operator, &created.record.id, Some(&sent)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish("done", json!({}));
    for subscriber in subscribers {
        subscriber.await.unwrap();
    }
    let expected = SUBSCRIBERS * (PER_SECOND * SECONDS) as usize;
    report("hub fan-out, 100 subscribers x 1,000 events/s", std::mem::take(&mut latencies.lock().unwrap()), expected);
    report(
        "audit tail to 100 subscribers, 100 revocations/s",
        std::mem::take(&mut revocations.lock().unwrap()),
        SUBSCRIBERS * 200,
    );
    tail.stop().await;
}

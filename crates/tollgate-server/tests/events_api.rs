//! Live events over a real socket: SSE and WebSocket subscribers fed by the audit log's tail see
//! what they may see and nothing else, resume with `Last-Event-ID` without loss or duplication, and
//! a deliberately slow subscriber is dropped (`lagged`) while a fast one keeps receiving.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Fixture;
use tollgate::{HubSettings, LiveTail, NewLiveEvent, Permission, Role, TailSettings};
use tollgate_server::{EventClient, EventClientError, ServerSettings, StreamEvent};

/// How long a test waits for an event before failing (not a sleep: reading returns as soon as it comes).
const PATIENCE: Duration = Duration::from_secs(20);

struct Served {
    fixture: Fixture,
    address: std::net::SocketAddr,
    _tail: LiveTail,
}

async fn serve(settings: ServerSettings) -> Served {
    serve_sampling(settings, Duration::from_secs(3600)).await
}

/// Served, with metering state sampled every `sample`.
async fn serve_sampling(settings: ServerSettings, sample: Duration) -> Served {
    let fixture = Fixture::with_settings(settings, "192.0.2.10:40000").await;
    let tail_settings = TailSettings { poll: Duration::from_millis(10), sample };
    let tail = fixture.state.start_live_tail(tail_settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = fixture.router();
    tokio::spawn(async move { axum::serve(listener, axum::ServiceExt::into_make_service(router)).await.unwrap() });
    Served { fixture, address, _tail: tail }
}

/// A subscriber: the server's own event-stream client, with helpers that wait for an event.
struct SseClient(EventClient);

impl SseClient {
    async fn open(
        served: &Served,
        path: &str,
        bearer: &str,
        last_event_id: Option<u64>,
    ) -> Result<Self, (u16, String)> {
        let query = path.split_once('?').map_or("", |(_, query)| query);
        let url = format!("http://{}", served.address);
        match EventClient::connect(&url, bearer, query, last_event_id, PATIENCE).await {
            Ok(client) => Ok(Self(client)),
            Err(EventClientError::Refused { status, code }) => Err((status, code.unwrap_or_default())),
            Err(error) => panic!("{error}"),
        }
    }

    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<StreamEvent> {
        self.0.next().await.unwrap()
    }

    /// The next event of `kind` about `subject`, skipping others.
    async fn next_about(&mut self, kind: &str, subject: &str) -> StreamEvent {
        loop {
            let event = self.next_of(kind).await;
            if event.data["subject"] == subject {
                return event;
            }
        }
    }

    /// The next event of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> StreamEvent {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = self.next().await.expect("the stream ended");
                if event.event == kind {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} event"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_sees_its_revocations_and_never_another_tenants() {
    let served = serve(ServerSettings::default()).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice_id, alice) = fixture.user_jwt("alice", Role::User).await;
    let (bob_id, _) = fixture.user_jwt("bob", Role::User).await;
    let (_, alice_token) = fixture.user_token(alice_id, Permission::Standard).await;
    let (_, bob_token) = fixture.user_token(bob_id, Permission::Standard).await;
    let mut alices = SseClient::open(&served, "/v1/events", &alice, None).await.unwrap();
    let mut admins = SseClient::open(&served, "/v1/events?types=token.revoked", &admin, None).await.unwrap();

    fixture.post(&format!("/v1/tokens/{bob_token}/revoke"), Some(&admin), json!({})).await.ok(200);
    let revoked_at = Instant::now();
    fixture.post(&format!("/v1/tokens/{alice_token}/revoke"), Some(&admin), json!({})).await.ok(200);
    let seen = alices.next_of("token.revoked").await;
    let latency = revoked_at.elapsed();
    assert_eq!(seen.data["subject"], alice_token.to_string(), "alice never sees bob's revocation");
    assert!(latency < Duration::from_secs(2), "seen after {latency:?}");
    let first = admins.next_of("token.revoked").await;
    let second = admins.next_of("token.revoked").await;
    assert_eq!(
        (first.data["subject"].clone(), second.data["subject"].clone()),
        (json!(bob_token.to_string()), json!(alice_token.to_string()))
    );
    assert!(first.id < second.id, "ids grow");

    // Another process (here: the store directly, as the CLI would) revokes alice's second token.
    let (_, third) = fixture.user_token(alice_id, Permission::Standard).await;
    fixture.tokens.revoke(&tollgate::Principal::Operator, &third, None).await.unwrap();
    assert_eq!(alices.next_of("token.revoked").await.data["subject"], third.to_string());
    let metrics = fixture.get("/metrics", None).await;
    assert!(metrics.text().contains("tollgate_live_subscribers 2"), "{}", metrics.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_event_id_resumes_without_loss_or_duplication() {
    let served = serve(ServerSettings::default()).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let publish = |index: usize| {
        fixture.state.live().publish(NewLiveEvent {
            kind: "requests.completed",
            at: support::START,
            subject: None,
            data: json!({ "n": index }),
            owner: None,
        })
    };
    let mut first = SseClient::open(&served, "/v1/events", &admin, None).await.unwrap();
    for index in 0..5 {
        publish(index);
    }
    let mut last = 0;
    for index in 0..3 {
        let event = first.next_of("requests.completed").await;
        assert_eq!(event.data["data"]["n"], index);
        last = event.id.unwrap();
    }
    drop(first);
    for index in 5..8 {
        publish(index);
    }
    let mut resumed = SseClient::open(&served, "/v1/events", &admin, Some(last)).await.unwrap();
    for index in 3..8 {
        let event = resumed.next_of("requests.completed").await;
        assert_eq!(event.data["data"]["n"], index, "each missed event once, in order");
    }
    // An id from before this process, or one the buffer no longer holds: resync.
    let mut stale = SseClient::open(&served, "/v1/events", &admin, Some(7)).await.unwrap();
    assert!(stale.next_of("resync").await.data["next_id"].as_u64().unwrap() > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_subscriber_is_dropped_while_a_fast_one_keeps_up() {
    let mut settings = ServerSettings::default();
    settings.live = HubSettings { replay: 100, queue: 16, per_principal: 8 };
    let served = serve(settings).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let mut fast = SseClient::open(&served, "/v1/events", &admin, None).await.unwrap();
    let mut slow = SseClient::open(&served, "/v1/events", &admin, None).await.unwrap();
    const EVENTS: usize = 3_000;
    let padding = "x".repeat(16 * 1024);
    let hub = fixture.state.live().clone();
    // The publisher stays at most 8 events ahead of the fast subscriber, however loaded the machine.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = std::sync::Arc::clone(&read);
    let publisher = tokio::spawn(async move {
        for index in 0..EVENTS {
            while index >= progress.load(std::sync::atomic::Ordering::Acquire) + 8 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            hub.publish(NewLiveEvent {
                kind: "requests.completed",
                at: support::START,
                subject: None,
                data: json!({ "n": index, "pad": padding }),
                owner: None,
            });
        }
    });
    for index in 0..EVENTS {
        let event = fast.next_of("requests.completed").await;
        assert_eq!(event.data["data"]["n"], index, "the fast subscriber misses nothing");
        read.store(index + 1, std::sync::atomic::Ordering::Release);
    }
    publisher.await.unwrap();
    // The slow one never read: whatever it received, its stream ends with `lagged`.
    let mut last = None;
    while let Some(event) = tokio::time::timeout(PATIENCE, slow.next()).await.expect("the slow stream ends") {
        last = Some(event);
    }
    let last = last.expect("the slow subscriber got something");
    assert_eq!(last.event, "lagged", "{:?}", last.event);
    assert!(last.data["missed"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_are_authorized_capped_and_checked_again_on_a_demotion() {
    let mut settings = ServerSettings::default();
    settings.live = HubSettings { per_principal: 2, ..HubSettings::default() };
    let served = serve(settings).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (ada_id, ada) = fixture.user_jwt("ada", Role::Admin).await;
    fixture.user_jwt("zed", Role::Admin).await; // so ada is not the last admin
    let (bob_id, bob) = fixture.user_jwt("bob", Role::User).await;
    let (_, bob_token) = fixture.user_token(bob_id, Permission::Standard).await;

    assert_eq!(SseClient::open(&served, "/v1/events", "nope", None).await.err().unwrap().0, 401);
    let bad = SseClient::open(&served, "/v1/events?types=Token+Revoked", &bob, None).await.err().unwrap();
    assert_eq!(bad.0, 400, "{}", bad.1);
    let _one = SseClient::open(&served, "/v1/events", &bob, None).await.unwrap();
    let _two = SseClient::open(&served, "/v1/events", &bob, None).await.unwrap();
    let capped = SseClient::open(&served, "/v1/events", &bob, None).await.err().unwrap();
    assert_eq!(capped.0, 429, "{}", capped.1);
    assert!(capped.1.contains("too_many_streams"));

    // Ada, an admin, sees bob's events; demoted to user, she stops seeing them at once.
    let mut adas = SseClient::open(&served, "/v1/events", &ada, None).await.unwrap();
    let (_, probe) = fixture.user_token(bob_id, Permission::Standard).await;
    adas.next_about("token.created", &probe.to_string()).await;
    fixture.patch(&format!("/v1/users/{ada_id}"), Some(&admin), json!({ "role": "user" })).await.ok(200);
    fixture.post(&format!("/v1/tokens/{bob_token}/revoke"), Some(&admin), json!({})).await.ok(200);
    let (_, own) = fixture.user_token(ada_id, Permission::Standard).await;
    let changed = adas.next().await.expect("the stream goes on");
    assert_eq!(
        (changed.event.as_str(), changed.data["subject"].clone()),
        ("user.role_changed", json!(ada_id.to_string()))
    );
    let next = adas.next().await.expect("the stream goes on");
    assert_eq!(
        (next.event.as_str(), next.data["subject"].clone()),
        ("token.created", json!(own.to_string())),
        "only her own now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_websocket_carries_the_same_events() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let served = serve(ServerSettings::default()).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let mut request =
        format!("ws://{}/v1/events/ws?types=token.created", served.address).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (_, created) = fixture.token("carol", Permission::Standard).await;
    let message = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Message::Text(text) = socket.next().await.expect("open").unwrap() {
                let message = serde_json::from_str::<Value>(&text).unwrap();
                if message["subject"] == created.to_string() {
                    return message;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        (message["type"].clone(), message["subject"].clone()),
        (json!("token.created"), json!(created.to_string()))
    );
    let plain = fixture.get("/v1/events/ws", Some(&admin)).await;
    assert_eq!(plain.status, 400, "not an upgrade: {}", plain.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_refusals_are_told_to_the_tokens_owner_once_per_second() {
    let served = serve_sampling(ServerSettings::default(), Duration::from_millis(20)).await;
    let fixture = &served.fixture;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice_id, alice) = fixture.user_jwt("alice", Role::User).await;
    let (_, bob) = fixture.user_jwt("bob", Role::User).await;
    let (alice_token, alice_token_id) = fixture.user_token(alice_id, Permission::Standard).await;
    let path = format!("/v1/limits/token/{alice_token_id}/requests_per_day");
    fixture.put(&path, Some(&admin), json!({ "max": 1 })).await.ok(200);
    let mut alices = SseClient::open(&served, "/v1/events?types=quota.exceeded", &alice, None).await.unwrap();
    let mut bobs = SseClient::open(&served, "/v1/events", &bob, None).await.unwrap();
    fixture.get("/v1/auth/verify", Some(&alice_token)).await.ok(200);
    for _ in 0..3 {
        fixture.get("/v1/auth/verify", Some(&alice_token)).await.problem(429, "quota_exceeded");
    }
    let mut refused = 0;
    while refused < 3 {
        let event = alices.next_of("quota.exceeded").await;
        assert_eq!(event.data["subject"], alice_token_id.to_string());
        assert_eq!(event.data["data"]["limit"], "requests_per_day");
        refused += event.data["data"]["refused"].as_u64().unwrap();
    }
    assert_eq!(refused, 3, "every refusal counted once");
    // Bob sees none of it: the next thing he sees is his own token's creation.
    let (_, bobs_token) = fixture.token("bob", Permission::Standard).await;
    loop {
        let seen = tokio::time::timeout(PATIENCE, bobs.next()).await.unwrap().unwrap();
        assert_ne!(seen.event, "quota.exceeded", "bob sees no refusal of alice's token");
        if seen.data["subject"] == bobs_token.to_string() {
            break;
        }
    }
}

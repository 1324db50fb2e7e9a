//! Live events: `GET /v1/events` (Server-Sent Events) and `GET /v1/events/ws` (WebSocket), both fed
//! by one producer per subscriber over the hub (`tollgate::LiveHub`).
//!
//! Each subscriber sees only what it may read, decided by the facade's matrix when the stream opens
//! and again whenever an event concerns the subscriber itself (so a demotion or a suspension bites
//! mid-stream), plus periodically. A subscriber that falls behind gets a final `lagged` event and is
//! dropped; a resume whose events are gone gets `resync`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tollgate::{LiveEvent, Resume, Visibility};

use crate::auth::{Caller, StreamCaller};
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::{ApiSchema, Components};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// How often a stream authenticates its caller again even when nothing concerns it.
const REAUTHENTICATE: Duration = Duration::from_secs(30);
/// Messages waiting for a slow socket before the producer waits too (and the hub drops it).
const OUTBOX: usize = 256;
/// How long a dropped subscriber has to take its final notice (`lagged`, `unauthorized`).
const LAST_WORD: Duration = Duration::from_secs(5);

pub(super) fn routes() -> Routes {
    let describe = "Events: token.created|revoked|rotated, user.suspended, agent.paused|resumed, \
                    lease.opened|exhausted|returned|expired|revoked, budget.threshold_crossed (50/80/95/100 %), \
                    requests.completed and quota.exceeded (per second), writer.degraded|recovered. Each has an id that only grows; \
                    send `Last-Event-ID` (or `last_event_id`) to resume: what was missed is replayed from a \
                    bounded buffer, or a `resync` event says it is gone. A subscriber that falls too far \
                    behind gets `lagged` and is closed. Admins see every event; everyone else events about \
                    what they own. At most 8 streams per principal (429 `too_many_streams`).";
    Routes::new()
        .get(
            "/v1/events",
            Doc::new("streamEvents", "events", "Live events as Server-Sent Events")
                .describe(describe)
                .bearer()
                .query::<EventsQuery>()
                .response_text(200, "An event stream", "text/event-stream")
                .problems(&[400, 401, 403, 429, 503]),
            sse,
        )
        .get(
            "/v1/events/ws",
            Doc::new("streamEventsWebSocket", "events", "Live events over a WebSocket")
                .describe("The same events as `GET /v1/events`, one JSON text message each (`type`, `id`, …).")
                .bearer()
                .query::<EventsQuery>()
                .response_text(101, "Switching to the WebSocket protocol", "application/octet-stream")
                .problems(&[400, 401, 403, 429, 503]),
            websocket,
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Comma-separated event types (default: all).
    #[serde(default)]
    types: Option<String>,
    /// Only events about this subject (a `tok_…`, `agt_…`, `bls_…` or `usr_…` id).
    #[serde(default)]
    subject: Option<String>,
    /// Resume after this id (for clients that cannot send `Last-Event-ID`).
    #[serde(default)]
    last_event_id: Option<u64>,
}

impl ApiSchema for EventsQuery {
    const NAME: &'static str = "EventsQuery";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "types": { "type": "string", "pattern": "^[a-z_.]{1,64}(,[a-z_.]{1,64}){0,31}$", "description": "Comma-separated types, e.g. token.revoked,lease.opened." },
                "subject": { "type": "string", "pattern": "^[a-z]{2,4}_[0-9a-f]{32}$", "description": "Only events about this id." },
                "last_event_id": { "type": "integer", "minimum": 0 },
            }
        })
    }
}

/// What a subscriber asked for, checked.
struct Filter {
    types: Option<HashSet<String>>,
    subject: Option<String>,
}

impl Filter {
    fn parse(query: &EventsQuery) -> Result<Self, ApiError> {
        let types = match &query.types {
            None => None,
            Some(types) => {
                let types: HashSet<String> = types.split(',').map(|kind| kind.trim().to_owned()).collect();
                let valid = |kind: &String| {
                    !kind.is_empty()
                        && kind.len() <= 64
                        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
                };
                if types.len() > 32 || !types.iter().all(valid) {
                    return Err(ApiError::invalid_field("types", "must be up to 32 comma-separated event types"));
                }
                Some(types)
            }
        };
        if let Some(subject) = &query.subject
            && (subject.is_empty()
                || subject.len() > 64
                || !subject.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(ApiError::invalid_field("subject", "must be an id such as tok_…"));
        }
        Ok(Self { types, subject: query.subject.clone() })
    }

    fn keeps(&self, event: &LiveEvent) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(event.kind))
            && self.subject.as_ref().is_none_or(|subject| event.subject.as_ref() == Some(subject))
    }
}

/// One message for the subscriber.
struct Outgoing {
    id: Option<u64>,
    kind: &'static str,
    data: Value,
}

impl Outgoing {
    fn of(event: &LiveEvent) -> Self {
        let data =
            json!({ "id": event.id, "type": event.kind, "at": event.at, "subject": event.subject, "data": event.data });
        Self { id: Some(event.id), kind: event.kind, data }
    }

    fn notice(kind: &'static str, data: Value) -> Self {
        Self { id: None, kind, data }
    }
}

/// The `Last-Event-ID` header or the `last_event_id` parameter.
fn last_event_id(headers: &HeaderMap, query: &EventsQuery) -> Result<Option<u64>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(query.last_event_id),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field("Last-Event-ID", "must be an event id")),
    }
}

/// Opens the subscription and starts the producer; the receiver yields what to send.
fn open(
    state: &AppState,
    stream_caller: StreamCaller,
    query: &EventsQuery,
    headers: &HeaderMap,
) -> Result<mpsc::Receiver<Outgoing>, ApiError> {
    let filter = Filter::parse(query)?;
    let last = last_event_id(headers, query)?;
    let visibility = Visibility::of(&stream_caller.caller.principal)?;
    let key = stream_caller.caller.principal.actor().as_str().to_owned();
    let subscription = state.live().subscribe(&key, last)?;
    let (outbox, receiver) = mpsc::channel(OUTBOX);
    let producer = Producer { state: state.clone(), stream_caller, visibility, filter, outbox };
    tokio::spawn(producer.run(subscription));
    Ok(receiver)
}

struct Producer {
    state: AppState,
    stream_caller: StreamCaller,
    visibility: Visibility,
    filter: Filter,
    outbox: mpsc::Sender<Outgoing>,
}

impl Producer {
    async fn run(mut self, subscription: tollgate::Subscription) {
        let tollgate::Subscription { resume, mut receiver, .. } = subscription;
        match resume {
            Resume::Resync => {
                let next = self.state.live().next_id();
                let notice = Outgoing::notice(
                    "resync",
                    json!({ "next_id": next, "reason": "the events after your last id are no longer kept: read the current state again" }),
                );
                if self.outbox.send(notice).await.is_err() {
                    return;
                }
            }
            Resume::Replayed(events) => {
                for event in events {
                    if !self.deliver(&event).await {
                        return;
                    }
                }
            }
        }
        let mut reauthenticate = tokio::time::interval(REAUTHENTICATE);
        reauthenticate.reset();
        let hub = self.state.live().clone();
        let closing = hub.closed();
        tokio::pin!(closing);
        // Resolves when the subscriber is gone (its end of the outbox dropped).
        let watcher = self.outbox.clone();
        let gone = watcher.closed();
        tokio::pin!(gone);
        loop {
            tokio::select! {
                () = &mut closing => {
                    let notice = Outgoing::notice("closed", json!({ "reason": "the server is shutting down" }));
                    self.last_word(notice, Duration::from_secs(1)).await;
                    return;
                }
                () = &mut gone => return,
                _ = reauthenticate.tick() => {
                    if !self.reauthenticate().await {
                        return;
                    }
                }
                received = receiver.recv() => match received {
                    Ok(event) => {
                        if !self.deliver(&event).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let notice = json!({ "missed": missed, "reason": "this subscriber fell too far behind; reconnect with Last-Event-ID" });
                        self.last_word(Outgoing::notice("lagged", notice), LAST_WORD).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Sends the stream's final notice, waiting at most `patience` for room behind what the
    /// subscriber has not read yet.
    async fn last_word(&self, notice: Outgoing, patience: Duration) {
        let _ = tokio::time::timeout(patience, self.outbox.send(notice)).await;
    }

    /// Sends an event the subscriber may see and asked for; false when the stream is over.
    async fn deliver(&mut self, event: &Arc<LiveEvent>) -> bool {
        if self.concerns_the_subscriber(event) && !self.reauthenticate().await {
            return false;
        }
        if !self.visibility.sees(event) || !self.filter.keeps(event) {
            return true;
        }
        self.outbox.send(Outgoing::of(event)).await.is_ok()
    }

    /// Whether the event is about the subscriber's own user or token (its rights may have changed).
    fn concerns_the_subscriber(&self, event: &LiveEvent) -> bool {
        let principal = &self.stream_caller.caller.principal;
        let Some(subject) = event.subject.as_deref() else { return false };
        let own_token =
            self.stream_caller.caller.token.as_ref().is_some_and(|token| token.record.id.to_string() == subject);
        own_token || principal.user_id().is_some_and(|user| user.to_string() == subject)
    }

    /// Authenticates the caller again and recomputes what it may see; false (after telling it) when
    /// it may no longer read events.
    async fn reauthenticate(&mut self) -> bool {
        let (credential, ip) = (&self.stream_caller.credential, self.stream_caller.caller.ip);
        let visibility = match Caller::authenticate(&self.state, credential, ip).await {
            Ok(caller) => Visibility::of(&caller.principal).ok(),
            Err(_) => None,
        };
        match visibility {
            Some(visibility) => {
                self.visibility = visibility;
                true
            }
            None => {
                let notice = json!({ "reason": "the credential no longer reads events: authenticate again" });
                self.last_word(Outgoing::notice("unauthorized", notice), LAST_WORD).await;
                false
            }
        }
    }
}

/// The stream as SSE events.
fn sse_stream(receiver: mpsc::Receiver<Outgoing>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let outgoing = receiver.recv().await?;
        let mut event = Event::default().event(outgoing.kind).data(outgoing.data.to_string());
        if let Some(id) = outgoing.id {
            event = event.id(id.to_string());
        }
        Some((Ok(event), receiver))
    })
}

async fn sse(
    State(state): State<AppState>,
    caller: StreamCaller,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    sse_response(&state, caller, &headers, &query)
}

/// Every event `caller` may see, as Server-Sent Events (the dashboard's live feed streams this too).
pub(crate) fn every_event(state: &AppState, caller: StreamCaller, headers: &HeaderMap) -> Result<Response, ApiError> {
    sse_response(state, caller, headers, &EventsQuery::default())
}

fn sse_response(
    state: &AppState,
    caller: StreamCaller,
    headers: &HeaderMap,
    query: &EventsQuery,
) -> Result<Response, ApiError> {
    let receiver = open(state, caller, query, headers)?;
    let keep_alive = KeepAlive::new().interval(state.settings().heartbeat).text("heartbeat");
    Ok(Sse::new(sse_stream(receiver)).keep_alive(keep_alive).into_response())
}

/// The WebSocket upgrade, refused as JSON problems like any other request when it is not one.
struct Upgrade(WebSocketUpgrade);

impl FromRequestParts<AppState> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|_| ApiError::invalid_field("upgrade", "this route speaks WebSocket: send an upgrade request"))
    }
}

async fn websocket(
    State(state): State<AppState>,
    caller: StreamCaller,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
    Upgrade(upgrade): Upgrade,
) -> Result<Response, ApiError> {
    let receiver = open(&state, caller, &query, &headers)?;
    let heartbeat = state.settings().heartbeat;
    Ok(upgrade.on_upgrade(move |socket| pump(socket, receiver, heartbeat)))
}

/// Sends the stream's messages (and pings while idle) until either side ends.
async fn pump(mut socket: WebSocket, mut receiver: mpsc::Receiver<Outgoing>, heartbeat: Duration) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.reset();
    loop {
        tokio::select! {
            outgoing = receiver.recv() => {
                let Some(outgoing) = outgoing else { break };
                let mut message = outgoing.data;
                if outgoing.id.is_none() {
                    message = json!({ "type": outgoing.kind, "data": message });
                }
                if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

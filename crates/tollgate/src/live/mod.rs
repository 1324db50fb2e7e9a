//! Live events: one hub that every stream (SSE, WebSocket, a library caller) subscribes to.
//!
//! Events come from the audit log's tail (`tail.rs`: so a revocation made by another process or
//! node is seen too) and from sampled metering state (writer degraded or recovered, usage per
//! second). Each has an id that only grows; the hub keeps the last events in a bounded replay
//! buffer so a subscriber resumes after a reconnect (`Last-Event-ID`), and answers `resync` when
//! what it missed is no longer there. A subscriber that falls more than its queue behind is told
//! `lagged` and dropped: the hub never waits for anyone.

mod relay;
mod tail;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;
use tollgate_types::{OwnerId, Principal, Timestamp};

pub use relay::LiveRelay;
pub use tail::{LiveTail, TailSettings};

use crate::authz::{Operation, authorize};
use crate::{Error, Result};

/// One live event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    /// Grows with every event (starts at the hub's start time in microseconds, so ids from an
    /// earlier process are older).
    pub id: u64,
    /// `token.created`, `token.revoked`, `lease.opened`, `budget.threshold_crossed`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened.
    pub at: Timestamp,
    /// What it is about (`tok_…`, `agt_…`, `bls_…`, `usr_…`), if anything.
    pub subject: Option<String>,
    /// Details (never a secret).
    pub data: serde_json::Value,
    /// Who may see it besides admins; `None`: admins only.
    #[serde(skip)]
    pub owner: Option<OwnerId>,
}

/// An event about to be published (the hub gives it its id).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLiveEvent {
    /// The type.
    pub kind: &'static str,
    /// When.
    pub at: Timestamp,
    /// What about.
    pub subject: Option<String>,
    /// Details.
    pub data: serde_json::Value,
    /// Who may see it besides admins.
    pub owner: Option<OwnerId>,
}

/// What a subscriber may see, decided once by the permission matrix when it subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Every event (admins).
    Everything,
    /// Events about what this owner owns.
    Owner(OwnerId),
}

impl Visibility {
    /// What `principal` may see: everything for admins, else its owner's events.
    pub fn of(principal: &Principal) -> Result<Self> {
        if authorize(principal, Operation::ReadLiveEvents { owner: None }).is_ok() {
            return Ok(Self::Everything);
        }
        let owner = principal.owner_id().ok_or_else(|| Error::Forbidden("reading live events".to_owned()))?;
        authorize(principal, Operation::ReadLiveEvents { owner: Some(owner) })?;
        Ok(Self::Owner(owner))
    }

    /// Whether an event is visible.
    pub fn sees(self, event: &LiveEvent) -> bool {
        match self {
            Self::Everything => true,
            Self::Owner(owner) => event.owner == Some(owner),
        }
    }
}

/// How big the hub's buffers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSettings {
    /// Events kept for resuming (default 10,000).
    pub replay: usize,
    /// Events a subscriber may fall behind before it is dropped (default 4,096).
    pub queue: usize,
    /// Streams one principal may hold open at once (default 8).
    pub per_principal: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self { replay: 10_000, queue: 4_096, per_principal: 8 }
    }
}

struct Shared {
    replay: VecDeque<Arc<LiveEvent>>,
    open: HashMap<String, usize>,
}

/// The hub. Cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    settings: HubSettings,
    next_id: AtomicU64,
    sender: broadcast::Sender<Arc<LiveEvent>>,
    shared: Mutex<Shared>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").field("subscribers", &self.subscribers()).finish_non_exhaustive()
    }
}

/// Where a new subscription starts.
#[derive(Debug)]
pub enum Resume {
    /// The events after the one asked for, from the replay buffer (possibly none).
    Replayed(Vec<Arc<LiveEvent>>),
    /// The events after the one asked for are no longer kept: the subscriber must re-read state.
    Resync,
}

/// An open subscription: the replayed events, then live ones. Dropping it frees its slot.
pub struct Subscription {
    /// What was replayed (or that a resync is needed).
    pub resume: Resume,
    /// Live events after the replay.
    pub receiver: broadcast::Receiver<Arc<LiveEvent>>,
    _slot: Slot,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("resume", &self.resume).finish_non_exhaustive()
    }
}

struct Slot {
    hub: Arc<HubInner>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shared = self.hub.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = shared.open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                shared.open.remove(&self.key);
            }
        }
    }
}

impl LiveHub {
    /// A hub whose ids start at `start` (in microseconds since the epoch).
    pub fn new(settings: HubSettings, start: Timestamp) -> Self {
        let (sender, _) = broadcast::channel(settings.queue.max(1));
        let first = u64::try_from(start.unix_micros()).unwrap_or(1).max(1);
        Self {
            inner: Arc::new(HubInner {
                settings,
                next_id: AtomicU64::new(first),
                sender,
                shared: Mutex::new(Shared { replay: VecDeque::new(), open: HashMap::new() }),
                closing: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    /// Publishes an event to every subscriber and the replay buffer; returns its id.
    pub fn publish(&self, event: NewLiveEvent) -> u64 {
        let mut shared = self.inner.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(LiveEvent {
            id,
            kind: event.kind,
            at: event.at,
            subject: event.subject,
            data: event.data,
            owner: event.owner,
        });
        if shared.replay.len() == self.inner.settings.replay.max(1) {
            shared.replay.pop_front();
        }
        shared.replay.push_back(Arc::clone(&event));
        // Sent under the lock, so a subscription sees each event once: replayed or live.
        let _ = self.inner.sender.send(event);
        id
    }

    /// Subscribes `principal` (under `key`, the principal's identity for the per-principal cap),
    /// resuming after `last_event_id` when given. [`Error::TooManyStreams`] when the principal
    /// holds its maximum of open streams; `Unavailable` once the hub is closed.
    pub fn subscribe(&self, key: &str, last_event_id: Option<u64>) -> Result<Subscription> {
        if *self.inner.closing.borrow() {
            return Err(Error::Unavailable("the server is shutting down".to_owned()));
        }
        let mut shared = self.inner.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = shared.open.entry(key.to_owned()).or_default();
        if *open >= self.inner.settings.per_principal {
            return Err(Error::TooManyStreams { limit: self.inner.settings.per_principal });
        }
        *open += 1;
        let slot = Slot { hub: Arc::clone(&self.inner), key: key.to_owned() };
        let resume = match last_event_id {
            None => Resume::Replayed(Vec::new()),
            Some(last) => {
                let oldest = shared.replay.front().map(|event| event.id);
                let newest = shared.replay.back().map(|event| event.id);
                let next = self.inner.next_id.load(Ordering::Relaxed);
                match (oldest, newest) {
                    // Everything after `last` is still here (or nothing happened after it).
                    (Some(oldest), _) if last + 1 >= oldest && last < next => {
                        Resume::Replayed(shared.replay.iter().filter(|event| event.id > last).cloned().collect())
                    }
                    (None, None) if last + 1 == next => Resume::Replayed(Vec::new()),
                    _ => Resume::Resync,
                }
            }
        };
        let receiver = self.inner.sender.subscribe();
        drop(shared);
        Ok(Subscription { resume, receiver, _slot: slot })
    }

    /// Open subscriptions.
    pub fn subscribers(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// Tells every stream to end (the server is shutting down) and refuses new subscriptions.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`LiveHub::close`] was called.
    pub async fn closed(&self) {
        let mut closing = self.inner.closing.subscribe();
        let _ = closing.wait_for(|closed| *closed).await;
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &'static str) -> NewLiveEvent {
        NewLiveEvent {
            kind,
            at: Timestamp::from_unix_micros(5),
            subject: None,
            data: serde_json::json!({}),
            owner: None,
        }
    }

    fn replayed(subscription: &Subscription) -> Vec<u64> {
        match &subscription.resume {
            Resume::Replayed(events) => events.iter().map(|event| event.id).collect(),
            Resume::Resync => panic!("resync"),
        }
    }

    #[test]
    fn resuming_replays_exactly_what_was_missed_or_asks_for_a_resync() {
        let hub = LiveHub::new(HubSettings { replay: 3, queue: 8, per_principal: 8 }, Timestamp::from_unix_micros(100));
        let ids: Vec<u64> = (0..5).map(|_| hub.publish(event("token.created"))).collect();
        assert_eq!(ids, [100, 101, 102, 103, 104]);
        assert_eq!(replayed(&hub.subscribe("a", Some(102)).unwrap()), [103, 104]);
        assert_eq!(replayed(&hub.subscribe("a", Some(101)).unwrap()), [102, 103, 104]);
        assert_eq!(replayed(&hub.subscribe("a", Some(104)).unwrap()), Vec::<u64>::new());
        assert!(matches!(hub.subscribe("a", Some(100)).unwrap().resume, Resume::Resync), "103 is gone");
        assert!(matches!(hub.subscribe("a", Some(7)).unwrap().resume, Resume::Resync), "an earlier process");
        assert!(matches!(hub.subscribe("a", Some(900)).unwrap().resume, Resume::Resync), "from the future");
        let fresh = LiveHub::new(HubSettings::default(), Timestamp::from_unix_micros(100));
        assert_eq!(replayed(&fresh.subscribe("a", Some(99)).unwrap()), Vec::<u64>::new());
    }

    #[test]
    fn each_principal_holds_at_most_its_share_of_streams() {
        let hub = LiveHub::new(HubSettings { replay: 3, queue: 8, per_principal: 2 }, Timestamp::from_unix_micros(1));
        let first = hub.subscribe("alice", None).unwrap();
        let _second = hub.subscribe("alice", None).unwrap();
        assert!(matches!(hub.subscribe("alice", None), Err(Error::TooManyStreams { limit: 2 })));
        let _bob = hub.subscribe("bob", None).unwrap();
        assert_eq!(hub.subscribers(), 3);
        drop(first);
        assert!(hub.subscribe("alice", None).is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn owners_see_their_events_and_admins_all() {
        let owner = OwnerId::User(tollgate_types::UserId::generate());
        let hub = LiveHub::new(HubSettings::default(), Timestamp::from_unix_micros(1));
        let mut subscription = hub.subscribe("x", None).unwrap();
        hub.publish(NewLiveEvent { owner: Some(owner), ..event("token.revoked") });
        hub.publish(event("writer.degraded"));
        let mine = subscription.receiver.try_recv().unwrap();
        let system = subscription.receiver.try_recv().unwrap();
        assert!(Visibility::Owner(owner).sees(&mine) && !Visibility::Owner(owner).sees(&system));
        let other = OwnerId::User(tollgate_types::UserId::generate());
        assert!(!Visibility::Owner(other).sees(&mine));
        assert!(Visibility::Everything.sees(&mine) && Visibility::Everything.sees(&system));
    }
}

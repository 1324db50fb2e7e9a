//! Feeding the hub: the audit log's tail (every process's and node's changes, in commit order)
//! turned into live events with the owner who may see each, and metering state sampled every
//! second (the writer degraded or recovered, usage events written per second, quota refusals per
//! token).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate_store::{AuditFilter, PageRequest, Store};
use tollgate_types::{AgentId, AuditEntry, Clock, LeaseId, OwnerId, TokenId, UserId};

use super::{LiveHub, LiveRelay, NewLiveEvent};
use crate::agents::RiskLevel;
use crate::{Metering, Result};

/// How often the tail looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailSettings {
    /// How often the audit log is read for new entries (default 25 ms: a revocation is seen by
    /// subscribers within about that, whichever process made it).
    pub poll: Duration,
    /// How often metering state is sampled (default 1 s).
    pub sample: Duration,
}

impl Default for TailSettings {
    fn default() -> Self {
        Self { poll: Duration::from_millis(25), sample: Duration::from_secs(1) }
    }
}

/// Budget thresholds announced when spending crosses them, in basis points.
const THRESHOLDS: [u32; 4] = [5_000, 8_000, 9_500, 10_000];
/// Entries read per look.
const BATCH: u32 = 1_000;
/// Owners remembered per kind of subject before the cache starts over.
const CACHE: usize = 10_000;

/// The running tail; stops when dropped or at [`LiveTail::stop`].
#[derive(Debug)]
pub struct LiveTail {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveTail {
    /// Starts tailing from the end of the audit log as it is now. With a `relay`, the metering
    /// samples (which only this node knows) also go to the other nodes.
    pub async fn start(
        hub: LiveHub,
        store: Arc<dyn Store>,
        metering: Option<Metering>,
        clock: Arc<dyn Clock>,
        settings: TailSettings,
        relay: Option<LiveRelay>,
    ) -> Result<Self> {
        let newest = store.list_audit(&AuditFilter::default(), &PageRequest::first(1)).await?;
        let after = newest.items.first().map_or(0, |entry| entry.sequence);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut state = Tail {
            hub,
            relay,
            store,
            clock,
            after,
            owners: HashMap::new(),
            spent_bp: HashMap::new(),
            exhausted: HashSet::new(),
        };
        let task = tokio::spawn(async move { state.run(metering, settings, stopped).await });
        Ok(Self { stop, task: Some(task) })
    }

    /// Stops the tail and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LiveTail {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct Tail {
    hub: LiveHub,
    relay: Option<LiveRelay>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    after: i64,
    owners: HashMap<String, Option<OwnerId>>,
    spent_bp: HashMap<AgentId, u32>,
    exhausted: HashSet<LeaseId>,
}

impl Tail {
    async fn run(
        &mut self,
        metering: Option<Metering>,
        settings: TailSettings,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(settings.poll.max(Duration::from_millis(1)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sample = tokio::time::interval(settings.sample.max(Duration::from_millis(10)));
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampler = Sampler::default();
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = poll.tick() => {
                    // A full batch means more are waiting: read on without waiting for the tick.
                    while self.read_batch().await == BATCH as usize {}
                }
                _ = sample.tick() => {
                    if let Some(metering) = &metering {
                        for event in sampler.sample(metering, self.clock.now(), settings.sample) {
                            if let Some(relay) = &self.relay {
                                relay.forward(&event);
                            }
                            self.hub.publish(event);
                        }
                    }
                }
            }
        }
    }

    /// Publishes the events of the next entries; returns how many entries were read.
    async fn read_batch(&mut self) -> usize {
        let entries = match self.store.audit_chain(self.after, BATCH).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(error = %error, "live events: the audit log could not be read; retrying");
                return 0;
            }
        };
        for entry in &entries {
            self.after = entry.sequence;
            for event in self.events_of(entry).await {
                self.hub.publish(event);
            }
        }
        entries.len()
    }

    async fn events_of(&mut self, entry: &AuditEntry) -> Vec<NewLiveEvent> {
        let audit = &entry.event;
        let kind = match audit.action.as_str() {
            "token.create" => "token.created",
            "token.revoke" => "token.revoked",
            "token.rotate" => "token.rotated",
            "user.suspend" => "user.suspended",
            "user.set_role" => "user.role_changed",
            "user.delete" => "user.deleted",
            "agent.pause" => "agent.paused",
            "agent.resume" => "agent.resumed",
            "budget.lease.open" => "lease.opened",
            "budget.lease.return" => "lease.returned",
            "budget.lease.expire" => "lease.expired",
            "budget.lease.revoke" => "lease.revoked",
            "budget.lease.report" => return self.report_events(entry).await,
            _ => return Vec::new(),
        };
        let owner = self.owner_of(&audit.target).await;
        let data = json!({ "actor": audit.actor.as_str(), "reason": audit.reason, "after": audit.after });
        vec![NewLiveEvent { kind, at: audit.at, subject: Some(audit.target.clone()), data, owner }]
    }

    /// A report may exhaust its lease and carry its agent's spending across a threshold.
    async fn report_events(&mut self, entry: &AuditEntry) -> Vec<NewLiveEvent> {
        let audit = &entry.event;
        let Ok(lease_id) = LeaseId::parse(&audit.target) else { return Vec::new() };
        let Ok(lease) = self.store.budget_lease(&lease_id, self.clock.now()).await else { return Vec::new() };
        let owner = self.owner_of(&audit.target).await;
        let mut events = Vec::new();
        if lease.remaining() == 0 && self.exhausted.insert(lease_id) {
            if self.exhausted.len() > CACHE {
                self.exhausted.clear();
            }
            let data = json!({ "agent_id": lease.agent, "granted": lease.granted });
            events.push(NewLiveEvent {
                kind: "lease.exhausted",
                at: audit.at,
                subject: Some(lease_id.to_string()),
                data,
                owner,
            });
        }
        let Ok(account) = self.store.budget_account(&lease.agent).await else { return events };
        let (now, _) = RiskLevel::of(account.spent, account.allocated);
        let cost = audit.after.as_ref().and_then(|after| after["cost"].as_i64()).unwrap_or(0);
        let before = *self
            .spent_bp
            .entry(lease.agent)
            .or_insert_with(|| RiskLevel::of(account.spent.saturating_sub(cost), account.allocated).0);
        for threshold in THRESHOLDS.into_iter().filter(|threshold| before < *threshold && now >= *threshold) {
            let data = json!({
                "agent_id": lease.agent,
                "threshold_percent": threshold / 100,
                "percent_used": f64::from(now.min(1_000_000)) / 100.0,
                "allocated": account.allocated,
                "spent": account.spent,
            });
            events.push(NewLiveEvent {
                kind: "budget.threshold_crossed",
                at: audit.at,
                subject: Some(lease.agent.to_string()),
                data,
                owner,
            });
        }
        if self.spent_bp.len() > CACHE {
            self.spent_bp.clear();
        }
        self.spent_bp.insert(lease.agent, now);
        events
    }

    /// The owner of a token, user, agent or lease (remembered; `None` when it cannot be read, so
    /// only admins see the event).
    async fn owner_of(&mut self, target: &str) -> Option<OwnerId> {
        if let Some(owner) = self.owners.get(target) {
            return *owner;
        }
        let owner = if let Ok(id) = TokenId::parse(target) {
            self.store.token(&id).await.ok().map(|token| token.owner)
        } else if let Ok(id) = UserId::parse(target) {
            Some(OwnerId::User(id))
        } else if let Ok(id) = AgentId::parse(target) {
            self.store.agent(&id).await.ok().map(|agent| agent.owner)
        } else if let Ok(id) = LeaseId::parse(target) {
            match self.store.budget_lease(&id, self.clock.now()).await {
                Ok(lease) => self.store.agent(&lease.agent).await.ok().map(|agent| agent.owner),
                Err(_) => None,
            }
        } else {
            None
        };
        if self.owners.len() >= CACHE {
            self.owners.clear();
        }
        self.owners.insert(target.to_owned(), owner);
        owner
    }
}

/// Metering state as last sampled.
#[derive(Default)]
struct Sampler {
    degraded: Option<String>,
    written: Option<u64>,
}

impl Sampler {
    fn sample(&mut self, metering: &Metering, at: tollgate_types::Timestamp, every: Duration) -> Vec<NewLiveEvent> {
        let stats = metering.stats();
        let mut events = Vec::new();
        let system = |kind, data| NewLiveEvent { kind, at, subject: None, data, owner: None };
        match (&self.degraded, &stats.degraded) {
            (None, Some(reason)) => events.push(system("writer.degraded", json!({ "reason": reason }))),
            (Some(_), None) => events.push(system("writer.recovered", json!({}))),
            _ => {}
        }
        self.degraded = stats.degraded.clone();
        let (refusals, others) = metering.take_quota_refusals();
        for refusal in refusals {
            let data = json!({ "token_id": refusal.token_id, "refused": refusal.refused, "limit": refusal.limit });
            events.push(NewLiveEvent {
                kind: "quota.exceeded",
                at,
                subject: Some(refusal.token_id.to_string()),
                data,
                owner: Some(refusal.owner),
            });
        }
        if others > 0 {
            events.push(system("quota.exceeded", json!({ "token_id": null, "refused": others, "limit": null })));
        }
        if let Some(before) = self.written.replace(stats.written_events) {
            let written = stats.written_events.saturating_sub(before);
            if written > 0 {
                let seconds = every.as_secs_f64().max(0.001);
                let data = json!({ "events": written, "per_second": (written as f64 / seconds).round() });
                events.push(system("requests.completed", data));
            }
        }
        events
    }
}

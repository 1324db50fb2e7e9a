//! Following the changes other processes and nodes make, so that every node refuses a revoked
//! token (a suspended or demoted owner, a paused agent) within a stated bound.
//!
//! The audit log is the revocation epoch: every change that affects verification appends to it in
//! the transaction that makes the change, and its sequence numbers follow commit order without gaps
//! (one writer on SQLite; the append lock on PostgreSQL). The follower reads the log after the last
//! sequence it applied, every `poll`: a token's entry evicts that token from the verify cache, an
//! owner's, agent's or project's entry clears the cache, and a limit's, rate limit's or price's entry
//! reloads metering's settings. After each look it confirms to the cache that everything committed
//! before the look began is applied; the cache answers only while that confirmation is younger than
//! `bound`, and otherwise reads through to the store. Where the store can hint that the log grew
//! (PostgreSQL's LISTEN/NOTIFY), the follower also looks at once on a hint: the poll is the
//! guarantee, the hint the fast path. A node that cannot read the log (its database is
//! away) therefore stops serving from memory after `bound`, and nothing is missed while it is away:
//! the next look starts from the last sequence applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_store::{AuditFilter, PageRequest, Store};
use tollgate_types::{AuditEntry, TokenId};

use crate::{Metering, Result, TokenManager};

/// How often the follower looks and how stale a node may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowSettings {
    /// How often the audit log is read (default 100 ms).
    pub poll: Duration,
    /// How old the last confirmed look may be before the verify cache stops answering (default 1 s).
    /// A change made anywhere is applied here within this bound, or this node reads through.
    pub bound: Duration,
}

impl Default for FollowSettings {
    fn default() -> Self {
        Self { poll: Duration::from_millis(100), bound: Duration::from_secs(1) }
    }
}

/// Entries read per look.
const BATCH: u32 = 1_000;

/// What an audit entry asks of this process's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing cached depends on it.
    None,
    /// One token's cached secrets are stale.
    EvictToken(TokenId),
    /// Cached tokens may carry an owner's, agent's or project's old state.
    ClearTokens,
    /// Limits, rate limits or prices changed.
    ReloadMetering,
}

/// Actions on owners, agents and projects that change nothing a cached token carries.
const HARMLESS: [&str; 9] = [
    "user.login_failed",
    "user.login_failed_repeated",
    "user.password_rehashed",
    "user.create",
    "user.unlock",
    "user.reset_password",
    "user.change_password",
    "agent.create",
    "project.create",
];

fn effect(entry: &AuditEntry) -> Effect {
    let action = entry.event.action.as_str();
    if action.starts_with("token.") || action.starts_with("agent.credential.") {
        return TokenId::parse(&entry.event.target).map_or(Effect::None, Effect::EvictToken);
    }
    if HARMLESS.contains(&action) {
        return Effect::None;
    }
    let family = action.split('.').next().unwrap_or_default();
    match family {
        "user" | "service_account" | "agent" | "project" => Effect::ClearTokens,
        "limit" | "rate_limit" | "price" => Effect::ReloadMetering,
        _ => Effect::None,
    }
}

/// The running follower; stops when dropped or at [`ChangeFollower::stop`].
#[derive(Debug)]
pub struct ChangeFollower {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ChangeFollower {
    /// Starts following from the end of the audit log as it is now, and from now on makes `tokens`'
    /// cache answer only within `settings.bound` of a confirmed look. `metering` (when the tokens'
    /// quotas are enforced) reloads its settings when they change elsewhere.
    pub async fn start(
        store: Arc<dyn Store>,
        tokens: TokenManager,
        metering: Option<Metering>,
        settings: FollowSettings,
    ) -> Result<Self> {
        let looked = Instant::now();
        let newest = store.list_audit(&AuditFilter::default(), &PageRequest::first(1)).await?;
        let after = newest.items.first().map_or(0, |entry| entry.sequence);
        tokens.cache.require_confirmation(settings.bound, looked);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let hint = Arc::new(tokio::sync::Notify::new());
        let waker = Arc::clone(&hint);
        store.watch_audit(Arc::new(move || waker.notify_one()));
        let follower = Follower { store, tokens, metering, after, reload_pending: false, away_since: None };
        let task = tokio::spawn(follower.run(settings.poll, hint, stopped));
        Ok(Self { stop, task: Some(task) })
    }

    /// Stops following and waits for the task. The cache keeps requiring confirmations, so it reads
    /// through from `bound` on.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ChangeFollower {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct Follower {
    store: Arc<dyn Store>,
    tokens: TokenManager,
    metering: Option<Metering>,
    after: i64,
    /// Metering's settings changed elsewhere and are not reloaded yet.
    reload_pending: bool,
    /// When looks started failing (logged once per outage).
    away_since: Option<Instant>,
}

impl Follower {
    /// Looks every `poll`, and at once when the store hints that the log grew.
    async fn run(
        mut self,
        poll: Duration,
        hint: Arc<tokio::sync::Notify>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(poll.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = ticks.tick() => self.look().await,
                () = hint.notified() => self.look().await,
            }
        }
    }

    /// Applies every entry committed before this look began, then confirms it.
    async fn look(&mut self) {
        let looked = Instant::now();
        match self.catch_up().await {
            Ok(()) => {
                if let Some(since) = self.away_since.take() {
                    tracing::info!(
                        away_ms = since.elapsed().as_millis() as u64,
                        "change follower: the audit log is readable again"
                    );
                }
                self.tokens.cache.confirm(looked);
            }
            Err(error) => {
                if self.away_since.is_none() {
                    self.away_since = Some(looked);
                    tracing::warn!(error = %error, "change follower: the audit log cannot be read; verifies read through to the store until it can");
                }
            }
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        loop {
            let entries = self.store.audit_chain(self.after, BATCH).await?;
            for entry in &entries {
                match effect(entry) {
                    Effect::None => {}
                    Effect::EvictToken(id) => self.tokens.cache.evict(&id),
                    Effect::ClearTokens => self.tokens.cache.clear(),
                    Effect::ReloadMetering => self.reload_pending = true,
                }
            }
            if let Some(last) = entries.last() {
                self.after = last.sequence;
                tracing::trace!(
                    entries = entries.len(),
                    through = last.sequence,
                    "change follower applied audit entries"
                );
            }
            if entries.len() < BATCH as usize {
                break;
            }
        }
        if self.reload_pending
            && let Some(metering) = &self.metering
        {
            metering.reload_settings().await?;
        }
        self.reload_pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tollgate_types::{Actor, AuditEvent, Timestamp};

    use super::*;

    fn entry(action: &str, target: &str) -> AuditEntry {
        let event = AuditEvent::new(Actor::system(), action, target, Timestamp::from_unix_micros(0));
        AuditEntry { sequence: 1, event, previous_hash: [0; 32], hash: [0; 32] }
    }

    #[test]
    fn each_kind_of_change_has_its_effect() {
        let token = TokenId::generate();
        assert_eq!(effect(&entry("token.revoke", &token.to_string())), Effect::EvictToken(token));
        assert_eq!(effect(&entry("agent.credential.revoke", &token.to_string())), Effect::EvictToken(token));
        assert_eq!(effect(&entry("token.cleanup", "tokens")), Effect::None);
        for action in ["user.suspend", "user.set_role", "user.delete", "service_account.suspend", "agent.pause"] {
            assert_eq!(effect(&entry(action, "usr_x")), Effect::ClearTokens, "{action}");
        }
        for action in ["project.remove_member", "agent.update"] {
            assert_eq!(effect(&entry(action, "x")), Effect::ClearTokens, "{action}");
        }
        for action in ["limit.set", "rate_limit.remove", "price.set"] {
            assert_eq!(effect(&entry(action, "x")), Effect::ReloadMetering, "{action}");
        }
        for action in ["user.login_failed", "user.login_failed_repeated", "user.password_rehashed", "session.refresh"] {
            assert_eq!(effect(&entry(action, "x")), Effect::None, "{action}");
        }
    }
}

//! The shared limiter with a way out: Redis while it answers, this process's share of the policy while it
//! does not, and back to Redis by itself.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, QuantaClock};
use tokio::time::{Instant, MissedTickBehavior};

use crate::gcra;
use crate::{
    BackgroundTask, Decision, LiveNodes, LocalLimiter, RateKey, RateLimitError, RateLimitStats, RateLimiter, RateQuota,
    RedisLimiter, Result,
};

/// How long a [`FallbackLimiter`] waits for Redis, and how often it tries again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackConfig {
    timeout: Duration,
    retry_interval: Duration,
}

impl Default for FallbackConfig {
    /// 50 ms per call, one retry a second.
    fn default() -> Self {
        Self { timeout: Duration::from_millis(50), retry_interval: Duration::from_secs(1) }
    }
}

impl FallbackConfig {
    /// The longest one check waits for Redis before deciding in process.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After a failure, how long checks decide in process without asking Redis before one asks again.
    pub fn with_retry_interval(mut self, retry_interval: Duration) -> Self {
        self.retry_interval = retry_interval;
        self
    }

    /// The longest one check waits for Redis.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The pause between tries while Redis is away.
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
    }
}

/// A [`RedisLimiter`] that never fails closed: when Redis errs or does not answer within the timeout, the check
/// is decided by a [`LocalLimiter`] at this node's share of the policy, and the limiter is *degraded*.
///
/// - **The share.** `per_period` and `burst` are divided by the number of live nodes ([`LiveNodes`], kept up to
///   date by a [`crate::NodeRegistry`] or by the caller), each at least 1, so the nodes together admit about
///   the policy while they cannot coordinate. A cost above the divided burst (but within the real one) spends
///   the whole divided burst instead of being refused forever. Decisions then report the divided `limit`.
/// - **No waiting while degraded.** Checks go straight to the local limiter; once per retry interval one check
///   (or the task from [`Self::spawn_recovery`]) tries Redis again, and the first answer ends the degraded
///   state. After Redis returns, it takes up to two retry intervals to notice: the first try after a failed
///   reconnection only starts the next one.
/// - **What is lost.** Budgets spent in Redis are unknown to the local limiter and the other way round, so at
///   each switch a key may get up to one extra (divided) burst. A call cut off by the timeout may still have
///   spent its cells in Redis.
///
/// Costs of zero or above the burst are errors, degraded or not, exactly as for the other limiters.
///
/// ```no_run
/// # async fn run() -> tollgate_ratelimit::Result<()> {
/// use std::num::NonZeroUsize;
/// use std::sync::Arc;
/// use tollgate_ratelimit::{
///     FallbackConfig, FallbackLimiter, LiveNodes, LocalLimiter, NodeRegistry, RateLimiter, RedisLimiter,
///     RedisLimiterConfig,
/// };
///
/// let redis = RedisLimiter::new(RedisLimiterConfig::new("redis://127.0.0.1:6379"))?; // connects on first use
/// let nodes = LiveNodes::new(1);
/// let heartbeat = NodeRegistry::new(&redis, "node-a:8080", nodes.clone()).spawn()?;
/// let local = LocalLimiter::new(NonZeroUsize::new(100_000).expect("non-zero"));
/// let limiter = Arc::new(FallbackLimiter::new(redis, local, nodes, FallbackConfig::default()));
/// let recovery = limiter.spawn_recovery()?;
/// let shared: Arc<dyn RateLimiter> = limiter;
/// // Keep `heartbeat` and `recovery` for as long as `shared` is used: dropping them stops their tasks.
/// # drop((heartbeat, recovery, shared));
/// # Ok(())
/// # }
/// ```
pub struct FallbackLimiter<C: Clock = QuantaClock> {
    redis: RedisLimiter,
    local: LocalLimiter<C>,
    nodes: LiveNodes,
    config: FallbackConfig,
    start: Instant,
    degraded: AtomicBool,
    /// Nanoseconds after `start` before which a degraded limiter does not ask Redis.
    next_try: AtomicU64,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    limited: AtomicU64,
    fallback_decisions: AtomicU64,
    backend_errors: AtomicU64,
}

impl<C: Clock> FallbackLimiter<C> {
    /// Decides with `redis`, falling back to `local` at the policy divided by `nodes`.
    pub fn new(redis: RedisLimiter, local: LocalLimiter<C>, nodes: LiveNodes, config: FallbackConfig) -> Self {
        Self {
            redis,
            local,
            nodes,
            config,
            start: Instant::now(),
            degraded: AtomicBool::new(false),
            next_try: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Spends `cost` cells of `key`'s budget under `quota`: in Redis when it answers in time, else in process at
    /// this node's share. Errors only for a cost of zero or above the burst.
    pub async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        gcra::check_cost(quota, cost)?;
        let decision = match self.check_shared(key, quota, cost).await {
            Some(decision) => decision,
            None => self.check_local(key, quota, cost)?,
        };
        let counter = if decision.is_allowed() { &self.counters.allowed } else { &self.counters.limited };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(decision)
    }

    /// True while checks are decided in process because Redis failed and has not answered since.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Asks Redis for a `PONG` if the limiter is degraded and a try is due; returns whether it is healthy now.
    /// [`Self::spawn_recovery`] calls this periodically, so the degraded state ends even without traffic.
    pub async fn probe(&self) -> bool {
        if !self.is_degraded() {
            return true;
        }
        if !self.claim_try() {
            return false;
        }
        self.ask_redis(self.redis.ping()).await.is_some()
    }

    /// The node count the fallback divides by.
    pub fn nodes(&self) -> &LiveNodes {
        &self.nodes
    }

    /// The shared limiter, for its key names or a [`crate::NodeRegistry`] on the same connection.
    pub fn redis(&self) -> &RedisLimiter {
        &self.redis
    }

    /// The in-process limiter used while degraded.
    pub fn local(&self) -> &LocalLimiter<C> {
        &self.local
    }

    /// The timeouts in force.
    pub fn config(&self) -> FallbackConfig {
        self.config
    }

    /// Running totals: every decision in `allowed` / `limited`, those made in process also in
    /// `fallback_decisions`, failed or timed-out Redis calls in `backend_errors`, and the local limiter's
    /// eviction counters.
    pub fn stats(&self) -> RateLimitStats {
        let local = self.local.stats();
        RateLimitStats {
            allowed: self.counters.allowed.load(Ordering::Relaxed),
            limited: self.counters.limited.load(Ordering::Relaxed),
            fallback_decisions: self.counters.fallback_decisions.load(Ordering::Relaxed),
            backend_errors: self.counters.backend_errors.load(Ordering::Relaxed),
            ..local
        }
    }

    /// Redis's decision, or `None` when it failed, timed out, or was not asked because the limiter is degraded
    /// and no try is due.
    async fn check_shared(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Option<Decision> {
        if self.is_degraded() && !self.claim_try() {
            return None;
        }
        self.ask_redis(self.redis.decide(key, quota, cost)).await
    }

    /// Runs `call` within the timeout and records how Redis did: an answer ends the degraded state, a failure or
    /// silence starts it (or keeps it) and is counted.
    async fn ask_redis<T>(&self, call: impl Future<Output = Result<T>>) -> Option<T> {
        let error = match tokio::time::timeout(self.config.timeout, call).await {
            Ok(Ok(answer)) => {
                self.recovered();
                return Some(answer);
            }
            Ok(Err(error)) => error,
            Err(_elapsed) => RateLimitError::Timeout { timeout: self.config.timeout },
        };
        self.failed(&error);
        None
    }

    fn check_local(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        self.counters.fallback_decisions.fetch_add(1, Ordering::Relaxed);
        let share = node_share(quota, self.nodes.count());
        self.local.check(key, &share, cost.min(share.burst()))
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes the due try for this caller, so only one check per retry interval waits on Redis.
    fn claim_try(&self) -> bool {
        let now = self.now_nanos();
        let due = self.next_try.load(Ordering::Acquire);
        now >= due
            && self
                .next_try
                .compare_exchange(due, self.after_retry_interval(now), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn after_retry_interval(&self, now: u64) -> u64 {
        now.saturating_add(u64::try_from(self.config.retry_interval.as_nanos()).unwrap_or(u64::MAX))
    }

    fn failed(&self, error: &RateLimitError) {
        self.counters.backend_errors.fetch_add(1, Ordering::Relaxed);
        self.next_try.store(self.after_retry_interval(self.now_nanos()), Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = %error.chain(),
                nodes = self.nodes.count(),
                "shared rate limiter degraded: deciding in process at the policy divided by the live nodes"
            );
        } else {
            tracing::debug!(error = %error.chain(), "shared rate limiter still unreachable");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!("shared rate limiter recovered: deciding in redis again");
        }
    }
}

impl<C> FallbackLimiter<C>
where
    C: Clock + Send + Sync + 'static,
{
    /// Starts a task that probes Redis every quarter of the retry interval while the limiter is degraded (at most
    /// one try per retry interval), so [`Self::is_degraded`] turns false without waiting for traffic. It stops
    /// when the handle is dropped or the limiter is. Errors outside a Tokio runtime.
    pub fn spawn_recovery(self: &Arc<Self>) -> Result<BackgroundTask> {
        let limiter = Arc::downgrade(self);
        let tick = (self.config.retry_interval / 4).max(Duration::from_millis(1));
        BackgroundTask::spawn(probe_forever(limiter, tick))
    }
}

async fn probe_forever<C: Clock + Send + Sync>(limiter: Weak<FallbackLimiter<C>>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(limiter) = limiter.upgrade() else { return };
        limiter.probe().await;
    }
}

/// `quota` with `per_period` and `burst` divided by `nodes`, each at least 1. A share the quota rules refuse
/// (a burst that would take over 100 years to refill) keeps the whole quota: too generous rather than closed.
fn node_share(quota: &RateQuota, nodes: u32) -> RateQuota {
    if nodes <= 1 {
        return *quota;
    }
    let per_period = (quota.per_period() / nodes).max(1);
    let burst = (quota.burst() / nodes).max(1);
    RateQuota::new(per_period, quota.period(), burst).unwrap_or(*quota)
}

impl<C: Clock> fmt::Debug for FallbackLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLimiter")
            .field("degraded", &self.is_degraded())
            .field("nodes", &self.nodes.count())
            .field("config", &self.config)
            .field("redis", &self.redis)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// `len` and `evict_idle` are the local limiter's: the keys the fallback holds in this process.
#[async_trait]
impl<C> RateLimiter for FallbackLimiter<C>
where
    C: Clock + Send + Sync,
{
    async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        FallbackLimiter::check(self, key, quota, cost).await
    }

    fn len(&self) -> usize {
        self.local.len()
    }

    fn evict_idle(&self) -> usize {
        self.local.evict_idle()
    }

    fn stats(&self) -> RateLimitStats {
        FallbackLimiter::stats(self)
    }

    fn is_degraded(&self) -> bool {
        FallbackLimiter::is_degraded(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(per_period: u32, period: Duration, burst: u32) -> RateQuota {
        RateQuota::new(per_period, period, burst).unwrap()
    }

    #[test]
    fn each_node_gets_its_share_and_never_less_than_one() {
        let minute = Duration::from_secs(60);
        let policy = quota(100, minute, 20);
        assert_eq!(node_share(&policy, 0), policy);
        assert_eq!(node_share(&policy, 1), policy);
        assert_eq!(node_share(&policy, 3), quota(33, minute, 6));
        assert_eq!(node_share(&policy, 1_000), quota(1, minute, 1));
    }

    #[test]
    fn a_share_the_rules_refuse_keeps_the_whole_quota() {
        // 11 cells per 60 years, burst 17: a full burst refills in 93 years. A sixth of it, 1 per 60 years with a
        // burst of 2, would take 120 years, more than a quota may.
        let sixty_years = Duration::from_secs(60 * 365 * 24 * 3600);
        let policy = quota(11, sixty_years, 17);
        assert!(RateQuota::new(1, sixty_years, 2).is_err());
        assert_eq!(node_share(&policy, 6), policy);
    }
}

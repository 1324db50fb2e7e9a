//! The shared limiter: the same GCRA as the in-process one, run atomically in one Redis script on Redis's own
//! clock, so every process pointed at the same Redis spends one budget per key.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::gcra::{self, Step};
use crate::{Decision, RateKey, RateLimitError, RateLimitStats, RateLimiter, RateQuota, Result};

/// The GCRA step, loaded once per server and then called by its SHA1 (`EVALSHA`, `EVAL` again after a
/// restart).
const GCRA_SCRIPT: &str = include_str!("gcra.lua");

/// Where and how a [`RedisLimiter`] connects, and how it names its keys.
///
/// ```
/// use std::time::Duration;
/// use tollgate_ratelimit::RedisLimiterConfig;
///
/// let config = RedisLimiterConfig::new("redis://:hunter2@127.0.0.1:6379/0")
///     .with_key_prefix("staging:rl:")
///     .with_response_timeout(Duration::from_millis(200));
/// assert_eq!(config.key_prefix(), "staging:rl:");
/// assert!(!format!("{config:?}").contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct RedisLimiterConfig {
    url: String,
    key_prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl RedisLimiterConfig {
    /// The prefix of every key the limiter writes unless [`Self::with_key_prefix`] says otherwise.
    pub const DEFAULT_KEY_PREFIX: &str = "tollgate:rl:";

    /// Connects to `url` (`redis://[:password@]host[:port][/db]` or `redis+unix:///path`), with the default
    /// prefix and timeouts of one second. The URL may hold a password: `Debug` never shows it.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
        }
    }

    /// Names every key `prefix` + the [`RateKey`]'s 32 hex digits, so several deployments can share a Redis.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one attempt to (re)connect may take.
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one command may take before it fails. [`crate::FallbackLimiter`] waits far less than this.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
}

impl fmt::Debug for RedisLimiterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiterConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// The URL without its credentials: whatever stands between `://` and the last `@`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***{}", &url[..scheme_end], &url[at..]),
        _ => url.to_owned(),
    }
}

/// A per-key GCRA limiter whose state lives in Redis: one key per [`RateKey`] holding its theoretical arrival
/// time, read and written by one Lua script that takes the time from Redis (`TIME`). Processes on several nodes
/// sharing one Redis therefore share one budget exactly, whatever their own clocks say. A key expires
/// (`PX`) when its bucket is full again, so idle keys cost Redis nothing.
///
/// Decisions are those of [`crate::LocalLimiter`] for the same quota and cost: the script returns only how
/// much time the key owed and whether the step fit, and the decision is computed from that with the very
/// arithmetic the in-process limiter uses. Costs of zero or above the burst fail before Redis is asked.
///
/// The connection is Redis's [`ConnectionManager`]: one multiplexed connection, re-established after a failure
/// on the next call. A call that fails returns [`RateLimitError::Backend`]; wrap the limiter in a
/// [`crate::FallbackLimiter`] to decide in process instead while Redis is away.
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    key_prefix: String,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    limited: AtomicU64,
    backend_errors: AtomicU64,
}

/// The script answered something the limiter cannot use.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from the rate limit script: {0}")]
struct UnexpectedReply(&'static str);

impl RedisLimiter {
    /// A limiter that connects on its first call, so it can be made while Redis is down. Errors for a URL that
    /// does not parse, or when called outside a Tokio runtime: the connection lives on it, and needs its I/O and
    /// time drivers (as `#[tokio::main]` and `#[tokio::test]` enable them).
    pub fn new(config: RedisLimiterConfig) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RateLimitError::InvalidConfig {
                reason: "a redis limiter must be made inside a tokio runtime",
            });
        }
        let client = Client::open(config.url.as_str()).map_err(RateLimitError::backend)?;
        // No retries inside the driver: a caller should not wait on its backoff. The next call reconnects,
        // and the fallback limiter paces those calls.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let connection =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(RateLimitError::backend)?;
        Ok(Self {
            connection,
            script: Script::new(GCRA_SCRIPT),
            key_prefix: config.key_prefix,
            counters: Counters::default(),
        })
    }

    /// [`Self::new`], then a `PING`: errors also when Redis does not answer.
    pub async fn connect(config: RedisLimiterConfig) -> Result<Self> {
        let limiter = Self::new(config)?;
        limiter.ping().await?;
        Ok(limiter)
    }

    /// Spends `cost` cells of `key`'s budget under `quota` in Redis, if available. Errors for a cost of zero or
    /// above the burst (without asking Redis), and with [`RateLimitError::Backend`] when Redis fails.
    pub async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        gcra::check_cost(quota, cost)?;
        let decision = self.decide(key, quota, cost).await.inspect_err(|_| {
            self.counters.backend_errors.fetch_add(1, Ordering::Relaxed);
        })?;
        let counter = if decision.is_allowed() { &self.counters.allowed } else { &self.counters.limited };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(decision)
    }

    /// Asks Redis for a `PONG`.
    pub async fn ping(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PING").query_async::<()>(&mut connection).await.map_err(RateLimitError::backend)
    }

    /// The prefix of every key this limiter writes.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The Redis key holding `key`'s state: the prefix, then the key's 16 bytes in lowercase hex.
    pub fn storage_key(&self, key: &RateKey) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut storage_key = String::with_capacity(self.key_prefix.len() + 32);
        storage_key.push_str(&self.key_prefix);
        for byte in key.as_bytes() {
            storage_key.push(char::from(HEX[usize::from(byte >> 4)]));
            storage_key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        storage_key
    }

    /// Running totals of checks made through this limiter directly (not those a
    /// [`crate::FallbackLimiter`] makes through it, which it counts itself).
    pub fn stats(&self) -> RateLimitStats {
        RateLimitStats {
            allowed: self.counters.allowed.load(Ordering::Relaxed),
            limited: self.counters.limited.load(Ordering::Relaxed),
            backend_errors: self.counters.backend_errors.load(Ordering::Relaxed),
            ..RateLimitStats::default()
        }
    }

    /// A handle on the shared connection, for other commands on the same Redis (node counting).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// One GCRA step in Redis, uncounted; `cost` must have passed [`gcra::check_cost`].
    pub(crate) async fn decide(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        let emission = quota.emission_nanos();
        // Both fit: cost <= burst and the quota keeps T × burst under 100 years.
        let slack = emission * u64::from(quota.burst().saturating_sub(cost));
        let increment = emission * u64::from(cost);
        let mut connection = self.connection.clone();
        let (allowed, owed): (u8, String) = self
            .script
            .key(self.storage_key(key))
            .arg(slack)
            .arg(increment)
            .invoke_async(&mut connection)
            .await
            .map_err(RateLimitError::backend)?;
        let owed: u64 = owed.parse().map_err(|_| RateLimitError::backend(UnexpectedReply("owed is not a number")))?;
        // Relative to a `now` of zero, a TAT of `owed` is the key's state as Redis saw it.
        match (gcra::step(Some(owed), 0, quota, cost), allowed) {
            (Step::Allow { decision, .. }, 1) | (Step::Deny(decision), 0) => Ok(decision),
            _ => Err(RateLimitError::backend(UnexpectedReply("the script and the limiter disagree"))),
        }
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// `len` is always 0 (no key is held in this process: they live in Redis) and `evict_idle` drops nothing
/// (Redis expires each key when its bucket is full again).
#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        RedisLimiter::check(self, key, quota, cost).await
    }

    fn len(&self) -> usize {
        0
    }

    fn evict_idle(&self) -> usize {
        0
    }

    fn stats(&self) -> RateLimitStats {
        RedisLimiter::stats(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let config = RedisLimiterConfig::new("redis://user:s3cret-p@ss@cache.internal:6380/2");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("redis://***@cache.internal:6380/2"), "{debug}");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn made_outside_a_tokio_runtime_it_errs_instead_of_panicking() {
        let error = RedisLimiter::new(RedisLimiterConfig::new("redis://127.0.0.1:6379")).unwrap_err();
        assert!(matches!(error, RateLimitError::InvalidConfig { .. }), "{error:?}");
    }

    proptest::proptest! {
        /// The reduction the script relies on: a step depends on the TAT and the time only through what the key
        /// owes, `max(tat - now, 0)`, so a step at `now = 0` on that debt decides exactly what the real one does.
        #[test]
        fn a_step_depends_only_on_what_the_key_owes(
            per_period in 1u32..1_000,
            period_millis in 1u64..100_000,
            burst in 1u32..50,
            cost in 1u32..50,
            tat in 0u64..10_000_000_000_000,
            now in 0u64..10_000_000_000_000,
        ) {
            let quota = RateQuota::new(per_period, Duration::from_millis(period_millis), burst).unwrap();
            proptest::prop_assume!(cost <= burst);
            let decision_of = |step| match step {
                Step::Allow { decision, .. } | Step::Deny(decision) => decision,
            };
            let real = decision_of(gcra::step(Some(tat), now, &quota, cost));
            let reduced = decision_of(gcra::step(Some(tat.saturating_sub(now)), 0, &quota, cost));
            proptest::prop_assert_eq!(real, reduced);
        }
    }
}

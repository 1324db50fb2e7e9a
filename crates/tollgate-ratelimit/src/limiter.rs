//! The contract every limiter keeps (in process, on Redis, or Redis with a local fallback): the trait, its
//! decision and its counters.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::{RateKey, RateQuota, Result};

/// What a check decided. `limit` is the quota's burst; `reset_after` is how long until the key's bucket is
/// full again (all `limit` cells available), for `RateLimit-Reset`-style headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The cells were taken.
    Allowed {
        /// Cells of cost 1 still available right now.
        remaining: u32,
        /// The quota's burst.
        limit: u32,
        /// Time until the bucket is full again.
        reset_after: Duration,
    },
    /// Nothing was taken.
    Limited {
        /// Exactly how long until the same cost would be admitted, if nothing else is spent meanwhile.
        /// HTTP's `Retry-After` counts whole seconds: round this up.
        retry_after: Duration,
        /// The quota's burst.
        limit: u32,
        /// Time until the bucket is full again.
        reset_after: Duration,
    },
}

impl Decision {
    /// True when the cells were taken.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// Running totals since the limiter was made, for metrics. Decisions count once each, whatever their cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitStats {
    /// Checks that were allowed.
    pub allowed: u64,
    /// Checks that were limited.
    pub limited: u64,
    /// Keys dropped because their bucket was full again (no state lost).
    pub evicted_idle: u64,
    /// Keys dropped while still owing time because the key cap was reached: each such key gets a fresh burst.
    /// Non-zero means the cap is too small for the number of active keys.
    pub evicted_active: u64,
    /// Checks on a new key decided without storing it because no room could be made (fail-open for that check).
    pub untracked: u64,
    /// Checks a shared limiter decided in process because its backend failed, timed out or was being given time
    /// to recover. Always zero for a limiter without a fallback.
    pub fallback_decisions: u64,
    /// Calls to a shared backend that failed or timed out (each one also made a fallback decision, if the
    /// limiter has a fallback). Always zero for the in-process limiter.
    pub backend_errors: u64,
}

/// A per-key rate limiter. Held as `Arc<dyn RateLimiter>` by the facade and the server.
///
/// `check` is async because a shared backend (Redis) answers over the network; the in-process
/// [`crate::LocalLimiter`] also has a synchronous, allocation-free `check` for callers that hold it directly.
#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Spends `cost` cells of `key`'s budget under `quota`, if available. A key's quota may change between calls:
    /// the quota given applies from this check on. Errors only for a cost of zero or above the burst.
    async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision>;

    /// Keys currently held in this process's memory.
    fn len(&self) -> usize;

    /// True when no key is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key whose bucket is full again (indistinguishable from a new key); returns how many.
    fn evict_idle(&self) -> usize;

    /// Running totals for metrics.
    fn stats(&self) -> RateLimitStats;

    /// True while a shared limiter decides in process because its backend is unreachable (see
    /// [`crate::FallbackLimiter`]). A limiter with nothing to fall back from is never degraded.
    fn is_degraded(&self) -> bool {
        false
    }
}

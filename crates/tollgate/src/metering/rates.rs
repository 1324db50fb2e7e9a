//! Per-token rate limits (GCRA, `tollgate-ratelimit`): the stored rates held in memory and the
//! limiter that spends them, applied in the verify path before quotas.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tollgate_ratelimit::{Decision, RateKey, RateLimitError, RateLimitStats, RateLimiter, RateQuota};
use tollgate_store::{RateLimitRecord, Store};
use tollgate_types::{RateLimitSpec, Refusal, RefusalCode, TokenId, ValidationError};

use super::RateLimitStatus;
use crate::{Error, Result};

/// The GCRA quota of a stored rate: `requests_per_minute` a minute, `burst` at once. A rate the
/// limiter cannot use (a burst no window could refill) is bad input naming the field.
pub(crate) fn quota_of(spec: &RateLimitSpec) -> Result<RateQuota> {
    RateQuota::new(spec.requests_per_minute(), Duration::from_secs(60), spec.burst()).map_err(|error| match error {
        RateLimitError::InvalidQuota { field, reason } => {
            let field = if field == "burst" { "burst" } else { "requests_per_minute" };
            Error::Validation(ValidationError::new(field, reason))
        }
        other => Error::Config(format!("rate limit: {other}")),
    })
}

/// Stored rates by token, and the limiter.
#[derive(Debug)]
pub(crate) struct RateLimits {
    limiter: Arc<dyn RateLimiter>,
    rates: RwLock<Arc<HashMap<TokenId, RateQuota>>>,
}

impl RateLimits {
    pub(crate) fn new(limiter: Arc<dyn RateLimiter>) -> Self {
        Self { limiter, rates: RwLock::new(Arc::default()) }
    }

    /// The limiter's counters, and whether it decides locally because its shared backend is away.
    pub(crate) fn limiter_state(&self) -> (RateLimitStats, bool) {
        (self.limiter.stats(), self.limiter.is_degraded())
    }

    /// Replaces the rates in memory with `records` (skipping any the limiter would refuse to use).
    pub(crate) fn apply(&self, records: &[RateLimitRecord]) {
        let rates = records
            .iter()
            .filter_map(|record| match quota_of(&record.spec) {
                Ok(quota) => Some((record.token_id, quota)),
                Err(error) => {
                    tracing::warn!(token_id = %record.token_id, error = %error, "ignoring an unusable rate limit");
                    None
                }
            })
            .collect();
        *self.rates.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rates);
    }

    /// Applies one token's rate just stored (or removed, `None`) in memory.
    pub(crate) fn apply_one(&self, token_id: TokenId, spec: Option<&RateLimitSpec>) -> Result<()> {
        let quota = spec.map(quota_of).transpose()?;
        let mut rates = self.rates.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = HashMap::clone(&rates);
        match quota {
            Some(quota) => next.insert(token_id, quota),
            None => next.remove(&token_id),
        };
        *rates = Arc::new(next);
        Ok(())
    }

    /// Reads every rate from the store.
    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<()> {
        self.apply(&store.rate_limits().await?);
        Ok(())
    }

    /// Spends one request of `token_id`'s rate: `rate_limited` with the exact retry-after when none
    /// is available, else the state for `RateLimit-*` headers (`None` when the token has no rate).
    pub(crate) async fn check(&self, token_id: TokenId) -> Result<Option<RateLimitStatus>> {
        let quota = {
            let rates = self.rates.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if rates.is_empty() {
                return Ok(None);
            }
            match rates.get(&token_id) {
                Some(quota) => *quota,
                None => return Ok(None),
            }
        };
        let decision = self
            .limiter
            .check(&RateKey::from(token_id), &quota, 1)
            .await
            .map_err(|error| Error::Config(format!("rate limit: {error}")))?;
        match decision {
            Decision::Allowed { remaining, limit, reset_after } => Ok(Some(RateLimitStatus {
                limit: u64::from(limit),
                remaining: u64::from(remaining),
                reset: reset_after,
            })),
            Decision::Limited { retry_after, .. } => {
                let mut refusal = Refusal::new(RefusalCode::RateLimited);
                refusal.retry_after = Some(retry_after);
                Err(Error::Refused(refusal))
            }
        }
    }

    /// Drops limiter keys whose bucket is full again (bounded memory between full sweeps).
    pub(crate) fn evict_idle(&self) -> usize {
        self.limiter.evict_idle()
    }

    /// Keys the limiter holds.
    pub(crate) fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }
}

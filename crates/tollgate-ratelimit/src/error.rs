//! The crate's one error type: bad quotas and costs that can never be admitted, and a shared backend that failed.

use std::time::Duration;

/// Why a rate limit check could not be made. A refusal is not an error: it is [`crate::Decision::Limited`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota parameter is out of range; `field` is `per_period`, `period` or `burst`.
    #[error("invalid quota: {field} {reason}")]
    InvalidQuota {
        /// The offending field.
        field: &'static str,
        /// What the field must satisfy.
        reason: &'static str,
    },
    /// A check asked for zero cells; a cost is at least 1.
    #[error("invalid cost: must be at least 1")]
    ZeroCost,
    /// The cost is larger than the burst, so the request could never be admitted, however long the caller waits.
    #[error("cost {cost} exceeds the burst of {burst} and can never be admitted")]
    CostExceedsBurst {
        /// The cost asked for.
        cost: u32,
        /// The most cells the quota admits at once.
        burst: u32,
    },
    /// A limiter was set up wrongly (for instance outside a Tokio runtime); `reason` says how.
    #[error("invalid rate limiter configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The shared backend (Redis) failed or answered something the limiter cannot use. The source is the
    /// driver's error, boxed so no driver type is part of this crate's API.
    #[error("rate limit backend failed")]
    Backend {
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The shared backend did not answer in time.
    #[error("rate limit backend did not answer within {timeout:?}")]
    Timeout {
        /// How long the limiter waited.
        timeout: Duration,
    },
}

impl RateLimitError {
    /// Boxes a backend driver's error.
    #[cfg(feature = "redis")]
    pub(crate) fn backend(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend { source: Box::new(source) }
    }

    /// The error and its sources on one line, for logs.
    #[cfg(feature = "redis")]
    pub(crate) fn chain(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            source = cause.source();
        }
        line
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_cause() {
        let error = RateLimitError::backend(std::io::Error::other("connection refused"));
        assert_eq!(error.to_string(), "rate limit backend failed");
        assert_eq!(error.chain(), "rate limit backend failed: connection refused");
    }
}

/// The crate's result type.
pub type Result<T, E = RateLimitError> = std::result::Result<T, E>;

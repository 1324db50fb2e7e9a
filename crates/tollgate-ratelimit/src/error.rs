//! The crate's one error type: bad quotas and costs that can never be admitted.

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
}

/// The crate's result type.
pub type Result<T, E = RateLimitError> = std::result::Result<T, E>;

//! The facade's error: what went wrong, in terms a caller can act on.

use tollgate_store::StoreError;
use tollgate_types::{Refusal, ValidationError};

/// Errors from the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: names the field and the reason.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A presented credential was refused (verify).
    #[error(transparent)]
    Refused(Refusal),
    /// The principal may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing does not exist (or the principal may not know it does).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for.
        entity: &'static str,
    },
    /// The change contradicts the stored state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Storage failed. The source is for logs; never show it to a client.
    #[error("storage failure")]
    Storage(#[source] StoreError),
    /// Configuration is unusable (a key file, a database URL).
    #[error("configuration: {0}")]
    Config(String),
    /// An agent's budget has less available than a lease needs: the agent is paused for budget until
    /// its allocation rises.
    #[error("budget exhausted: {available} microdollars available, {needed} needed")]
    BudgetExhausted {
        /// What is available now.
        available: i64,
        /// The least grant asked for.
        needed: i64,
    },
    /// A report would pass its lease's grant: nothing was recorded.
    #[error("lease exhausted: {remaining} microdollars remain of its grant")]
    LeaseExhausted {
        /// What is left of the grant.
        remaining: i64,
    },
    /// The lease is closed (returned, refreshed, expired or revoked) and accepts nothing.
    #[error("the lease is {state}")]
    LeaseClosed {
        /// How it closed.
        state: tollgate_types::LeaseState,
    },
    /// The principal already holds its maximum of open live-event streams.
    #[error("too many open event streams: at most {limit} per principal")]
    TooManyStreams {
        /// The most a principal may hold open.
        limit: usize,
    },
    /// The service cannot take this now (a full usage queue, metering shut down, storage that
    /// cannot write): retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Results of facade calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { entity } => Self::NotFound { entity },
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::InvalidCursor => {
                Self::Validation(ValidationError::new("cursor", "not a cursor from a previous page"))
            }
            other => Self::Storage(other),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

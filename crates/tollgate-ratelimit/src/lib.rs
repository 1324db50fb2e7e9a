//! Per-key rate limiting for tollgate: GCRA where every key has its own quota, bounded memory, and a small
//! async trait so a shared (Redis) limiter can replace the in-process one without changing callers.
//!
//! - [`RateQuota`]: "`per_period` every `period`, `burst` at once", validated once.
//! - [`RateKey`]: whose budget (16 bytes, usually a [`tollgate_types::TokenId`]).
//! - [`RateLimiter`]: the trait callers hold as `Arc<dyn RateLimiter>`; [`Decision`] is its answer.
//! - [`LocalLimiter`]: the in-process implementation on governor's state store and clocks.

mod error;
mod gcra;
mod key;
mod limiter;
mod local;
mod quota;

pub use error::{RateLimitError, Result};
pub use governor::clock::{FakeRelativeClock, QuantaClock};
pub use key::RateKey;
pub use limiter::{Decision, RateLimitStats, RateLimiter};
pub use local::LocalLimiter;
pub use quota::RateQuota;

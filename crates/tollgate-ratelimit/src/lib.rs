//! Per-key rate limiting for tollgate: GCRA where every key has its own quota, behind a small async trait, in
//! process or shared through Redis.
//!
//! - [`RateQuota`]: "`per_period` every `period`, `burst` at once", validated once.
//! - [`RateKey`]: whose budget (16 bytes, usually a [`tollgate_types::TokenId`]).
//! - [`RateLimiter`]: the trait callers hold as `Arc<dyn RateLimiter>`; [`Decision`] is its answer.
//! - [`LocalLimiter`]: the in-process implementation on governor's state store and clocks, with bounded memory.
//!
//! With the `redis` feature (on by default):
//!
//! - [`RedisLimiter`]: the same GCRA in one Lua script on Redis's clock, so every node shares one budget per key
//!   and decides exactly what [`LocalLimiter`] would.
//! - [`FallbackLimiter`]: a [`RedisLimiter`] that never fails closed. When Redis errs or is slow it decides with a
//!   [`LocalLimiter`] at the policy divided by the [`LiveNodes`], reports itself degraded, and goes back to
//!   Redis by itself.
//! - [`NodeRegistry`]: counts the live nodes through heartbeats in Redis, for the fallback's division.
//!
//! [`FallbackLimiter`] shows how they fit together.

mod error;
#[cfg(feature = "redis")]
mod fallback;
mod gcra;
mod key;
mod limiter;
mod local;
#[cfg(feature = "redis")]
mod nodes;
mod quota;
#[cfg(feature = "redis")]
mod redis_limiter;
#[cfg(feature = "redis")]
mod task;

pub use error::{RateLimitError, Result};
#[cfg(feature = "redis")]
pub use fallback::{FallbackConfig, FallbackLimiter};
pub use governor::clock::{FakeRelativeClock, QuantaClock};
pub use key::RateKey;
pub use limiter::{Decision, RateLimitStats, RateLimiter};
pub use local::LocalLimiter;
#[cfg(feature = "redis")]
pub use nodes::{LiveNodes, NodeRegistry};
pub use quota::RateQuota;
#[cfg(feature = "redis")]
pub use redis_limiter::{RedisLimiter, RedisLimiterConfig};
#[cfg(feature = "redis")]
pub use task::BackgroundTask;

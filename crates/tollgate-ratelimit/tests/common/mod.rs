//! Helpers shared by the integration tests: a limiter on a fake clock, quotas and keys.

use std::num::NonZeroUsize;
use std::time::Duration;

use tollgate_ratelimit::{FakeRelativeClock, LocalLimiter, RateKey, RateQuota};

/// A limiter holding at most `max_keys` keys, and the clock that drives it.
pub(crate) fn limiter(max_keys: usize) -> (LocalLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let limiter = LocalLimiter::with_clock(NonZeroUsize::new(max_keys).unwrap(), clock.clone());
    (limiter, clock)
}

/// `per_second` per second, `burst` at once.
pub(crate) fn per_second(per_second: u32, burst: u32) -> RateQuota {
    RateQuota::new(per_second, Duration::from_secs(1), burst).unwrap()
}

/// A distinct key per `n`.
pub(crate) fn key(n: u64) -> RateKey {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    RateKey::from_bytes(bytes)
}

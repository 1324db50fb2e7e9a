//! The rate limiter from its docs alone: a GCRA quota of 60 requests a minute with a burst of 5, checked
//! by a `LocalLimiter` on a fake clock until it refuses, then again once a cell has dripped back. The
//! same `RateLimiter` trait is what `MeteringBuilder::rate_limiter` takes (a Redis limiter shares the
//! budget between nodes). Run: `cargo run -p tollgate-ratelimit --example limiter`.

use std::num::NonZeroUsize;
use std::time::Duration;

use tollgate_ratelimit::{Decision, FakeRelativeClock, LocalLimiter, RateKey, RateLimiter, RateQuota, Result};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let clock = FakeRelativeClock::default();
    let limiter = LocalLimiter::with_clock(NonZeroUsize::new(10_000).expect("not zero"), clock.clone());
    let quota = RateQuota::new(60, Duration::from_secs(60), 5)?;
    let key = RateKey::from_bytes(*b"tenant-000000001");

    let mut admitted = 0;
    loop {
        // Through the trait, as metering calls it.
        match RateLimiter::check(&limiter, &key, &quota, 1).await? {
            Decision::Allowed { remaining, .. } => {
                admitted += 1;
                println!("allowed, {remaining} left");
            }
            Decision::Limited { retry_after, .. } => {
                println!("limited after {admitted}: retry after {retry_after:?}");
                assert_eq!(admitted, 5, "the burst");
                clock.advance(retry_after);
                break;
            }
        }
    }
    assert!(limiter.check(&key, &quota, 1)?.is_allowed(), "one cell back after one emission interval");
    println!("allowed again after {:?}; {} key(s) tracked", quota.emission_interval(), limiter.len());
    Ok(())
}

//! GCRA behaviour through the public API on a fake clock: bursts, exact waits, windows, costs and quotas.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use common::{key, limiter, per_second};
use tollgate_ratelimit::{Decision, RateLimitError, RateLimitStats, RateLimiter, RateQuota};

/// "100 per minute, burst 20": 20 at once, then one every 600 ms.
fn hundred_per_minute_burst_twenty() -> RateQuota {
    RateQuota::new(100, Duration::from_secs(60), 20).unwrap()
}

fn allowed(remaining: u32, limit: u32, reset_after: Duration) -> Decision {
    Decision::Allowed { remaining, limit, reset_after }
}

fn limited(retry_after: Duration, limit: u32, reset_after: Duration) -> Decision {
    Decision::Limited { retry_after, limit, reset_after }
}

#[test]
fn a_burst_of_twenty_then_exactly_one_every_600_ms() {
    let (limiter, clock) = limiter(100);
    let quota = hundred_per_minute_burst_twenty();
    let key = key(1);
    for n in 1..=20u32 {
        let expected = allowed(20 - n, 20, Duration::from_millis(600) * n);
        assert_eq!(limiter.check(&key, &quota, 1).unwrap(), expected, "cell {n}");
    }
    let twelve_seconds = Duration::from_secs(12);
    assert_eq!(limiter.check(&key, &quota, 1).unwrap(), limited(Duration::from_millis(600), 20, twelve_seconds));

    clock.advance(Duration::from_millis(599));
    let one_ms_early = limiter.check(&key, &quota, 1).unwrap();
    assert_eq!(one_ms_early, limited(Duration::from_millis(1), 20, Duration::from_millis(11_401)));

    clock.advance(Duration::from_millis(1));
    assert_eq!(limiter.check(&key, &quota, 1).unwrap(), allowed(0, 20, twelve_seconds));
    assert_eq!(limiter.check(&key, &quota, 1).unwrap(), limited(Duration::from_millis(600), 20, twelve_seconds));
}

#[test]
fn no_sixty_second_window_admits_more_than_burst_plus_rate() {
    let (limiter, clock) = limiter(100);
    let quota = hundred_per_minute_burst_twenty();
    let key = key(1);
    let step = Duration::from_millis(70); // not a divisor of 600 ms, so admissions drift across steps
    let window = Duration::from_secs(60);
    let mut now = Duration::ZERO;
    let mut in_window = VecDeque::new();
    let mut busiest_window = 0;
    while now < Duration::from_secs(300) {
        // A greedy caller: as many checks as the limiter admits at this instant.
        while limiter.check(&key, &quota, 1).unwrap().is_allowed() {
            in_window.push_back(now);
        }
        while in_window.front().is_some_and(|&admitted| now - admitted >= window) {
            in_window.pop_front();
        }
        busiest_window = busiest_window.max(in_window.len());
        clock.advance(step);
        now += step;
    }
    assert!(busiest_window <= 20 + 100, "a 60 s window admitted {busiest_window}");
    assert!(busiest_window >= 20 + 99, "the limiter was stricter than its quota: {busiest_window}");
}

#[test]
fn a_cost_above_one_takes_that_many_cells() {
    let (limiter, clock) = limiter(100);
    let quota = hundred_per_minute_burst_twenty();
    let key = key(1);
    for remaining in [15, 10, 5] {
        assert!(
            matches!(limiter.check(&key, &quota, 5).unwrap(), Decision::Allowed { remaining: r, .. } if r == remaining)
        );
    }
    assert!(matches!(limiter.check(&key, &quota, 3).unwrap(), Decision::Allowed { remaining: 2, .. }));
    // Two cells left, five wanted: three more intervals.
    let refused = limiter.check(&key, &quota, 5).unwrap();
    assert_eq!(refused, limited(Duration::from_millis(1_800), 20, Duration::from_millis(10_800)));
    clock.advance(Duration::from_millis(1_800));
    assert!(matches!(limiter.check(&key, &quota, 5).unwrap(), Decision::Allowed { remaining: 0, .. }));
}

#[test]
fn a_cost_the_burst_can_never_hold_is_an_error_and_spends_nothing() {
    let (limiter, _clock) = limiter(100);
    let quota = hundred_per_minute_burst_twenty();
    let key = key(1);
    let error = limiter.check(&key, &quota, 21).unwrap_err();
    assert!(matches!(error, RateLimitError::CostExceedsBurst { cost: 21, burst: 20 }));
    assert_eq!(error.to_string(), "cost 21 exceeds the burst of 20 and can never be admitted");
    assert!(matches!(limiter.check(&key, &quota, 0), Err(RateLimitError::ZeroCost)));
    assert!(limiter.is_empty());
    assert_eq!(limiter.stats(), RateLimitStats::default());
    assert!(matches!(limiter.check(&key, &quota, 20).unwrap(), Decision::Allowed { remaining: 0, .. }));
}

#[test]
fn keys_have_independent_budgets_and_their_own_quotas() {
    let (limiter, _clock) = limiter(100);
    let (small, large) = (per_second(1, 2), per_second(1, 5));
    let admitted =
        |n: u64, quota: &RateQuota| (0..10).filter(|_| limiter.check(&key(n), quota, 1).unwrap().is_allowed()).count();
    assert_eq!(admitted(1, &small), 2);
    assert_eq!(admitted(2, &large), 5);
    assert_eq!(admitted(3, &small), 2);
    assert_eq!(admitted(1, &small), 0, "the first key is still spent");
    assert_eq!(limiter.len(), 3);
}

#[test]
fn a_changed_quota_applies_from_the_next_check() {
    let (limiter, clock) = limiter(100);
    let key = key(1);
    let admitted = |quota: &RateQuota| (0..10).filter(|_| limiter.check(&key, quota, 1).unwrap().is_allowed()).count();
    assert_eq!(admitted(&per_second(1, 2)), 2);
    assert_eq!(admitted(&per_second(1, 5)), 3, "a larger burst adds its extra cells at once");
    // Five cells owed; a burst of two tolerates one second of debt: the wait is the other four.
    let lower = per_second(1, 2);
    assert_eq!(limiter.check(&key, &lower, 1).unwrap(), limited(Duration::from_secs(4), 2, Duration::from_secs(5)));
    clock.advance(Duration::from_secs(5));
    assert_eq!(admitted(&lower), 2, "a full bucket under the new quota holds its burst");
}

#[test]
fn counters_count_decisions() {
    let (limiter, _clock) = limiter(100);
    let quota = per_second(1, 3);
    for _ in 0..5 {
        limiter.check(&key(1), &quota, 1).unwrap();
    }
    limiter.check(&key(2), &quota, 3).unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.allowed, stats.limited), (4, 2));
}

#[tokio::test]
async fn the_trait_object_decides_like_the_limiter() {
    let (local, clock) = limiter(100);
    let shared: Arc<dyn RateLimiter> = Arc::new(local);
    let quota = per_second(2, 1);
    assert!(shared.check(&key(1), &quota, 1).await.unwrap().is_allowed());
    let refused = shared.check(&key(1), &quota, 1).await.unwrap();
    assert_eq!(refused, limited(Duration::from_millis(500), 1, Duration::from_millis(500)));
    clock.advance(Duration::from_millis(500));
    assert_eq!(shared.len(), 1);
    assert_eq!(shared.evict_idle(), 1);
    assert!(shared.is_empty());
    assert_eq!((shared.stats().allowed, shared.stats().limited), (1, 1));
}

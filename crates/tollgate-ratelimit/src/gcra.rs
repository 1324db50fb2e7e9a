//! One GCRA step for one key: governor's `test_n_all_and_update` arithmetic, with the quota given per call
//! instead of fixed per limiter. The only state is the theoretical arrival time (TAT), in nanoseconds.

use std::time::Duration;

use crate::{Decision, RateLimitError, RateQuota, Result};

/// The outcome of a step: allow and move the TAT to `new_tat`, or deny and leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Allow { decision: Decision, new_tat: u64 },
    Deny(Decision),
}

/// Refuses costs no wait could satisfy, before any state is touched.
pub(crate) fn check_cost(quota: &RateQuota, cost: u32) -> Result<()> {
    if cost == 0 {
        return Err(RateLimitError::ZeroCost);
    }
    if cost > quota.burst() {
        return Err(RateLimitError::CostExceedsBurst { cost, burst: quota.burst() });
    }
    Ok(())
}

/// Tries to spend `cost` cells at `now`, given the key's TAT (`None` for a key never seen, the same as a full
/// bucket). `cost` must have passed [`check_cost`].
pub(crate) fn step(tat: Option<u64>, now: u64, quota: &RateQuota, cost: u32) -> Step {
    let emission = quota.emission_nanos();
    let limit = quota.burst();
    let tat = tat.unwrap_or(now);
    // Both fit: cost <= burst and the quota keeps T × burst under 100 years.
    let additional_weight = emission * u64::from(cost - 1);
    let earliest = tat.saturating_add(additional_weight).saturating_sub(quota.tolerance_nanos());
    if now < earliest {
        return Step::Deny(Decision::Limited {
            retry_after: Duration::from_nanos(earliest - now),
            limit,
            reset_after: Duration::from_nanos(tat.saturating_sub(now)),
        });
    }
    let new_tat = tat.max(now).saturating_add(emission * u64::from(cost));
    let owed = new_tat - now;
    let remaining = quota.refill_nanos().saturating_sub(owed) / emission;
    Step::Allow {
        decision: Decision::Allowed {
            remaining: u32::try_from(remaining).expect("remaining is at most the burst, a u32"),
            limit,
            reset_after: Duration::from_nanos(owed),
        },
        new_tat,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::clock::{Clock, FakeRelativeClock};
    use governor::middleware::StateInformationMiddleware;
    use governor::{Quota, RateLimiter};
    use proptest::prelude::*;

    use super::*;

    fn quota(per_period: u32, period: Duration, burst: u32) -> RateQuota {
        RateQuota::new(per_period, period, burst).unwrap()
    }

    #[test]
    fn a_new_key_gets_the_whole_burst_then_waits_one_interval() {
        let quota = quota(100, Duration::from_secs(60), 20);
        let mut tat = None;
        for expected_remaining in (0..20).rev() {
            match step(tat, 0, &quota, 1) {
                Step::Allow { decision: Decision::Allowed { remaining, .. }, new_tat } => {
                    assert_eq!(remaining, expected_remaining);
                    tat = Some(new_tat);
                }
                other => panic!("expected an allowed step, got {other:?}"),
            }
        }
        let refused = step(tat, 0, &quota, 1);
        let expected = Decision::Limited {
            retry_after: Duration::from_millis(600),
            limit: 20,
            reset_after: Duration::from_secs(12),
        };
        assert_eq!(refused, Step::Deny(expected));
    }

    #[test]
    fn a_stale_tat_counts_as_a_full_bucket() {
        let quota = quota(1, Duration::from_secs(1), 3);
        let fresh = step(None, 5_000_000_000, &quota, 1);
        let stale = step(Some(1), 5_000_000_000, &quota, 1);
        assert_eq!(fresh, stale);
    }

    #[test]
    fn costs_outside_one_to_burst_are_errors() {
        let quota = quota(100, Duration::from_secs(60), 20);
        assert!(matches!(check_cost(&quota, 0), Err(RateLimitError::ZeroCost)));
        assert!(matches!(check_cost(&quota, 21), Err(RateLimitError::CostExceedsBurst { cost: 21, burst: 20 })));
        assert!(check_cost(&quota, 20).is_ok());
        assert!(check_cost(&quota, 1).is_ok());
    }

    proptest! {
        /// The per-key step decides exactly what governor's own limiter decides, for any quota, any costs and
        /// any passage of time: same allow/deny, same remaining capacity, same wait.
        #[test]
        fn matches_governor(
            per_period in 1u32..1_000,
            period_millis in 1u64..100_000,
            burst in 1u32..50,
            calls in proptest::collection::vec((1u32..60, 0u64..5_000_000_000), 1..60),
        ) {
            let ours = quota(per_period, Duration::from_millis(period_millis), burst);
            let clock = FakeRelativeClock::default();
            let governor_quota = Quota::with_period(ours.emission_interval())
                .unwrap()
                .allow_burst(NonZeroU32::new(burst).unwrap());
            let reference = RateLimiter::direct_with_clock(governor_quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>();
            let mut tat = None;
            let mut now = 0u64;
            for (cost, advance) in calls {
                clock.advance(Duration::from_nanos(advance));
                now += advance;
                let expected = reference.check_n(NonZeroU32::new(cost).unwrap());
                if check_cost(&ours, cost).is_err() {
                    prop_assert!(expected.is_err());
                    continue;
                }
                match (step(tat, now, &ours, cost), expected) {
                    (Step::Allow { decision: Decision::Allowed { remaining, .. }, new_tat }, Ok(Ok(snapshot))) => {
                        prop_assert_eq!(remaining, snapshot.remaining_burst_capacity());
                        tat = Some(new_tat);
                    }
                    (Step::Deny(Decision::Limited { retry_after, .. }), Ok(Err(not_until))) => {
                        prop_assert_eq!(retry_after, not_until.wait_time_from(clock.now()));
                    }
                    (ours, theirs) => prop_assert!(false, "diverged: ours {:?}, governor {:?}", ours, theirs),
                }
            }
        }
    }
}

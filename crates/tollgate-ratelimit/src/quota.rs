//! A key's quota: `per_period` cells every `period`, at most `burst` at once, validated once at construction.

use std::time::Duration;

use crate::{RateLimitError, Result};

/// The longest a full burst may take to refill. Keeps every nanosecond sum in the limiter far below `u64::MAX`.
const MAX_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// How fast a key may go: `per_period` cells every `period`, and at most `burst` cells at once.
///
/// "100 per minute, burst 20" admits 20 cells at once and then one cell every 600 ms: the cells come back one
/// at a time, every `period / per_period` (rounded up to the nanosecond, so a key never gets more than
/// `burst + per_period` cells in any `period`).
///
/// ```
/// use std::time::Duration;
/// use tollgate_ratelimit::RateQuota;
///
/// let quota = RateQuota::new(100, Duration::from_secs(60), 20).expect("valid quota");
/// assert_eq!(quota.emission_interval(), Duration::from_millis(600));
/// assert!(RateQuota::new(100, Duration::from_secs(60), 0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateQuota {
    per_period: u32,
    period: Duration,
    burst: u32,
    /// GCRA's `T`: the time one cell is worth, at least 1 ns.
    emission_nanos: u64,
}

impl RateQuota {
    /// Validates and builds a quota. Every parameter must be at least 1 (`period` longer than zero), the rate at
    /// most one cell per nanosecond, and a full burst must refill within 100 years.
    pub fn new(per_period: u32, period: Duration, burst: u32) -> Result<Self> {
        if per_period == 0 {
            return Err(invalid("per_period", "must be at least 1"));
        }
        if period.is_zero() {
            return Err(invalid("period", "must be longer than zero"));
        }
        if burst == 0 {
            return Err(invalid("burst", "must be at least 1"));
        }
        let period_nanos = period.as_nanos();
        let per_period_wide = u128::from(per_period);
        if period_nanos < per_period_wide {
            return Err(invalid("per_period", "must be at most one per nanosecond of period"));
        }
        // Neither product can overflow u128: period_nanos < 2^94 and burst < 2^32.
        let emission_nanos = period_nanos.div_ceil(per_period_wide);
        if emission_nanos * u128::from(burst) > MAX_REFILL.as_nanos() {
            let field = if burst == 1 { "period" } else { "burst" };
            return Err(invalid(field, "must let a full burst refill within 100 years"));
        }
        let emission_nanos =
            u64::try_from(emission_nanos).expect("bounded by MAX_REFILL, which fits in u64 nanoseconds");
        Ok(Self { per_period, period, burst, emission_nanos })
    }

    /// Cells that come back per `period`.
    pub fn per_period(&self) -> u32 {
        self.per_period
    }

    /// The period `per_period` is counted over.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The most cells admitted at once; also the `limit` reported in every [`crate::Decision`].
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time after which one more cell is available: `period / per_period`, rounded up to the nanosecond.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.emission_nanos)
    }

    /// GCRA's `T` in nanoseconds.
    pub(crate) fn emission_nanos(&self) -> u64 {
        self.emission_nanos
    }

    /// GCRA's `τ` in nanoseconds: how far ahead of now a key may run, `T × (burst − 1)`.
    pub(crate) fn tolerance_nanos(&self) -> u64 {
        self.emission_nanos * u64::from(self.burst - 1)
    }

    /// Time for an empty bucket to fill up, `T × burst`.
    pub(crate) fn refill_nanos(&self) -> u64 {
        self.emission_nanos * u64::from(self.burst)
    }
}

fn invalid(field: &'static str, reason: &'static str) -> RateLimitError {
    RateLimitError::InvalidQuota { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<RateQuota>) -> &'static str {
        match result {
            Err(RateLimitError::InvalidQuota { field, .. }) => field,
            other => panic!("expected an invalid quota, got {other:?}"),
        }
    }

    #[test]
    fn one_hundred_per_minute_is_one_cell_every_600_ms() {
        let quota = RateQuota::new(100, Duration::from_secs(60), 20).unwrap();
        assert_eq!(quota.emission_nanos(), 600_000_000);
        assert_eq!(quota.tolerance_nanos(), 19 * 600_000_000);
        assert_eq!(quota.refill_nanos(), 12_000_000_000);
        assert_eq!((quota.per_period(), quota.period(), quota.burst()), (100, Duration::from_secs(60), 20));
    }

    #[test]
    fn uneven_rates_round_the_interval_up_so_the_rate_is_never_exceeded() {
        let quota = RateQuota::new(3, Duration::from_secs(1), 1).unwrap();
        assert_eq!(quota.emission_nanos(), 333_333_334);
        assert!(u128::from(quota.emission_nanos()) * 3 >= Duration::from_secs(1).as_nanos());
    }

    #[test]
    fn the_fastest_and_slowest_valid_quotas_are_accepted() {
        assert_eq!(RateQuota::new(1_000, Duration::from_micros(1), 1).unwrap().emission_nanos(), 1);
        assert!(RateQuota::new(1, MAX_REFILL, 1).is_ok());
        assert!(RateQuota::new(u32::MAX, Duration::from_secs(5), u32::MAX).is_ok());
    }

    #[test]
    fn invalid_quotas_name_the_field() {
        let minute = Duration::from_secs(60);
        assert_eq!(field_of(RateQuota::new(0, minute, 20)), "per_period");
        assert_eq!(field_of(RateQuota::new(100, Duration::ZERO, 20)), "period");
        assert_eq!(field_of(RateQuota::new(100, minute, 0)), "burst");
        assert_eq!(field_of(RateQuota::new(1_001, Duration::from_micros(1), 1)), "per_period");
        assert_eq!(field_of(RateQuota::new(1, MAX_REFILL + Duration::from_secs(1), 1)), "period");
        assert_eq!(field_of(RateQuota::new(1, Duration::MAX, 1)), "period");
        assert_eq!(field_of(RateQuota::new(1, Duration::from_secs(365 * 24 * 3600), 200)), "burst");
    }

    #[test]
    fn error_messages_are_lowercase_and_name_the_field() {
        let message = RateQuota::new(100, Duration::from_secs(60), 0).unwrap_err().to_string();
        assert_eq!(message, "invalid quota: burst must be at least 1");
    }
}

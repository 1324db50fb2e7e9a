//! Time: one UTC representation (`Timestamp`, microseconds since the Unix epoch) and a clock trait
//! so that tests control time instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ValidationError;

/// An instant in UTC with microsecond precision. Serialized as RFC 3339 (`2026-11-22T02:06:57.123456Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `micros` microseconds after 1970-01-01T00:00:00Z.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch (how backends store it).
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant plus `duration`, saturating at the far future.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// This instant minus `duration`, saturating at the far past.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(micros))
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Parses RFC 3339 (`2026-11-22T10:00:00Z`, any offset), naming `field` on failure.
    pub fn parse_rfc3339(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| ValidationError::new(field, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))?;
        let micros = parsed.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros).map(Self).map_err(|_| ValidationError::new(field, "is out of range"))
    }

    /// RFC 3339 in UTC.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|instant| instant.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}us", self.0))
    }

    /// The calendar view of this instant in UTC, for window boundaries.
    pub fn to_utc_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).ok()
    }

    /// The instant a calendar datetime denotes.
    pub fn from_utc_datetime(datetime: OffsetDateTime) -> Self {
        Self(i64::try_from(datetime.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339("timestamp", &text).map_err(serde::de::Error::custom)
    }
}

/// A source of the current time. Production uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to, for tests of expiry, grace periods and windows.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: Timestamp) {
        self.0.store(instant.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let instant = Timestamp::parse_rfc3339("at", "2026-11-22T02:06:57.123456Z").unwrap();
        assert_eq!(instant.to_rfc3339(), "2026-11-22T02:06:57.123456Z");
        assert_eq!(Timestamp::parse_rfc3339("at", &instant.to_rfc3339()).unwrap(), instant);
    }

    #[test]
    fn bad_times_name_the_field() {
        let error = Timestamp::parse_rfc3339("expires_at", "tomorrow").unwrap_err();
        assert_eq!(error.field, "expires_at");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_unix_micros(0));
        assert_eq!(clock.now().unix_micros(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().unix_seconds(), 2);
    }
}

//! Named report periods (`today`, `this-month`, …), each a half-open UTC range worked out from now.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::{Timestamp, ValidationError, Window};

/// A report period, in UTC. Every range is half-open, `[since, until)`, and aligned to whole hours
/// (reports read hourly rollups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Period {
    /// From midnight today to midnight tomorrow.
    Today,
    /// The whole of yesterday.
    Yesterday,
    /// Today and the six days before it.
    #[serde(rename = "last-7-days")]
    Last7Days,
    /// Today and the 29 days before it.
    #[serde(rename = "last-30-days")]
    Last30Days,
    /// From the first of this month to the first of the next.
    ThisMonth,
    /// The whole of last month.
    LastMonth,
    /// Everything, up to the end of the current hour.
    AllTime,
}

impl Period {
    /// Every period, in the order a menu shows them.
    pub const ALL: [Self; 7] = [
        Self::Today,
        Self::Yesterday,
        Self::Last7Days,
        Self::Last30Days,
        Self::ThisMonth,
        Self::LastMonth,
        Self::AllTime,
    ];

    /// The stable name (`today`, `last-7-days`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Today => "today",
            Self::Yesterday => "yesterday",
            Self::Last7Days => "last-7-days",
            Self::Last30Days => "last-30-days",
            Self::ThisMonth => "this-month",
            Self::LastMonth => "last-month",
            Self::AllTime => "all-time",
        }
    }

    /// The range this period covers at `now`.
    ///
    /// ```
    /// # use tollgate_types::{Period, Timestamp};
    /// let now = Timestamp::parse_rfc3339("now", "2027-01-01T00:30:00Z").unwrap();
    /// let (since, until) = Period::LastMonth.range(now);
    /// assert_eq!((since.to_string().as_str(), until.to_string().as_str()),
    ///            ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
    /// ```
    pub fn range(self, now: Timestamp) -> (Timestamp, Timestamp) {
        let day = Duration::from_secs(86_400);
        let today = Window::Day.start_of(now);
        let tomorrow = Window::Day.end_of(now);
        let this_month = Window::Month.start_of(now);
        match self {
            Self::Today => (today, tomorrow),
            Self::Yesterday => (today.saturating_sub(day), today),
            Self::Last7Days => (today.saturating_sub(day * 6), tomorrow),
            Self::Last30Days => (today.saturating_sub(day * 29), tomorrow),
            Self::ThisMonth => (this_month, Window::Month.end_of(now)),
            Self::LastMonth => {
                (Window::Month.start_of(this_month.saturating_sub(Duration::from_micros(1))), this_month)
            }
            Self::AllTime => (Timestamp::from_unix_micros(0), Window::Hour.end_of(now)),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|period| period.as_str() == text).ok_or_else(|| {
            ValidationError::new(
                "period",
                "must be one of today, yesterday, last-7-days, last-30-days, this-month, last-month, all-time",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339("at", text).unwrap()
    }

    fn range(period: Period, now: &str) -> (String, String) {
        let (since, until) = period.range(at(now));
        (since.to_string(), until.to_string())
    }

    fn pair(since: &str, until: &str) -> (String, String) {
        (since.to_owned(), until.to_owned())
    }

    #[test]
    fn periods_at_the_turn_of_a_year() {
        let now = "2026-12-31T23:59:59.999999Z";
        assert_eq!(range(Period::Today, now), pair("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(range(Period::ThisMonth, now), pair("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(range(Period::LastMonth, now), pair("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"));
        let now = "2027-01-01T00:00:00Z";
        assert_eq!(range(Period::Yesterday, now), pair("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(range(Period::LastMonth, now), pair("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(range(Period::Last7Days, now), pair("2026-12-26T00:00:00Z", "2027-01-02T00:00:00Z"));
    }

    #[test]
    fn periods_at_month_ends_and_leap_days() {
        let now = "2028-03-01T10:00:00Z";
        assert_eq!(range(Period::LastMonth, now), pair("2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"));
        assert_eq!(range(Period::Yesterday, now), pair("2028-02-29T00:00:00Z", "2028-03-01T00:00:00Z"));
        assert_eq!(range(Period::Last30Days, now), pair("2028-02-01T00:00:00Z", "2028-03-02T00:00:00Z"));
        let now = "2026-02-28T23:00:00Z";
        assert_eq!(range(Period::ThisMonth, now), pair("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"));
        assert_eq!(range(Period::AllTime, now), pair("1970-01-01T00:00:00Z", "2026-03-01T00:00:00Z"));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_name_the_field() {
        for period in Period::ALL {
            assert_eq!(period.as_str().parse::<Period>().unwrap(), period);
            assert_eq!(serde_json::to_value(period).unwrap(), period.as_str());
        }
        assert_eq!("last-week".parse::<Period>().unwrap_err().field, "period");
    }
}

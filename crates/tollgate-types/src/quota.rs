//! Quotas: limits on requests, LLM tokens or cost per calendar window (UTC) for a token, its owner
//! (a user or a service account) or a project, and per-token rate limits.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, Time};

use crate::{OwnerId, ProjectId, ServiceAccountId, Timestamp, TokenId, UserId, ValidationError};

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// A calendar window in UTC. A window's start is part of every counter's key, so counters reset at
/// the boundary by themselves: no job has to clear them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// `hh:mm:00` to the next minute.
    Minute,
    /// `hh:00:00` to the next hour.
    Hour,
    /// Midnight UTC to the next midnight.
    Day,
    /// The first of the month, midnight UTC, to the first of the next month.
    Month,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 4] = [Self::Minute, Self::Hour, Self::Day, Self::Month];

    /// The stable name (`minute`, `hour`, `day`, `month`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The start of the window that contains `instant`.
    ///
    /// ```
    /// # use tollgate_types::{Timestamp, Window};
    /// let instant = Timestamp::parse_rfc3339("at", "2026-02-14T13:45:10Z").unwrap();
    /// assert_eq!(Window::Month.start_of(instant).to_string(), "2026-02-01T00:00:00Z");
    /// assert_eq!(Window::Month.end_of(instant).to_string(), "2026-03-01T00:00:00Z");
    /// ```
    pub fn start_of(self, instant: Timestamp) -> Timestamp {
        let micros = instant.unix_micros();
        let aligned = |unit: i64| Timestamp::from_unix_micros(micros - micros.rem_euclid(unit));
        match self {
            Self::Minute => aligned(MICROS_PER_MINUTE),
            Self::Hour => aligned(MICROS_PER_HOUR),
            Self::Day => aligned(MICROS_PER_DAY),
            Self::Month => match instant.to_utc_datetime() {
                Some(datetime) => {
                    first_of_month(datetime.year(), datetime.month()).unwrap_or_else(|| aligned(MICROS_PER_DAY))
                }
                None => aligned(MICROS_PER_DAY),
            },
        }
    }

    /// The end (exclusive) of the window that contains `instant`: the start of the next one.
    pub fn end_of(self, instant: Timestamp) -> Timestamp {
        let start = self.start_of(instant);
        let after = |unit: i64| Timestamp::from_unix_micros(start.unix_micros().saturating_add(unit));
        match self {
            Self::Minute => after(MICROS_PER_MINUTE),
            Self::Hour => after(MICROS_PER_HOUR),
            Self::Day => after(MICROS_PER_DAY),
            Self::Month => match start.to_utc_datetime() {
                Some(datetime) => {
                    let (year, month) = match datetime.month() {
                        Month::December => (datetime.year() + 1, Month::January),
                        month => (datetime.year(), month.next()),
                    };
                    first_of_month(year, month).unwrap_or_else(|| after(31 * MICROS_PER_DAY))
                }
                None => after(31 * MICROS_PER_DAY),
            },
        }
    }
}

fn first_of_month(year: i32, month: Month) -> Option<Timestamp> {
    let date = Date::from_calendar_date(year, month, 1).ok()?;
    Some(Timestamp::from_utc_datetime(OffsetDateTime::new_utc(date, Time::MIDNIGHT)))
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Window {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|window| window.as_str() == text)
            .ok_or_else(|| ValidationError::new("window", "must be one of minute, hour, day, month"))
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Admitted requests (counted by verify).
    Requests,
    /// LLM tokens, input plus output (counted when usage is recorded, or reserved up front).
    Tokens,
    /// Money in microdollars (counted when usage is recorded, or reserved up front).
    Cost,
}

impl Metric {
    /// All metrics.
    pub const ALL: [Metric; 3] = [Self::Requests, Self::Tokens, Self::Cost];

    /// The stable name (`requests`, `tokens`, `cost`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Cost => "cost",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|metric| metric.as_str() == text)
            .ok_or_else(|| ValidationError::new("metric", "must be one of requests, tokens, cost"))
    }
}

/// Whom a limit applies to, by id. A token is governed by its own limits and those of its owner
/// and its project, all at once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitSubject {
    /// One token.
    Token(TokenId),
    /// Every token of an owner (a user or a service account).
    Owner(OwnerId),
    /// Every token bound to a project.
    Project(ProjectId),
}

impl LimitSubject {
    /// The kinds, as stored and as the HTTP routes and CLI name them.
    pub const KINDS: [&'static str; 4] = ["token", "user", "service_account", "project"];

    /// The kind (`token`, `user`, `service_account`, `project`), as stored.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Owner(owner) => owner.kind(),
            Self::Project(_) => "project",
        }
    }

    /// The id within the kind, as stored.
    pub fn id(&self) -> String {
        match self {
            Self::Token(id) => id.to_string(),
            Self::Owner(owner) => owner.to_string(),
            Self::Project(id) => id.to_string(),
        }
    }

    /// Reads a subject from its kind and id.
    pub fn parse(kind: &str, id: &str) -> Result<Self, ValidationError> {
        match kind {
            "token" => TokenId::parse(id).map(Self::Token),
            "user" => UserId::parse(id).map(|id| Self::Owner(OwnerId::User(id))),
            "service_account" => ServiceAccountId::parse(id).map(|id| Self::Owner(OwnerId::ServiceAccount(id))),
            "project" => ProjectId::parse(id).map(Self::Project),
            _ => Err(ValidationError::new("subject", "kind must be one of token, user, service_account, project")),
        }
    }
}

impl fmt::Display for LimitSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl Serialize for LimitSubject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("LimitSubject", 2)?;
        state.serialize_field("kind", self.kind())?;
        state.serialize_field("id", &self.id())?;
        state.end()
    }
}

/// Which limit: a subject, a metric and a window. At most one limit exists per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LimitKey {
    /// Whom it governs.
    pub subject: LimitSubject,
    /// What it counts.
    pub metric: Metric,
    /// Over which window.
    pub window: Window,
}

impl LimitKey {
    /// The limit's name as refusals show it: `requests_per_day`, `cost_per_month`.
    pub fn name(&self) -> String {
        format!("{}_per_{}", self.metric, self.window)
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}_per_{}", self.subject, self.metric, self.window)
    }
}

/// A limit: at most `max` of its metric per window (microdollars for cost, also in JSON). In shadow
/// mode it refuses nobody and reports who it would have refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitSpec {
    #[serde(flatten)]
    key: LimitKey,
    max: u64,
    shadow: bool,
}

impl LimitSpec {
    /// The largest accepted maximum (10^18: a trillion dollars in microdollars), so counters never overflow.
    pub const MAX_VALUE: u64 = 1_000_000_000_000_000_000;

    /// A limit of `max` per window on `key`.
    pub fn new(key: LimitKey, max: u64, shadow: bool) -> Result<Self, ValidationError> {
        if max > Self::MAX_VALUE {
            return Err(ValidationError::new("max", format!("must be at most {}", Self::MAX_VALUE)));
        }
        Ok(Self { key, max, shadow })
    }

    /// Which limit.
    pub fn key(&self) -> &LimitKey {
        &self.key
    }

    /// The most allowed per window.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Whether it only reports instead of refusing.
    pub fn shadow(&self) -> bool {
        self.shadow
    }
}

/// A stored limit with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitRecord {
    /// The limit.
    #[serde(flatten)]
    pub spec: LimitSpec,
    /// When it was first set.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// How many requests it would have refused while in shadow mode (recorded write-behind).
    pub shadow_hits: u64,
    /// When it last would have refused one.
    pub last_shadow_hit_at: Option<Timestamp>,
}

/// One counter: a limit's key and the start of the window it counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CounterKey {
    /// The limit counted.
    #[serde(flatten)]
    pub limit: LimitKey,
    /// The window's start.
    pub window_start: Timestamp,
}

impl CounterKey {
    /// The counter of `limit` for the window containing `instant`.
    pub fn at(limit: LimitKey, instant: Timestamp) -> Self {
        let window_start = limit.window.start_of(instant);
        Self { limit, window_start }
    }

    /// When the window ends (the counter stops mattering).
    pub fn window_end(&self) -> Timestamp {
        self.limit.window.end_of(self.window_start)
    }
}

/// A token's rate limit: a sustained rate of requests per minute with a burst allowance (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimitSpec {
    requests_per_minute: u32,
    burst: u32,
}

impl RateLimitSpec {
    /// The highest accepted rate and burst (a billion: effectively unlimited, still a sane number).
    pub const MAX: u32 = 1_000_000_000;

    /// `requests_per_minute` sustained, up to `burst` at once (both 1 to 1,000,000,000).
    pub fn new(requests_per_minute: u32, burst: u32) -> Result<Self, ValidationError> {
        if !(1..=Self::MAX).contains(&requests_per_minute) {
            return Err(ValidationError::new("requests_per_minute", "must be between 1 and 1000000000"));
        }
        if !(1..=Self::MAX).contains(&burst) {
            return Err(ValidationError::new("burst", "must be between 1 and 1000000000"));
        }
        Ok(Self { requests_per_minute, burst })
    }

    /// Sustained requests per minute.
    pub fn requests_per_minute(&self) -> u32 {
        self.requests_per_minute
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339("at", text).unwrap()
    }

    #[test]
    fn windows_align_to_utc_calendar_boundaries() {
        let instant = at("2026-03-15T13:45:10.5Z");
        let cases = [
            (Window::Minute, "2026-03-15T13:45:00Z", "2026-03-15T13:46:00Z"),
            (Window::Hour, "2026-03-15T13:00:00Z", "2026-03-15T14:00:00Z"),
            (Window::Day, "2026-03-15T00:00:00Z", "2026-03-16T00:00:00Z"),
            (Window::Month, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        ];
        for (window, start, end) in cases {
            assert_eq!(window.start_of(instant), at(start), "{window}");
            assert_eq!(window.end_of(instant), at(end), "{window}");
        }
    }

    #[test]
    fn months_roll_over_years_and_know_february() {
        let check = |instant: &str, start: &str, end: &str| {
            assert_eq!(Window::Month.start_of(at(instant)), at(start), "{instant}");
            assert_eq!(Window::Month.end_of(at(instant)), at(end), "{instant}");
        };
        check("2026-12-31T23:59:59.999999Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
        check("2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z");
        check("2026-02-28T12:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z");
        check("2028-02-29T12:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z");
        // Before the epoch too.
        check("1969-12-31T23:00:00Z", "1969-12-01T00:00:00Z", "1970-01-01T00:00:00Z");
        assert_eq!(Window::Day.start_of(at("1969-12-31T23:00:00Z")), at("1969-12-31T00:00:00Z"));
    }

    #[test]
    fn names_parse_and_unknown_ones_name_the_field() {
        assert_eq!("month".parse::<Window>().unwrap(), Window::Month);
        assert_eq!("fortnight".parse::<Window>().unwrap_err().field, "window");
        assert_eq!("cost".parse::<Metric>().unwrap(), Metric::Cost);
        assert_eq!("dollars".parse::<Metric>().unwrap_err().field, "metric");
        let project = ProjectId::generate();
        let subject = LimitSubject::parse("project", &project.to_string()).unwrap();
        assert_eq!(subject.to_string(), format!("project:{project}"));
        let user = UserId::generate();
        assert_eq!(LimitSubject::parse("user", &user.to_string()).unwrap(), LimitSubject::Owner(OwnerId::User(user)));
        assert_eq!(LimitSubject::parse("user", "alice").unwrap_err().field, "user_id");
        assert_eq!(LimitSubject::parse("team", "x").unwrap_err().field, "subject");
        assert_eq!(LimitSubject::parse("token", "nope").unwrap_err().field, "token_id");
    }

    #[test]
    fn limit_values_and_rates_are_bounded() {
        let key = LimitKey {
            subject: LimitSubject::Token(TokenId::generate()),
            metric: Metric::Requests,
            window: Window::Day,
        };
        assert_eq!(key.name(), "requests_per_day");
        assert!(LimitSpec::new(key.clone(), LimitSpec::MAX_VALUE, false).is_ok());
        assert_eq!(LimitSpec::new(key, u64::MAX, false).unwrap_err().field, "max");
        assert_eq!(RateLimitSpec::new(0, 1).unwrap_err().field, "requests_per_minute");
        assert_eq!(RateLimitSpec::new(60, 0).unwrap_err().field, "burst");
    }
}

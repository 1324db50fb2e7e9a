//! Usage events: what one call through a token cost (requests, LLM tokens, money, latency), and
//! the raw form a client sends before it is validated.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::permission::parse_identifier;
use crate::{Microdollars, Timestamp, TokenId, ValidationError};

macro_rules! define_identifier {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates the name (`a-z 0-9 . _ : / -`), naming the field on failure.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                parse_identifier($field, text, $max).map(Self)
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_identifier!(
    /// An LLM provider, e.g. `openai`, `anthropic`, `google` (1–64 characters of `a-z 0-9 . _ : / -`).
    ProviderName, "provider", 64
);
define_identifier!(
    /// A model of a provider, e.g. `gpt-4o-mini` (1–128 characters of `a-z 0-9 . _ : / -`).
    ModelName, "model", 128
);
define_identifier!(
    /// The endpoint or tool a call went to, e.g. `/v1/chat/completions` or `search` (1–256 characters).
    Endpoint, "endpoint", 256
);

/// How a call ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    #[default]
    Success,
    /// It failed (upstream error, timeout, refusal by the provider).
    Error,
}

impl Outcome {
    /// The stable name (`success`, `error`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

impl FromStr for Outcome {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "success" => Ok(Self::Success),
            "error" => Ok(Self::Error),
            _ => Err(ValidationError::new("outcome", "must be success or error")),
        }
    }
}

/// The most LLM tokens one event may report in each direction (a billion: far beyond any context window).
pub const MAX_TOKENS_PER_EVENT: u32 = 1_000_000_000;
/// The most requests one event may report.
pub const MAX_REQUESTS_PER_EVENT: u32 = 1_000_000;
/// The longest latency one event may report: one day, in milliseconds.
pub const MAX_LATENCY_MS: u32 = 86_400_000;
/// The largest cost one event may report: one million dollars.
pub const MAX_COST_PER_EVENT: Microdollars = Microdollars::from_micros(1_000_000 * 1_000_000);
/// How far in the future an event's time may lie (clock skew between a gateway and tollgate).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A client's idempotency key for one usage event (a gateway's request id): 1–128 characters of
/// `A-Z a-z 0-9 . _ : / -`. The same key sent twice for one token is stored and counted once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// The longest accepted key, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Validates a key, naming `event_id` on failure.
    ///
    /// ```
    /// # use tollgate_types::EventId;
    /// assert!(EventId::parse("req_01HV6Z8X2W").is_ok());
    /// assert_eq!(EventId::parse("").unwrap_err().field, "event_id");
    /// ```
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.is_empty() || text.len() > Self::MAX_CHARS {
            return Err(ValidationError::new("event_id", "must be 1 to 128 characters"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-');
        if !text.bytes().all(allowed) {
            return Err(ValidationError::new("event_id", "may contain only A-Z, a-z, 0-9, '.', '_', ':', '/', '-'"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One metered call through a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageEvent {
    /// The client's idempotency key: a repeat for the same token is counted once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The token that made the call.
    pub token_id: TokenId,
    /// When the call happened.
    pub at: Timestamp,
    /// The LLM provider.
    pub provider: ProviderName,
    /// The model.
    pub model: ModelName,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
    /// Requests this event stands for (usually 1).
    pub requests: u32,
    /// What it cost; `None` means "compute it from the price table" (`cost_micros` in JSON).
    #[serde(rename = "cost_micros")]
    pub cost: Option<Microdollars>,
    /// The endpoint or tool called.
    pub endpoint: Option<Endpoint>,
    /// Whether it worked.
    pub outcome: Outcome,
    /// How long it took, in milliseconds.
    pub latency_ms: Option<u32>,
    /// The client's address.
    pub ip: Option<IpAddr>,
}

impl UsageEvent {
    /// One successful request of `model` at `at` with no tokens, cost to be priced, no details.
    pub fn new(token_id: TokenId, at: Timestamp, provider: ProviderName, model: ModelName) -> Self {
        Self {
            event_id: None,
            token_id,
            at,
            provider,
            model,
            input_tokens: 0,
            output_tokens: 0,
            requests: 1,
            cost: None,
            endpoint: None,
            outcome: Outcome::Success,
            latency_ms: None,
            ip: None,
        }
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        u64::from(self.input_tokens) + u64::from(self.output_tokens)
    }

    /// Checks the bounds the field types alone do not carry, naming the field that is out of range.
    pub fn check(&self) -> Result<(), ValidationError> {
        check_at_most("input_tokens", u64::from(self.input_tokens), u64::from(MAX_TOKENS_PER_EVENT))?;
        check_at_most("output_tokens", u64::from(self.output_tokens), u64::from(MAX_TOKENS_PER_EVENT))?;
        check_at_most("requests", u64::from(self.requests), u64::from(MAX_REQUESTS_PER_EVENT))?;
        if let Some(latency) = self.latency_ms {
            check_at_most("latency_ms", u64::from(latency), u64::from(MAX_LATENCY_MS))?;
        }
        if let Some(cost) = self.cost {
            if cost.is_negative() {
                return Err(ValidationError::new("cost", "must not be negative"));
            }
            if cost > MAX_COST_PER_EVENT {
                return Err(ValidationError::new(
                    "cost",
                    format!("must be at most {} per event", MAX_COST_PER_EVENT.to_dollars()),
                ));
            }
        }
        Ok(())
    }
}

fn check_at_most(field: &'static str, value: u64, max: u64) -> Result<(), ValidationError> {
    if value > max { Err(ValidationError::new(field, format!("must be at most {max}"))) } else { Ok(()) }
}

/// Parses a whole, non-negative number of at most `max` from text (a flag), naming `field`.
///
/// ```
/// # use tollgate_types::parse_count;
/// assert_eq!(parse_count("input_tokens", "1200", 1_000_000).unwrap(), 1200);
/// assert_eq!(parse_count("input_tokens", "-5", 10).unwrap_err().reason, "must not be negative");
/// assert!(parse_count("input_tokens", "99999999999999999999999", 10).is_err());
/// ```
pub fn parse_count(field: &'static str, text: &str, max: u64) -> Result<u64, ValidationError> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ValidationError::new(field, "must not be negative"));
    }
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(field, "must be a whole number such as 1200"));
    }
    let too_large = || ValidationError::new(field, format!("must be at most {max}"));
    let value: u64 = digits.parse().map_err(|_| too_large())?;
    if value > max { Err(too_large()) } else { Ok(value) }
}

pub(crate) fn count_in_range(field: &'static str, value: i64, max: u32) -> Result<u32, ValidationError> {
    if value < 0 {
        return Err(ValidationError::new(field, "must not be negative"));
    }
    u32::try_from(value)
        .ok()
        .filter(|value| *value <= max)
        .ok_or_else(|| ValidationError::new(field, format!("must be at most {max}")))
}

/// A usage event as a client sends it (HTTP JSON, CLI flags), before validation. Turn it into a
/// [`UsageEvent`] with [`UsageInput::parse`], which names the first field that is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageInput {
    /// The client's idempotency key (recommended: a gateway's request id).
    #[serde(default)]
    pub event_id: Option<String>,
    /// `tok_…` (when settling a reservation it may be left out: it is the reservation's token).
    #[serde(default)]
    pub token_id: String,
    /// When; defaults to now.
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// Provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Prompt tokens (default 0).
    #[serde(default)]
    pub input_tokens: i64,
    /// Completion tokens (default 0).
    #[serde(default)]
    pub output_tokens: i64,
    /// Requests (default 1).
    #[serde(default)]
    pub requests: Option<i64>,
    /// Cost in microdollars; absent means "price it from the table".
    #[serde(default)]
    pub cost_micros: Option<i64>,
    /// Endpoint or tool.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `success` (default) or `error`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<i64>,
    /// Client IP.
    #[serde(default)]
    pub ip: Option<String>,
}

impl UsageInput {
    /// Validates every field; `now` fills a missing time and bounds a future one.
    pub fn parse(&self, now: Timestamp) -> Result<UsageEvent, ValidationError> {
        let at = self.at.unwrap_or(now);
        if at > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(ValidationError::new("at", "must not be in the future"));
        }
        let event = UsageEvent {
            event_id: self.event_id.as_deref().map(EventId::parse).transpose()?,
            token_id: TokenId::parse(self.token_id.trim())?,
            at,
            provider: ProviderName::parse(self.provider.trim())?,
            model: ModelName::parse(self.model.trim())?,
            input_tokens: count_in_range("input_tokens", self.input_tokens, MAX_TOKENS_PER_EVENT)?,
            output_tokens: count_in_range("output_tokens", self.output_tokens, MAX_TOKENS_PER_EVENT)?,
            requests: count_in_range("requests", self.requests.unwrap_or(1), MAX_REQUESTS_PER_EVENT)?,
            cost: self.cost_micros.map(Microdollars::from_micros),
            endpoint: self.endpoint.as_deref().map(|endpoint| Endpoint::parse(endpoint.trim())).transpose()?,
            outcome: self.outcome.as_deref().map(str::parse).transpose()?.unwrap_or_default(),
            latency_ms: self
                .latency_ms
                .map(|latency| count_in_range("latency_ms", latency, MAX_LATENCY_MS))
                .transpose()?,
            ip: self
                .ip
                .as_deref()
                .map(|ip| ip.trim().parse().map_err(|_| ValidationError::new("ip", "is not an IP address")))
                .transpose()?,
        };
        event.check()?;
        Ok(event)
    }
}

/// Upper bounds (inclusive, milliseconds) of the latency histogram buckets kept in hourly rollups.
/// A last, open bucket counts everything slower than the last bound.
pub const LATENCY_BUCKET_BOUNDS_MS: [u32; 16] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];

/// How many buckets a [`LatencyHistogram`] has (the bounds plus the open last bucket).
pub const LATENCY_BUCKETS: usize = LATENCY_BUCKET_BOUNDS_MS.len() + 1;

/// Latencies counted in fixed 1-2-5 buckets, so percentiles can be read from summed rollups.
/// A percentile is reported as the upper bound of its bucket (latencies over 100 s as 100000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyHistogram([u64; LATENCY_BUCKETS]);

impl LatencyHistogram {
    /// A histogram with these bucket counts.
    pub const fn from_counts(counts: [u64; LATENCY_BUCKETS]) -> Self {
        Self(counts)
    }

    /// The bucket counts.
    pub const fn counts(&self) -> &[u64; LATENCY_BUCKETS] {
        &self.0
    }

    /// The bucket that counts `latency_ms`.
    pub fn bucket_of(latency_ms: u32) -> usize {
        LATENCY_BUCKET_BOUNDS_MS.partition_point(|bound| *bound < latency_ms)
    }

    /// Counts one latency.
    pub fn record(&mut self, latency_ms: u32) {
        self.0[Self::bucket_of(latency_ms)] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// How many latencies were counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `percent`-th percentile (1–100) as its bucket's upper bound in milliseconds; `None`
    /// when nothing was counted.
    pub fn percentile(&self, percent: u8) -> Option<u32> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let percent = u64::from(percent.clamp(1, 100));
        let rank = (u128::from(total) * u128::from(percent)).div_ceil(100);
        let mut seen = 0u128;
        for (index, count) in self.0.iter().enumerate() {
            seen += u128::from(*count);
            if seen >= rank {
                let last_bound = LATENCY_BUCKET_BOUNDS_MS[LATENCY_BUCKET_BOUNDS_MS.len() - 1];
                return Some(LATENCY_BUCKET_BOUNDS_MS.get(index).copied().unwrap_or(last_bound));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> UsageInput {
        UsageInput {
            token_id: TokenId::generate().to_string(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 1200,
            output_tokens: 300,
            ..UsageInput::default()
        }
    }

    #[test]
    fn valid_input_parses_with_defaults() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let event = input().parse(now).unwrap();
        assert_eq!((event.at, event.requests, event.outcome, event.cost), (now, 1, Outcome::Success, None));
        assert_eq!(event.total_tokens(), 1500);
    }

    #[test]
    fn bad_input_names_the_field() {
        let now = Timestamp::from_unix_micros(1_000_000_000_000);
        type Mutation = Box<dyn Fn(&mut UsageInput)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("input_tokens", Box::new(|input| input.input_tokens = -1)),
            ("output_tokens", Box::new(|input| input.output_tokens = i64::MAX)),
            ("requests", Box::new(|input| input.requests = Some(-3))),
            ("model", Box::new(|input| input.model = String::new())),
            ("model", Box::new(|input| input.model = "GPT 4".into())),
            ("provider", Box::new(|input| input.provider = " ".into())),
            ("token_id", Box::new(|input| input.token_id = "abc".into())),
            ("cost", Box::new(|input| input.cost_micros = Some(-1))),
            ("cost", Box::new(|input| input.cost_micros = Some(i64::MAX))),
            ("outcome", Box::new(|input| input.outcome = Some("maybe".into()))),
            ("latency_ms", Box::new(|input| input.latency_ms = Some(i64::from(MAX_LATENCY_MS) + 1))),
            ("ip", Box::new(|input| input.ip = Some("10.0.0.300".into()))),
            ("endpoint", Box::new(|input| input.endpoint = Some("has space".into()))),
            ("at", Box::new(move |input| input.at = Some(now.saturating_add(Duration::from_secs(3600))))),
        ];
        for (field, mutate) in cases {
            let mut bad = input();
            mutate(&mut bad);
            assert_eq!(bad.parse(now).unwrap_err().field, field);
        }
    }

    #[test]
    fn counts_from_text_refuse_signs_words_and_overflow() {
        assert_eq!(parse_count("n", "+7", 10).unwrap(), 7);
        for (text, reason) in [("-1", "negative"), ("1.5", "whole number"), ("", "whole number"), ("11", "at most 10")]
        {
            assert!(parse_count("n", text, 10).unwrap_err().reason.contains(reason), "{text}");
        }
        assert!(parse_count("n", "184467440737095516160", u64::MAX).unwrap_err().reason.contains("at most"));
    }

    #[test]
    fn histogram_percentiles_come_from_bucket_bounds() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(50), None);
        for latency in [0, 1, 3, 40, 40, 40, 90, 150, 900, 200_000] {
            histogram.record(latency);
        }
        assert_eq!(histogram.total(), 10);
        assert_eq!(LatencyHistogram::bucket_of(1), 0);
        assert_eq!(LatencyHistogram::bucket_of(2), 1);
        assert_eq!(histogram.percentile(50), Some(50));
        assert_eq!(histogram.percentile(90), Some(1_000));
        assert_eq!(histogram.percentile(100), Some(100_000));
        let mut merged = histogram;
        merged.merge(&histogram);
        assert_eq!(merged.total(), 20);
        assert_eq!(merged.percentile(50), Some(50));
    }
}

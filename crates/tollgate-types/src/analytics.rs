//! Analytics events an agent runtime sends about its LLM calls, as sent and once validated.

use serde::{Deserialize, Serialize};

use crate::usage::count_in_range;
use crate::{
    EventId, LeaseId, MAX_CLOCK_SKEW, MAX_COST_PER_EVENT, MAX_LATENCY_MS, MAX_TOKENS_PER_EVENT, Microdollars,
    ModelName, Outcome, ProviderName, Timestamp, TokenId, UsageEvent, ValidationError,
};

/// The longest `event_id` an agent may send: a lease's id and `/` are put in front of it when the
/// event names a lease, and the whole key holds at most 128 characters.
pub const MAX_AGENT_EVENT_ID_CHARS: usize = 90;
/// The longest `error_code`.
pub const MAX_ERROR_CODE_CHARS: usize = 64;
/// The longest `error_message`.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1_024;

/// What an analytics event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsEventType {
    /// An LLM call that returned.
    LlmRequestCompleted,
    /// An LLM call that failed.
    LlmRequestFailed,
}

/// An analytics event as an agent sends it (`POST /v1/analytics/events`), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsEventInput {
    /// The agent's key for the call (1–90 characters): a repeat for the same agent is counted once.
    #[serde(default)]
    pub event_id: String,
    /// When the call happened: at most 5 minutes ahead of the server's clock.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// `llm_request_completed` or `llm_request_failed`.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// The provider.
    #[serde(default)]
    pub provider: String,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// What the call cost, in microdollars.
    #[serde(default)]
    pub cost_microdollars: i64,
    /// How long it took.
    #[serde(default)]
    pub latency_ms: Option<i64>,
    /// The budget lease the call was made under (`bls_…`): with the same `event_id` as a report's
    /// `request_id` on that lease, the event and the report are one call, counted once.
    #[serde(default)]
    pub lease_id: Option<String>,
    /// The provider's error code, for a failed call (1–64 characters of `A-Z a-z 0-9 . _ : / -`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// The provider's error message, for a failed call (at most 1,024 characters, no control characters).
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A validated analytics event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsEvent {
    /// The usage event it is, attributed to the credential that sent it.
    pub usage: UsageEvent,
    /// The lease it names.
    pub lease: Option<LeaseId>,
    /// The provider's error code, for a failed call.
    pub error_code: Option<String>,
}

fn key_characters(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

impl AnalyticsEventInput {
    /// Validates every field (naming the first that is wrong) and turns the event into the usage
    /// event of `credential`: its key is `event_id`, or `lease/event_id` when it names a lease.
    pub fn parse(&self, credential: TokenId, now: Timestamp) -> Result<AnalyticsEvent, ValidationError> {
        let key = self.event_id.as_str();
        if key.is_empty() || key.len() > MAX_AGENT_EVENT_ID_CHARS || !key_characters(key) {
            return Err(ValidationError::new(
                "event_id",
                "must be 1 to 90 characters of A-Z, a-z, 0-9, '.', '_', ':', '/', '-'",
            ));
        }
        let at = self.timestamp.ok_or_else(|| ValidationError::new("timestamp", "is required"))?;
        if at > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(ValidationError::new("timestamp", "must not be more than 5 minutes in the future"));
        }
        let outcome = match self.event_type.as_deref() {
            Some("llm_request_completed") => Outcome::Success,
            Some("llm_request_failed") => Outcome::Error,
            Some(_) => {
                return Err(ValidationError::new("type", "must be llm_request_completed or llm_request_failed"));
            }
            None => return Err(ValidationError::new("type", "is required")),
        };
        let lease = self.lease_id.as_deref().map(|lease| LeaseId::parse(lease.trim())).transpose()?;
        let event_id = match &lease {
            Some(lease) => EventId::parse(&format!("{lease}/{key}"))?,
            None => EventId::parse(key)?,
        };
        let most = MAX_COST_PER_EVENT.micros();
        if !(0..=most).contains(&self.cost_microdollars) {
            let reason = if self.cost_microdollars < 0 {
                "must not be negative".to_owned()
            } else {
                format!("must be at most {most}")
            };
            return Err(ValidationError::new("cost_microdollars", reason));
        }
        let error_code = self.error_code.as_deref().map(check_error_code).transpose()?;
        if let Some(message) = &self.error_message
            && (message.chars().count() > MAX_ERROR_MESSAGE_CHARS || message.chars().any(char::is_control))
        {
            return Err(ValidationError::new(
                "error_message",
                "must be at most 1024 characters without control characters",
            ));
        }
        let mut usage = UsageEvent::new(
            credential,
            at,
            ProviderName::parse(self.provider.trim())?,
            ModelName::parse(self.model.trim())?,
        );
        usage.event_id = Some(event_id);
        usage.input_tokens = count_in_range("input_tokens", self.input_tokens, MAX_TOKENS_PER_EVENT)?;
        usage.output_tokens = count_in_range("output_tokens", self.output_tokens, MAX_TOKENS_PER_EVENT)?;
        usage.cost = Some(Microdollars::from_micros(self.cost_microdollars));
        usage.outcome = outcome;
        usage.latency_ms =
            self.latency_ms.map(|latency| count_in_range("latency_ms", latency, MAX_LATENCY_MS)).transpose()?;
        usage.check()?;
        Ok(AnalyticsEvent { usage, lease, error_code })
    }
}

fn check_error_code(code: &str) -> Result<String, ValidationError> {
    if code.is_empty() || code.len() > MAX_ERROR_CODE_CHARS || !key_characters(code) {
        return Err(ValidationError::new(
            "error_code",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':', '/', '-'",
        ));
    }
    Ok(code.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000)
    }

    fn input() -> AnalyticsEventInput {
        AnalyticsEventInput {
            event_id: "call-1".into(),
            timestamp: Some(now()),
            event_type: Some("llm_request_completed".into()),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 100,
            output_tokens: 20,
            cost_microdollars: 350,
            latency_ms: Some(800),
            ..AnalyticsEventInput::default()
        }
    }

    #[test]
    fn a_valid_event_becomes_the_credentials_usage_event() {
        let credential = TokenId::generate();
        let event = input().parse(credential, now()).unwrap();
        assert_eq!(event.usage.token_id, credential);
        assert_eq!(event.usage.event_id.unwrap().as_str(), "call-1");
        assert_eq!((event.usage.cost, event.usage.outcome), (Some(Microdollars::from_micros(350)), Outcome::Success));
        let lease = LeaseId::generate();
        let mut failed = input();
        failed.event_type = Some("llm_request_failed".into());
        failed.lease_id = Some(lease.to_string());
        failed.error_code = Some("rate_limit_exceeded".into());
        let event = failed.parse(credential, now()).unwrap();
        assert_eq!(event.usage.event_id.unwrap().as_str(), format!("{lease}/call-1"));
        assert_eq!((event.usage.outcome, event.lease), (Outcome::Error, Some(lease)));
    }

    #[test]
    fn every_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut AnalyticsEventInput)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("event_id", Box::new(|input| input.event_id = String::new())),
            ("event_id", Box::new(|input| input.event_id = "x".repeat(91))),
            ("event_id", Box::new(|input| input.event_id = "has space".into())),
            ("timestamp", Box::new(|input| input.timestamp = None)),
            ("timestamp", Box::new(|input| input.timestamp = Some(now().saturating_add(Duration::from_secs(301))))),
            ("type", Box::new(|input| input.event_type = None)),
            ("type", Box::new(|input| input.event_type = Some("llm_request_started".into()))),
            ("provider", Box::new(|input| input.provider = "Open AI".into())),
            ("model", Box::new(|input| input.model = String::new())),
            ("input_tokens", Box::new(|input| input.input_tokens = -1)),
            ("output_tokens", Box::new(|input| input.output_tokens = i64::MAX)),
            ("cost_microdollars", Box::new(|input| input.cost_microdollars = -5)),
            ("cost_microdollars", Box::new(|input| input.cost_microdollars = i64::MAX)),
            ("latency_ms", Box::new(|input| input.latency_ms = Some(-1))),
            ("lease_id", Box::new(|input| input.lease_id = Some("bls_nope".into()))),
            ("error_code", Box::new(|input| input.error_code = Some(String::new()))),
            ("error_message", Box::new(|input| input.error_message = Some("line\nbreak".into()))),
            ("error_message", Box::new(|input| input.error_message = Some("x".repeat(1025)))),
        ];
        for (field, mutate) in cases {
            let mut bad = input();
            mutate(&mut bad);
            assert_eq!(bad.parse(TokenId::generate(), now()).unwrap_err().field, field);
        }
    }
}

//! Request traces: what one call through a token looked like (endpoint, provider, model, status,
//! latency, tokens, cost) and, when payload capture is on, its request and response bodies, cut to
//! a byte budget and redacted.

use serde::{Deserialize, Serialize};

use crate::usage::count_in_range;
use crate::{
    AgentId, Endpoint, MAX_CLOCK_SKEW, MAX_COST_PER_EVENT, MAX_LATENCY_MS, MAX_TOKENS_PER_EVENT, Microdollars,
    ModelName, OwnerId, ProjectId, ProviderName, Timestamp, TokenId, TraceId, ValidationError,
};

/// The longest payload accepted in a trace before it is cut to the budget (1 MiB).
pub const MAX_TRACE_PAYLOAD_BYTES: usize = 1 << 20;

/// A trace as a client sends it (`POST /v1/traces`), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceInput {
    /// The token (or agent credential) the call went through.
    #[serde(default)]
    pub token_id: String,
    /// When; defaults to now.
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// The endpoint or tool called.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The HTTP status the call ended with (100–599).
    #[serde(default)]
    pub status: Option<i64>,
    /// How long it took.
    #[serde(default)]
    pub latency_ms: Option<i64>,
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// What it cost, in microdollars.
    #[serde(default)]
    pub cost_microdollars: i64,
    /// The request body (kept only when payload capture is on).
    #[serde(default)]
    pub request: Option<String>,
    /// The response body (kept only when payload capture is on).
    #[serde(default)]
    pub response: Option<String>,
}

/// A validated trace, before the store attributes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrace {
    /// The token.
    pub token_id: TokenId,
    /// When.
    pub at: Timestamp,
    /// The endpoint or tool.
    pub endpoint: Option<Endpoint>,
    /// The provider.
    pub provider: Option<ProviderName>,
    /// The model.
    pub model: Option<ModelName>,
    /// The HTTP status.
    pub status: u16,
    /// The latency.
    pub latency_ms: Option<u32>,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
    /// The cost.
    pub cost: Microdollars,
    /// The request body as sent (not yet cut or redacted).
    pub request: Option<String>,
    /// The response body as sent (not yet cut or redacted).
    pub response: Option<String>,
}

impl TraceInput {
    /// Validates every field, naming the first that is wrong; `now` fills a missing time.
    pub fn parse(&self, now: Timestamp) -> Result<NewTrace, ValidationError> {
        let at = self.at.unwrap_or(now);
        if at > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(ValidationError::new("at", "must not be more than 5 minutes in the future"));
        }
        let status = self.status.ok_or_else(|| ValidationError::new("status", "is required"))?;
        let status = u16::try_from(status)
            .ok()
            .filter(|status| (100..=599).contains(status))
            .ok_or_else(|| ValidationError::new("status", "must be an HTTP status between 100 and 599"))?;
        let most = MAX_COST_PER_EVENT.micros();
        if !(0..=most).contains(&self.cost_microdollars) {
            let reason = if self.cost_microdollars < 0 {
                "must not be negative".to_owned()
            } else {
                format!("must be at most {most}")
            };
            return Err(ValidationError::new("cost_microdollars", reason));
        }
        for (field, payload) in [("request", &self.request), ("response", &self.response)] {
            if payload.as_ref().is_some_and(|payload| payload.len() > MAX_TRACE_PAYLOAD_BYTES) {
                return Err(ValidationError::new(field, "must be at most 1 MiB"));
            }
        }
        Ok(NewTrace {
            token_id: TokenId::parse(self.token_id.trim())?,
            at,
            endpoint: self.endpoint.as_deref().map(|endpoint| Endpoint::parse(endpoint.trim())).transpose()?,
            provider: self.provider.as_deref().map(|provider| ProviderName::parse(provider.trim())).transpose()?,
            model: self.model.as_deref().map(|model| ModelName::parse(model.trim())).transpose()?,
            status,
            latency_ms: self
                .latency_ms
                .map(|latency| count_in_range("latency_ms", latency, MAX_LATENCY_MS))
                .transpose()?,
            input_tokens: count_in_range("input_tokens", self.input_tokens, MAX_TOKENS_PER_EVENT)?,
            output_tokens: count_in_range("output_tokens", self.output_tokens, MAX_TOKENS_PER_EVENT)?,
            cost: Microdollars::from_micros(self.cost_microdollars),
            request: self.request.clone(),
            response: self.response.clone(),
        })
    }
}

/// A stored trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceRecord {
    /// Its id.
    pub id: TraceId,
    /// The token.
    pub token_id: TokenId,
    /// The token's agent, when it is an agent credential.
    pub agent_id: Option<AgentId>,
    /// The token's owner when the trace was stored.
    pub owner: Option<OwnerId>,
    /// The token's project when the trace was stored.
    pub project_id: Option<ProjectId>,
    /// When the call happened.
    pub at: Timestamp,
    /// The endpoint or tool.
    pub endpoint: Option<Endpoint>,
    /// The provider.
    pub provider: Option<ProviderName>,
    /// The model.
    pub model: Option<ModelName>,
    /// The HTTP status.
    pub status: u16,
    /// The latency.
    pub latency_ms: Option<u32>,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
    /// The cost (`cost_micros` in JSON).
    #[serde(rename = "cost_micros")]
    pub cost: Microdollars,
    /// The request body, cut to the budget and redacted (absent when capture is off).
    pub request: Option<String>,
    /// The response body, cut to the budget and redacted.
    pub response: Option<String>,
    /// Bytes of payload kept.
    pub payload_bytes: u64,
    /// Whether a payload was cut (or dropped) to keep to a byte budget.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> TraceInput {
        TraceInput {
            token_id: TokenId::generate().to_string(),
            status: Some(200),
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            ..TraceInput::default()
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let now = Timestamp::from_unix_micros(1_800_000_000_000_000);
        type Mutation = Box<dyn Fn(&mut TraceInput)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("token_id", Box::new(|input| input.token_id = "x".into())),
            ("status", Box::new(|input| input.status = None)),
            ("status", Box::new(|input| input.status = Some(99))),
            ("status", Box::new(|input| input.status = Some(600))),
            ("latency_ms", Box::new(|input| input.latency_ms = Some(-1))),
            ("input_tokens", Box::new(|input| input.input_tokens = -1)),
            ("cost_microdollars", Box::new(|input| input.cost_microdollars = -1)),
            ("model", Box::new(|input| input.model = Some("GPT 4".into()))),
            ("request", Box::new(|input| input.request = Some("x".repeat(MAX_TRACE_PAYLOAD_BYTES + 1)))),
            ("at", Box::new(move |input| input.at = Some(now.saturating_add(std::time::Duration::from_secs(400))))),
        ];
        for (field, mutate) in cases {
            let mut bad = input();
            mutate(&mut bad);
            assert_eq!(bad.parse(now).unwrap_err().field, field);
        }
        assert_eq!(input().parse(now).unwrap().status, 200);
    }
}

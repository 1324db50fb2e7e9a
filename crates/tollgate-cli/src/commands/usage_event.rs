//! The flags of one usage event (`usage record`, `usage settle`), checked into a [`UsageInput`].

use clap::Args;
use tollgate::{
    MAX_LATENCY_MS, MAX_REQUESTS_PER_EVENT, MAX_TOKENS_PER_EVENT, Microdollars, Timestamp, UsageInput, ValidationError,
    parse_count,
};

#[derive(Debug, Args)]
pub(crate) struct EventArgs {
    /// Idempotency key (e.g. the gateway's request id): recording it again counts it once.
    #[arg(long)]
    event_id: Option<String>,
    /// LLM provider, e.g. openai.
    #[arg(long)]
    provider: String,
    /// Model, e.g. gpt-4o-mini.
    #[arg(long)]
    model: String,
    /// Prompt tokens.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    input_tokens: String,
    /// Completion tokens.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    output_tokens: String,
    /// Requests this event stands for.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    requests: String,
    /// Cost in dollars (e.g. 0.0125); default: from the price table.
    #[arg(long, allow_hyphen_values = true)]
    cost: Option<String>,
    /// Endpoint or tool called.
    #[arg(long)]
    endpoint: Option<String>,
    /// success or error.
    #[arg(long)]
    outcome: Option<String>,
    /// Latency in milliseconds.
    #[arg(long, allow_hyphen_values = true)]
    latency_ms: Option<String>,
    /// Client IP.
    #[arg(long)]
    ip: Option<String>,
    /// When (RFC 3339); default now.
    #[arg(long)]
    at: Option<String>,
}

fn count(field: &'static str, text: &str, max: u32) -> Result<i64, ValidationError> {
    parse_count(field, text, u64::from(max)).map(|value| value.try_into().unwrap_or(i64::MAX))
}

impl EventArgs {
    /// The event for `token_id` (empty when settling: the reservation's token).
    pub(crate) fn input(&self, token_id: String) -> Result<UsageInput, ValidationError> {
        Ok(UsageInput {
            event_id: self.event_id.clone(),
            token_id,
            at: self.at.as_deref().map(|at| Timestamp::parse_rfc3339("at", at)).transpose()?,
            provider: self.provider.clone(),
            model: self.model.clone(),
            input_tokens: count("input_tokens", &self.input_tokens, MAX_TOKENS_PER_EVENT)?,
            output_tokens: count("output_tokens", &self.output_tokens, MAX_TOKENS_PER_EVENT)?,
            requests: Some(count("requests", &self.requests, MAX_REQUESTS_PER_EVENT)?),
            cost_micros: self
                .cost
                .as_deref()
                .map(|cost| Microdollars::parse_dollars("cost", cost).map(Microdollars::micros))
                .transpose()?,
            endpoint: self.endpoint.clone(),
            outcome: self.outcome.clone(),
            latency_ms: self
                .latency_ms
                .as_deref()
                .map(|latency| count("latency_ms", latency, MAX_LATENCY_MS))
                .transpose()?,
            ip: self.ip.clone(),
        })
    }
}

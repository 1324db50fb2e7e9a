//! `POST /v1/usage`: report usage (one event or a batch), answered once it is on disk with what
//! became of each event; `GET /v1/usage/dead-letters`: the events the store refused (admins).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    DeadLetterRecord, EventId, Microdollars, Receipt, ReceiptKind, RecordedUsage, UsageInput, UsageOutcome,
};

use super::receipts::{receipt_schema, sign, usage_content};
use super::users::{page_request, paging_properties};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query, from_value};
use crate::openapi::{
    ApiSchema, Components, endpoint, event_cost, id, ip_address, latency, nullable, request_count, timestamp,
    token_count,
};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// At most this many events in one `POST /v1/usage`.
const MAX_BATCH: usize = 1000;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post(
            "/v1/usage",
            Doc::new("recordUsage", "usage", "Report usage: one event, or `{\"events\": [...]}` (at most 1000)")
                .describe(
                    "Validated and authorized in full before anything is stored (one bad event: nothing is \
                     stored, and `field` names it, e.g. `events[].model`). The answer comes once the events' \
                     transaction is on disk (fsync'd): a 200 means durable, counted against quotas and in \
                     reports. Send an `event_id` with every event (a gateway's request id): a retry of an \
                     event already stored is answered `duplicate` and counted once. An event the store \
                     refuses is `dead_lettered` (kept for an operator, counted nowhere); the rest commit. \
                     A 503 means some events may have been stored: retry with the same event ids.",
                )
                .bearer()
                .body::<UsageBody>()
                .response::<Recorded>(200, "Stored")
                .problems(&[400, 403, 404, 413, 415, 503]),
            record,
        )
        .get(
            "/v1/usage/dead-letters",
            Doc::new("listDeadLetters", "usage", "Usage events the store refused, newest first (admins only)")
                .bearer()
                .query::<PageQuery>()
                .response::<DeadLetterPage>(200, "One page")
                .problems(&[400, 403]),
            dead_letters,
        )
}

/// `POST /v1/usage`: one event, or `{"events": [...]}`.
#[derive(Debug)]
struct UsageBody;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    events: Vec<UsageInput>,
}

/// One usage event's JSON schema (also the body of a settle, where `token_id` may be left out).
pub(super) fn event_schema(token_required: bool) -> Value {
    let required: &[&str] = if token_required { &["token_id", "provider", "model"] } else { &["provider", "model"] };
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "event_id": {
                "type": "string", "pattern": "^[A-Za-z0-9._:/-]{1,128}$",
                "description": "Idempotency key (a gateway's request id): a repeat for the token is counted once.",
            },
            "token_id": id("tok_", "The token the usage is of."),
            "at": timestamp("When; default now; at most 5 minutes ahead."),
            "provider": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,64}$" },
            "model": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,128}$" },
            "input_tokens": token_count(""),
            "output_tokens": token_count(""),
            "requests": request_count(),
            "cost_micros": event_cost("Omit to price from the table."),
            "endpoint": endpoint(),
            "outcome": { "type": "string", "enum": ["success", "error"] },
            "latency_ms": latency(),
            "ip": ip_address(""),
        }
    })
}

impl ApiSchema for UsageBody {
    const NAME: &'static str = "RecordUsage";
    fn schema(_: &mut Components) -> Value {
        json!({
            "oneOf": [
                event_schema(true),
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["events"],
                    "properties": { "events": { "type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": event_schema(true) } },
                },
            ]
        })
    }
}

/// What became of one event.
#[derive(Debug, Serialize)]
struct EventOutcome<'a> {
    event_id: Option<&'a EventId>,
    outcome: UsageOutcome,
    /// The cost as stored (priced from the table when the event reported none).
    cost_micros: Microdollars,
    /// Signed, when the server signs receipts; none for a dead-lettered event (nothing billed).
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Receipt>,
}

/// 200's body.
#[derive(Debug, Serialize)]
struct Recorded<'a> {
    recorded: usize,
    duplicates: usize,
    dead_lettered: usize,
    events: Vec<EventOutcome<'a>>,
}

impl<'a> Recorded<'a> {
    fn of(usage: &'a [RecordedUsage], receipt: impl Fn(&RecordedUsage) -> Option<Receipt>) -> Self {
        let count = |outcome| usage.iter().filter(|item| item.outcome == outcome).count();
        Self {
            recorded: count(UsageOutcome::Recorded),
            duplicates: count(UsageOutcome::Duplicate),
            dead_lettered: count(UsageOutcome::DeadLettered),
            events: usage
                .iter()
                .map(|item| EventOutcome {
                    event_id: item.event.event_id.as_ref(),
                    outcome: item.outcome,
                    cost_micros: item.event.cost.unwrap_or(Microdollars::ZERO),
                    receipt: (item.outcome != UsageOutcome::DeadLettered).then(|| receipt(item)).flatten(),
                })
                .collect(),
        }
    }
}

/// The schema of a usage outcome.
pub(super) fn outcome_schema() -> Value {
    json!({
        "type": "string", "enum": ["recorded", "duplicate", "dead_lettered"],
        "description": "recorded: stored and counted; duplicate: its event_id was stored before, counted once; \
                        dead_lettered: the store refused it (kept for an operator, counted nowhere).",
    })
}

impl ApiSchema for Recorded<'_> {
    const NAME: &'static str = "UsageRecorded";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["recorded", "duplicates", "dead_lettered", "events"],
            "properties": {
                "recorded": { "type": "integer" },
                "duplicates": { "type": "integer" },
                "dead_lettered": { "type": "integer" },
                "events": {
                    "type": "array",
                    "description": "One entry per event, in the order sent.",
                    "items": {
                        "type": "object",
                        "required": ["event_id", "outcome", "cost_micros"],
                        "properties": {
                            "event_id": { "type": ["string", "null"] },
                            "outcome": outcome_schema(),
                            "cost_micros": { "type": "integer", "minimum": 0 },
                            "receipt": receipt_schema(),
                        }
                    }
                },
            }
        })
    }
}

async fn record(State(state): State<AppState>, caller: Caller, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let is_batch = body.as_object().is_some_and(|object| object.contains_key("events"));
    let inputs = if is_batch { from_value::<Batch>(body)?.events } else { vec![from_value::<UsageInput>(body)?] };
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("events", format!("must hold 1 to {MAX_BATCH} events")));
    }
    let recorded = state.metering().record_inputs(&caller.principal, &inputs).await.map_err(|error| match error {
        // Record-time validation names the field of the event; say which event.
        tollgate::Error::Validation(invalid) if is_batch => {
            ApiError::invalid_field(format!("events[].{}", invalid.field), invalid.reason)
        }
        other => other.into(),
    })?;
    // One receipt per event: each is its own idempotent unit (its event_id), so a repeat in any
    // batch is answered with the receipt it first got.
    let receipt =
        |item: &RecordedUsage| sign(&state, || usage_content(ReceiptKind::Usage, &item.event, None, item.event.at));
    Ok(axum::Json(Recorded::of(&recorded, receipt)).into_response())
}

/// `?limit=&cursor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for PageQuery {
    const NAME: &'static str = "PageQuery";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "additionalProperties": false, "properties": paging_properties() })
    }
}

#[derive(Debug, Serialize)]
struct DeadLetterPage {
    items: Vec<DeadLetterRecord>,
    next_cursor: Option<String>,
}

impl ApiSchema for DeadLetterPage {
    const NAME: &'static str = "DeadLetterPage";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "token_id", "event", "reason", "failed_at"],
                        "properties": {
                            "id": { "type": "integer" },
                            "token_id": { "type": "string" },
                            "event": { "type": "object", "description": "The event as it was to be stored." },
                            "reason": { "type": "string", "description": "Why the store refused it." },
                            "failed_at": timestamp("When."),
                        }
                    }
                },
                "next_cursor": nullable(json!({ "type": "string" })),
            }
        })
    }
}

async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let found = state.metering().dead_letters(&caller.principal, &page).await?;
    Ok(axum::Json(DeadLetterPage { items: found.items, next_cursor: found.next_cursor }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<PageQuery>();
        let mut event = tollgate::UsageEvent::new(
            tollgate::TokenId::generate(),
            tollgate::Timestamp::from_unix_micros(0),
            tollgate::ProviderName::parse("openai").unwrap(),
            tollgate::ModelName::parse("gpt-4o").unwrap(),
        );
        event.event_id = Some(EventId::parse("req-1").unwrap());
        event.cost = Some(Microdollars::from_micros(12));
        let usage = [RecordedUsage { event: event.clone(), outcome: UsageOutcome::Duplicate }];
        check_response(&Recorded::of(&usage, |_| None));
        let signer = tollgate::ReceiptSigner::ephemeral().unwrap();
        let signed = |item: &RecordedUsage| {
            Some(signer.sign(usage_content(ReceiptKind::Usage, &item.event, None, item.event.at)))
        };
        check_response(&Recorded::of(&usage, signed));
        let letter = DeadLetterRecord {
            id: 1,
            token_id: event.token_id.to_string(),
            event: serde_json::to_value(&event).unwrap(),
            reason: "refused".to_owned(),
            failed_at: event.at,
        };
        check_response(&DeadLetterPage { items: vec![letter], next_cursor: Some("1".to_owned()) });
    }
}

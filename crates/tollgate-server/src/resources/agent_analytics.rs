//! Agent analytics: `POST /v1/analytics/events` (an agent reports its LLM calls, with its own
//! credential), `GET /v1/analytics/spending` (agents' spending by agent, provider, model…) and
//! `GET /v1/analytics/budgets` (each agent's budget status and risk level).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    AgentFilter, AgentId, AgentScope, AgentStatus, AnalyticsEventInput, BudgetStatus, IngestedEvent, ModelName,
    OwnerId, ProviderName, SpendingReport, Timestamp, UsageFilter, UsageOutcome,
};

use super::agents::agents;
use super::usage::{group_by, group_by_schema, group_page, merged, range_properties, report_range};
use super::usage_record::outcome_schema;
use super::users::{page_request, paging_properties};
use crate::auth::{AgentCaller, Caller};
use crate::error::ApiError;
use crate::extract::{Json, Query, from_value};
use crate::openapi::{
    ApiSchema, Components, event_cost, group_cursor, identifier, latency, model, notes, timestamp, token_count,
};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The most events one request may carry.
const MAX_BATCH: usize = 1000;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post(
            "/v1/analytics/events",
            Doc::new(
                "ingestAnalyticsEvents",
                "analytics",
                "An agent reports its LLM calls: one event or `{\"events\": [...]}`",
            )
            .describe(
                "The agent, with its own credential; at most 1000 events. Every event is validated first \
                     (one bad event: nothing is stored, and `field` names it, e.g. `events[].input_tokens`). \
                     The answer comes once the events are on disk: they are usage of the agent's credential, \
                     in the same rollups as budget reports. Idempotent by the agent and `event_id`: a repeat \
                     (from any of its credentials) is `duplicate`, counted once; an event naming a `lease_id` \
                     with the `event_id` of a report's `request_id` on that lease is that report's call.",
            )
            .bearer()
            .body::<EventsBody>()
            .response::<Ingested>(200, "Stored")
            .problems(&[400, 403, 404, 413, 415, 503]),
            ingest,
        )
        .get(
            "/v1/analytics/spending",
            Doc::new("getAgentSpending", "analytics", "Agents' spending over a period, optionally grouped")
                .describe(
                    "Totals (cost, requests, tokens, success rate, average cost per request) over every agent \
                     matched, and a page of groups highest cost first. Admins read every agent's; everyone \
                     else their own agents'.",
                )
                .bearer()
                .query::<SpendingQuery>()
                .response::<SpendingView>(200, "The report")
                .problems(&[400, 403, 404]),
            spending,
        )
        .get(
            "/v1/analytics/budgets",
            Doc::new(
                "getBudgetStatus",
                "analytics",
                "Each agent's budget: allocated, spent, reserved, percent used, risk",
            )
            .describe(
                "Newest agent first. Risk by the share of the allocation spent: low < 50 %, medium ≥ 50 %, \
                     high ≥ 80 %, critical ≥ 95 %, exhausted ≥ 100 % (or nothing allocated). Admins see every \
                     agent; everyone else their own.",
            )
            .bearer()
            .query::<BudgetsQuery>()
            .response::<BudgetPage>(200, "One page")
            .problems(&[400, 403]),
            budgets,
        )
}

#[derive(Debug)]
struct EventsBody;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    events: Vec<AnalyticsEventInput>,
}

fn event_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["event_id", "timestamp", "type", "provider", "model"],
        "properties": {
            "event_id": { "type": "string", "pattern": "^[A-Za-z0-9._:/-]{1,90}$", "description": "The agent's key for the call." },
            "timestamp": timestamp("When the call happened; at most 5 minutes ahead."),
            "type": { "type": "string", "enum": ["llm_request_completed", "llm_request_failed"] },
            "provider": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,64}$" },
            "model": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,128}$" },
            "input_tokens": token_count("Prompt tokens."),
            "output_tokens": token_count("Completion tokens."),
            "cost_microdollars": event_cost("What the call cost."),
            "latency_ms": latency(),
            "lease_id": { "type": "string", "pattern": "^bls_[0-9a-f]{32}$", "description": "The agent's lease the call ran under." },
            "error_code": { "type": "string", "pattern": "^[A-Za-z0-9._:/-]{1,64}$" },
            "error_message": notes(1024, "Checked, not stored."),
        }
    })
}

impl ApiSchema for EventsBody {
    const NAME: &'static str = "AnalyticsEvents";
    fn schema(_: &mut Components) -> Value {
        json!({
            "oneOf": [
                event_schema(),
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["events"],
                    "properties": { "events": { "type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": event_schema() } },
                },
            ]
        })
    }
}

#[derive(Debug, Serialize)]
struct Ingested {
    recorded: usize,
    duplicates: usize,
    events: Vec<IngestedEvent>,
}

impl ApiSchema for Ingested {
    const NAME: &'static str = "AnalyticsIngested";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["recorded", "duplicates", "events"],
            "properties": {
                "recorded": { "type": "integer" },
                "duplicates": { "type": "integer" },
                "events": {
                    "type": "array",
                    "description": "One entry per event, in the order sent.",
                    "items": {
                        "type": "object",
                        "required": ["event_id", "outcome"],
                        "properties": { "event_id": { "type": "string" }, "outcome": outcome_schema() },
                    },
                },
            }
        })
    }
}

async fn ingest(
    State(state): State<AppState>,
    caller: AgentCaller,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let is_batch = body.as_object().is_some_and(|object| object.contains_key("events"));
    let inputs =
        if is_batch { from_value::<Batch>(body)?.events } else { vec![from_value::<AnalyticsEventInput>(body)?] };
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("events", format!("must hold 1 to {MAX_BATCH} events")));
    }
    let events = agents(&state)?.ingest_events(&caller.audited(), &inputs).await.map_err(|error| match error {
        tollgate::Error::Validation(invalid) if is_batch => {
            ApiError::invalid_field(format!("events[].{}", invalid.field), invalid.reason)
        }
        other => other.into(),
    })?;
    let count = |outcome| events.iter().filter(|event| event.outcome == outcome).count();
    let ingested =
        Ingested { recorded: count(UsageOutcome::Recorded), duplicates: count(UsageOutcome::Duplicate), events };
    Ok(axum::Json(ingested).into_response())
}

/// `GET /v1/analytics/spending`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendingQuery {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    since: Option<Timestamp>,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    hours: Option<u64>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for SpendingQuery {
    const NAME: &'static str = "AgentSpendingQuery";
    fn schema(_: &mut Components) -> Value {
        let filters = json!({
            "agent": { "type": "string", "pattern": "^agt_[0-9a-f]{32}$" },
            "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "Agents of this owner." },
            "provider": identifier(64, "Only this provider."),
            "model": model("Only this model."),
            "group_by": group_by_schema(),
            "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 },
            "cursor": group_cursor(),
        });
        json!({ "type": "object", "additionalProperties": false, "properties": merged(range_properties(), filters) })
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct SpendingView(SpendingReport);

fn figures_properties() -> Value {
    json!({
        "events": { "type": "integer" }, "requests": { "type": "integer" },
        "input_tokens": { "type": "integer" }, "output_tokens": { "type": "integer" },
        "total_tokens": { "type": "integer" }, "cost_micros": { "type": "integer" }, "errors": { "type": "integer" },
        "success_rate": { "type": ["number", "null"], "minimum": 0, "maximum": 1 },
        "average_cost_per_request_micros": { "type": ["integer", "null"] },
    })
}

impl ApiSchema for SpendingView {
    const NAME: &'static str = "AgentSpending";
    fn schema(_: &mut Components) -> Value {
        let group = merged(json!({ "key": { "type": ["string", "null"] } }), figures_properties());
        json!({
            "type": "object",
            "required": ["since", "until", "group_by", "totals", "groups", "next_cursor"],
            "properties": {
                "since": timestamp("From."),
                "until": timestamp("Until (exclusive)."),
                "group_by": { "type": ["string", "null"] },
                "totals": { "type": "object", "properties": figures_properties() },
                "groups": { "type": "array", "items": { "type": "object", "properties": group } },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

async fn spending(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SpendingQuery>,
) -> Result<Response, ApiError> {
    let now = state.tokens().clock().now();
    let (since, until) = report_range(query.period.as_deref(), query.since, query.until, query.hours, now)?;
    let mut filter = UsageFilter::between(since, until);
    filter.agent = Some(
        query
            .agent
            .as_deref()
            .map(|agent| AgentId::parse(agent).map_err(|error| error.renamed("agent")))
            .transpose()?
            .map_or(AgentScope::Any, AgentScope::One),
    );
    filter.owner = query.owner.as_deref().map(OwnerId::parse).transpose()?;
    filter.provider = query.provider.as_deref().map(ProviderName::parse).transpose()?;
    filter.model = query.model.as_deref().map(ModelName::parse).transpose()?;
    let grouping = query.group_by.as_deref().map(group_by).transpose()?;
    let page = group_page(grouping, query.limit, query.cursor)?;
    let report = agents(&state)?.spending(&caller.principal, &filter, grouping, &page).await?;
    Ok(axum::Json(SpendingView(report)).into_response())
}

/// `GET /v1/analytics/budgets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetsQuery {
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for BudgetsQuery {
    const NAME: &'static str = "BudgetStatusQuery";
    fn schema(_: &mut Components) -> Value {
        let filters = json!({
            "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$" },
            "status": { "type": "string", "enum": ["active", "paused", "disabled"] },
        });
        json!({ "type": "object", "additionalProperties": false, "properties": merged(paging_properties(), filters) })
    }
}

#[derive(Debug, Serialize)]
struct BudgetPage {
    items: Vec<BudgetStatus>,
    next_cursor: Option<String>,
}

impl ApiSchema for BudgetPage {
    const NAME: &'static str = "BudgetStatusPage";
    fn schema(_: &mut Components) -> Value {
        let amount = json!({ "type": "integer", "description": "Microdollars." });
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["agent_id", "name", "allocated", "spent", "reserved", "available", "percent_used", "risk"],
                        "properties": {
                            "agent_id": { "type": "string" },
                            "name": { "type": "string" },
                            "agent_status": { "type": "string" },
                            "allocated": amount, "spent": amount, "reserved": amount, "available": amount,
                            "status": { "type": "string", "enum": ["ok", "paused_for_budget"] },
                            "percent_used": { "type": "number", "minimum": 0 },
                            "risk": { "type": "string", "enum": ["low", "medium", "high", "critical", "exhausted"] },
                        }
                    }
                },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

async fn budgets(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BudgetsQuery>,
) -> Result<Response, ApiError> {
    let filter = AgentFilter {
        owner: query.owner.as_deref().map(OwnerId::parse).transpose()?,
        project: None,
        status: query.status.as_deref().map(str::parse::<AgentStatus>).transpose()?,
    };
    let page = page_request(query.limit, query.cursor, 50, 1000)?;
    let statuses = agents(&state)?.budget_statuses(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(BudgetPage { items: statuses.items, next_cursor: statuses.next_cursor }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn query_schemas_match_their_types() {
        check_request::<SpendingQuery>();
        check_request::<BudgetsQuery>();
    }
}

//! Request traces: `POST /v1/traces` (a gateway reports one call through a token), `GET /v1/traces`
//! (filters, paging) and `GET /v1/traces/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    AgentId, ModelName, OwnerId, ProviderName, Timestamp, TokenId, TraceFilter, TraceId, TraceInput, TraceRecord,
};

use super::users::{page_request, paging_properties};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId, Query};
use crate::openapi::{
    ApiSchema, Components, endpoint, event_cost, id, identifier, latency, model, timestamp, token_count,
};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post(
            "/v1/traces",
            Doc::new(
                "recordTrace",
                "traces",
                "Report one call through a token: its figures and, when capture is on, its bodies",
            )
            .describe(
                "For whoever may record usage for the token (another owner's token is 404). Bodies are kept \
                     only when the server captures payloads: redacted by pattern (tollgate tokens and \
                     credentials, provider keys, bearer values, JWTs), then cut to the per-trace and per-day \
                     byte budgets (`truncated` says so). Traces are kept for the retention period and up to a \
                     total size.",
            )
            .bearer()
            .body::<TraceBody>()
            .response::<TraceView>(201, "Stored")
            .problems(&[400, 403, 404, 413, 415, 503]),
            record,
        )
        .get(
            "/v1/traces",
            Doc::new("listTraces", "traces", "Traces, newest first (admins: all; others: their own tokens')")
                .bearer()
                .query::<TracesQuery>()
                .response::<TracePage>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/traces/{id}",
            Doc::new("getTrace", "traces", "One trace")
                .bearer()
                .path_param("id", "The trace (trc_…)")
                .response::<TraceView>(200, "The trace")
                .problems(&[400, 404]),
            show,
        )
}

#[derive(Debug)]
struct TraceBody;

impl ApiSchema for TraceBody {
    const NAME: &'static str = "RecordTrace";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["token_id", "status"],
            "properties": {
                "token_id": id("tok_", "An API token or an agent credential."),
                "at": timestamp("When; default now; at most 5 minutes ahead."),
                "endpoint": endpoint(),
                "provider": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,64}$" },
                "model": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,128}$" },
                "status": { "type": "integer", "minimum": 100, "maximum": 599 },
                "latency_ms": latency(), "input_tokens": token_count(""), "output_tokens": token_count(""),
                "cost_microdollars": event_cost(""),
                "request": { "type": "string", "maxLength": 1_048_576, "description": "The request body (kept only with capture on)." },
                "response": { "type": "string", "maxLength": 1_048_576, "description": "The response body (kept only with capture on)." },
            }
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct TraceView(TraceRecord);

fn trace_schema() -> Value {
    let nullable_string = json!({ "type": ["string", "null"] });
    json!({
        "type": "object",
        "required": ["id", "token_id", "at", "status", "payload_bytes", "truncated"],
        "properties": {
            "id": { "type": "string" }, "token_id": { "type": "string" },
            "agent_id": nullable_string, "owner": nullable_string, "project_id": nullable_string,
            "at": timestamp("When the call happened."),
            "endpoint": nullable_string, "provider": nullable_string, "model": nullable_string,
            "status": { "type": "integer" }, "latency_ms": { "type": ["integer", "null"] },
            "input_tokens": { "type": "integer" }, "output_tokens": { "type": "integer" }, "cost_micros": { "type": "integer" },
            "request": nullable_string, "response": nullable_string,
            "payload_bytes": { "type": "integer" }, "truncated": { "type": "boolean" },
        }
    })
}

impl ApiSchema for TraceView {
    const NAME: &'static str = "Trace";
    fn schema(_: &mut Components) -> Value {
        trace_schema()
    }
}

async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<TraceInput>,
) -> Result<Response, ApiError> {
    let trace = state.traces().record(&caller.principal, &input).await?;
    Ok((StatusCode::CREATED, axum::Json(TraceView(trace))).into_response())
}

/// `GET /v1/traces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracesQuery {
    #[serde(default)]
    token_id: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    min_status: Option<u16>,
    #[serde(default)]
    max_status: Option<u16>,
    #[serde(default)]
    since: Option<Timestamp>,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for TracesQuery {
    const NAME: &'static str = "TracesQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = json!({
            "token_id": id("tok_", "Only this token's."), "owner": id("(usr|svc)_", "Only this owner's."),
            "agent": id("agt_", "Only this agent's."),
            "provider": identifier(64, "Only this provider."), "model": model("Only this model."),
            "min_status": { "type": "integer", "minimum": 100, "maximum": 599 },
            "max_status": { "type": "integer", "minimum": 100, "maximum": 599 },
            "since": timestamp("At or after."), "until": timestamp("Before."),
        });
        if let (Some(map), Value::Object(paging)) = (properties.as_object_mut(), paging_properties()) {
            map.extend(paging);
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

#[derive(Debug, Serialize)]
struct TracePage {
    items: Vec<TraceRecord>,
    next_cursor: Option<String>,
}

impl ApiSchema for TracePage {
    const NAME: &'static str = "TracePage";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": { "items": { "type": "array", "items": trace_schema() }, "next_cursor": { "type": ["string", "null"] } }
        })
    }
}

fn status_bound(field: &'static str, status: Option<u16>) -> Result<Option<u16>, ApiError> {
    match status {
        Some(status) if !(100..=599).contains(&status) => {
            Err(ApiError::invalid_field(field, "must be between 100 and 599"))
        }
        other => Ok(other),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TracesQuery>,
) -> Result<Response, ApiError> {
    let renamed = |field: &'static str| move |error: tollgate::ValidationError| error.renamed(field);
    let filter = TraceFilter {
        token_id: query.token_id.as_deref().map(TokenId::parse).transpose()?,
        owner: query.owner.as_deref().map(OwnerId::parse).transpose().map_err(renamed("owner"))?,
        agent: query.agent.as_deref().map(AgentId::parse).transpose().map_err(renamed("agent"))?,
        provider: query.provider.as_deref().map(ProviderName::parse).transpose()?,
        model: query.model.as_deref().map(ModelName::parse).transpose()?,
        min_status: status_bound("min_status", query.min_status)?,
        max_status: status_bound("max_status", query.max_status)?,
        since: query.since,
        until: query.until,
    };
    let page = page_request(query.limit, query.cursor, 50, 1000)?;
    let traces = state.traces().list(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(TracePage { items: traces.items, next_cursor: traces.next_cursor }).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TraceId>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(TraceView(state.traces().trace(&caller.principal, &id).await?)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn query_schemas_match_their_types() {
        check_request::<TracesQuery>();
    }
}

//! The operators' budget routes: an agent's budget and its history, setting an allocation,
//! leases, and change requests with their approval.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{AgentId, BudgetRequestId, BudgetRequestRecord, LeaseFilter, LeaseId, LeaseState, Page, RequestState};

use super::ReturnView;
use super::body::{BudgetViewBody, CreateRequestBody, LeasePage, LedgerPage, ReasonBody, SetBudgetBody};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, PathId, Query};
use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};
use crate::resources::agents::agents;
use crate::resources::users::{page_request, paging_properties};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    let agent = |operation_id, summary| {
        Doc::new(operation_id, "budgets", summary).bearer().path_param("id", "The agent id (agt_…)")
    };
    let request = |operation_id, summary| {
        Doc::new(operation_id, "budgets", summary)
            .bearer()
            .path_param("id", "The request id (brq_…)")
            .response::<RequestView<'static>>(200, "The request")
    };
    Routes::new()
        .get(
            "/v1/agents/{id}/budget",
            agent("getAgentBudget", "An agent's budget: allocated, reserved, spent, available, status")
                .response::<BudgetViewBody>(200, "The budget")
                .problems(&[400, 404, 503]),
            show,
        )
        .put(
            "/v1/agents/{id}/budget",
            agent("setAgentBudget", "Set an agent's allocation (admins only; not below what is spent and reserved)")
                .body::<SetBudgetBody>()
                .response::<BudgetViewBody>(200, "The budget after")
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            set,
        )
        .get(
            "/v1/agents/{id}/budget/history",
            agent("getAgentBudgetHistory", "Every allocation change (or, with all=true, every movement), newest first")
                .query::<HistoryQuery>()
                .response::<LedgerPage<'static>>(200, "One page")
                .problems(&[400, 404, 503]),
            history,
        )
        .get(
            "/v1/budget/leases",
            Doc::new("listBudgetLeases", "budgets", "List leases, newest first (non-admins: of their own agents)")
                .bearer()
                .query::<LeasesQuery>()
                .response::<LeasePage<'static>>(200, "One page")
                .problems(&[400, 403, 404, 503]),
            leases,
        )
        .post(
            "/v1/budget/leases/{id}/revoke",
            Doc::new("revokeBudgetLease", "budgets", "End a lease (admins only); its remainder returns")
                .bearer()
                .path_param("id", "The lease id (bls_…)")
                .body::<ReasonBody>()
                .response::<ReturnView<'static>>(200, "The lease after")
                .problems(&[400, 403, 404, 413, 415, 503]),
            revoke,
        )
        .post(
            "/v1/budget/requests",
            Doc::new("createBudgetRequest", "budgets", "Ask for a new allocation for an agent you own")
                .describe(
                    "The requester is the caller. Another admin approves or rejects it; the requester may cancel it.",
                )
                .bearer()
                .body::<CreateRequestBody>()
                .response::<RequestView<'static>>(201, "Created")
                .problems(&[400, 403, 404, 413, 415, 503]),
            create_request,
        )
        .get(
            "/v1/budget/requests",
            Doc::new(
                "listBudgetRequests",
                "budgets",
                "List change requests (admins: all; others: theirs and their agents')",
            )
            .bearer()
            .query::<RequestsQuery>()
            .response::<RequestPage<'static>>(200, "One page")
            .problems(&[400, 403, 503]),
            list_requests,
        )
        .get(
            "/v1/budget/requests/{id}",
            request("getBudgetRequest", "Show a change request").problems(&[400, 404, 503]),
            show_request,
        )
        .patch(
            "/v1/budget/requests/{id}/approve",
            request(
                "approveBudgetRequest",
                "Approve: the allocation becomes the requested value (admins, not the requester)",
            )
            .body::<ReasonBody>()
            .problems(&[400, 403, 404, 409, 413, 415, 503]),
            approve,
        )
        .patch(
            "/v1/budget/requests/{id}/reject",
            request("rejectBudgetRequest", "Reject (admins, not the requester)")
                .body::<ReasonBody>()
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            reject,
        )
        .patch(
            "/v1/budget/requests/{id}/cancel",
            request("cancelBudgetRequest", "Withdraw a pending request (its requester)")
                .problems(&[403, 404, 409, 503]),
            cancel,
        )
}

/// `GET /v1/agents/{id}/budget/history` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for HistoryQuery {
    const NAME: &'static str = "BudgetHistoryQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "all".to_owned(),
                json!({ "type": "boolean", "description": "Every movement, not only allocation changes." }),
            );
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

/// `GET /v1/budget/leases` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeasesQuery {
    #[serde(default)]
    agent: Option<AgentId>,
    #[serde(default)]
    state: Option<LeaseState>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for LeasesQuery {
    const NAME: &'static str = "ListBudgetLeasesQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert("agent".to_owned(), id("agt_", "Only this agent's."));
            map.insert(
                "state".to_owned(),
                json!({ "type": "string", "enum": ["open", "returned", "refreshed", "expired", "revoked"] }),
            );
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

/// `GET /v1/budget/requests` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    #[serde(default)]
    state: Option<RequestState>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for RequestsQuery {
    const NAME: &'static str = "ListBudgetRequestsQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "state".to_owned(),
                json!({ "type": "string", "enum": ["pending", "approved", "rejected", "cancelled"] }),
            );
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

/// A change request.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct RequestView<'a>(&'a BudgetRequestRecord);

impl ApiSchema for RequestView<'_> {
    const NAME: &'static str = "BudgetRequest";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "agent", "requester", "requester_owner", "requested_allocation", "justification", "state",
                         "decided_by", "decision_reason", "created_at", "decided_at"],
            "properties": {
                "id": id("brq_", "The request."),
                "agent": id("agt_", "The agent."),
                "requester": { "type": "string", "description": "Who asked (a user, a token or `cli`)." },
                "requester_owner": { "type": ["string", "null"], "description": "The owner the requester acts for." },
                "requested_allocation": { "type": "integer", "description": "The allocation asked for (microdollars)." },
                "justification": { "type": "string" },
                "state": { "type": "string", "enum": ["pending", "approved", "rejected", "cancelled"] },
                "decided_by": { "type": ["string", "null"] },
                "decision_reason": { "type": ["string", "null"] },
                "created_at": timestamp("Made."),
                "decided_at": nullable(timestamp("Decided.")),
            }
        })
    }
}

/// A page of change requests.
#[derive(Debug, Serialize)]
struct RequestPage<'a> {
    items: Vec<RequestView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for RequestPage<'_> {
    const NAME: &'static str = "BudgetRequestPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<RequestView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
) -> Result<Response, ApiError> {
    let budget = agents(&state)?.budget(&caller.principal, &id).await?;
    Ok(axum::Json(BudgetViewBody(budget)).into_response())
}

async fn set(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    Json(body): Json<SetBudgetBody>,
) -> Result<Response, ApiError> {
    let budget =
        agents(&state)?.set_budget(&caller.audited(), &id, body.allocated_microdollars, body.reason.as_deref()).await?;
    Ok(axum::Json(BudgetViewBody(budget)).into_response())
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let page = agents(&state)?.budget_history(&caller.principal, &id, query.all.unwrap_or(false), &page).await?;
    Ok(axum::Json(LedgerPage { items: &page.items, next_cursor: page.next_cursor.as_deref() }).into_response())
}

async fn leases(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<LeasesQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let filter = LeaseFilter { agent: query.agent, owner: None, state: query.state };
    let page = agents(&state)?.leases(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(LeasePage::new(&page)).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<LeaseId>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<Response, ApiError> {
    let (lease, returned) = agents(&state)?.revoke_lease(&caller.audited(), &id, body.reason.as_deref()).await?;
    Ok(axum::Json(ReturnView::new(&lease, returned)).into_response())
}

async fn create_request(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateRequestBody>,
) -> Result<Response, ApiError> {
    let record = agents(&state)?
        .request_budget(&caller.audited(), &body.agent_id, body.requested_allocation_microdollars, &body.justification)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(RequestView(&record))).into_response())
}

async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RequestsQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let page: Page<BudgetRequestRecord> =
        agents(&state)?.budget_requests(&caller.principal, query.state, &page).await?;
    let view =
        RequestPage { items: page.items.iter().map(RequestView).collect(), next_cursor: page.next_cursor.as_deref() };
    Ok(axum::Json(view).into_response())
}

async fn show_request(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<BudgetRequestId>,
) -> Result<Response, ApiError> {
    let record = agents(&state)?.budget_request(&caller.principal, &id).await?;
    Ok(axum::Json(RequestView(&record)).into_response())
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &BudgetRequestId,
    approve: bool,
    body: &ReasonBody,
) -> Result<Response, ApiError> {
    let record = agents(state)?.decide_budget_request(&caller.audited(), id, approve, body.reason.as_deref()).await?;
    Ok(axum::Json(RequestView(&record)).into_response())
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<BudgetRequestId>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<Response, ApiError> {
    decide(&state, &caller, &id, true, &body).await
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<BudgetRequestId>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<Response, ApiError> {
    decide(&state, &caller, &id, false, &body).await
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<BudgetRequestId>,
) -> Result<Response, ApiError> {
    let record = agents(&state)?.cancel_budget_request(&caller.audited(), &id).await?;
    Ok(axum::Json(RequestView(&record)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn query_schemas_match_their_types() {
        check_request::<HistoryQuery>();
        check_request::<LeasesQuery>();
        check_request::<RequestsQuery>();
    }
}

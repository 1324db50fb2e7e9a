//! The budget control protocol (`/v1/budget/handshake`, `/v1/budget/leases/{id}/report|refresh|return`),
//! spoken by an agent with its own credential, and the operators' budget routes (`operators.rs`).

mod body;
mod operators;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{Handshake, LeaseId, LeaseRecord, LeaseReportInput};

use self::body::{DelegateBody, HandshakeBody, LeaseView, RefreshBody, ReportBody, lease_properties};
use super::agents::agents;
use crate::auth::AgentCaller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, PathId};
use crate::openapi::{ApiSchema, Components, id, nullable};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const LEASE: &str = "The lease id (bls_…)";

pub(super) fn routes() -> Routes {
    let lease =
        |operation_id, summary| Doc::new(operation_id, "budget protocol", summary).bearer().path_param("id", LEASE);
    Routes::new()
        .post(
            "/v1/budget/handshake",
            Doc::new(
                "budgetHandshake",
                "budget protocol",
                "Open a lease of the agent's budget and receive its provider key",
            )
            .describe(
                "The agent, with its own credential. Grants the lesser of the amount asked and what is \
                     available, all or nothing: the key is decrypted first, then the lease, its ledger row and the \
                     audit of the opening and the delivery are one transaction. 402 `budget_exhausted` (with \
                     `available_microdollars` and `needed_microdollars`) when less than the minimum grant is \
                     available: the agent is then paused for budget until its allocation rises.",
            )
            .bearer()
            .body::<HandshakeBody>()
            .response::<HandshakeView<'static>>(200, "The lease and the key (never cache it)")
            .response_headers(&["Cache-Control"])
            .problems(&[400, 402, 403, 404, 413, 415, 503]),
            handshake,
        )
        .post(
            "/v1/budget/leases/{id}/report",
            lease("budgetReport", "Report a call's cost against the lease")
                .describe(
                    "Idempotent by `request_id`. 409 `lease_exhausted` when it would pass the grant (nothing is \
                     recorded: refresh the lease), 409 `lease_closed` for a closed lease. The report is also a usage \
                     event of the agent's credential, recorded in the same transaction.",
                )
                .body::<ReportBody>()
                .response::<ReportView<'static>>(200, "The lease after (and the report's receipt)")
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            report,
        )
        .post(
            "/v1/budget/leases/{id}/refresh",
            lease("budgetRefresh", "Replace the lease with a new one; its remainder returns in the same transaction")
                .body::<RefreshBody>()
                .response::<RefreshView<'static>>(200, "The new lease")
                .problems(&[400, 402, 403, 404, 409, 413, 415, 503]),
            refresh,
        )
        .post(
            "/v1/budget/leases/{id}/delegate",
            lease("budgetDelegate", "Carve a lease for a child agent out of this lease")
                .describe(
                    "The child (another agent of the same owner) reports and returns on the new lease with its own \
                     credential; it spends this lease's budget, expires no later than it, and gives what it does \
                     not spend back to this lease. Closing this lease closes it first. 409 `lease_exhausted` when \
                     this lease has less left than the minimum grant.",
                )
                .body::<DelegateBody>()
                .response::<LeaseView<'static>>(201, "The child lease")
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            delegate,
        )
        .post(
            "/v1/budget/leases/{id}/return",
            lease("budgetReturn", "Give the lease's remainder back (computed by the server; idempotent)")
                .response::<ReturnView<'static>>(200, "What went back now (0 when it was already closed)")
                .problems(&[403, 404, 503]),
            give_back,
        )
        .merge(operators::routes())
}

/// What a handshake answers: the lease, and the provider key to spend it with.
#[derive(Serialize)]
struct HandshakeView<'a> {
    lease_id: LeaseId,
    granted: i64,
    available_after: i64,
    expires_at: tollgate::Timestamp,
    provider_key: KeyView<'a>,
}

#[derive(Serialize)]
struct KeyView<'a> {
    provider_key_id: tollgate::ProviderKeyId,
    provider: &'a str,
    base_url: Option<&'a str>,
    secret: &'a str,
}

impl<'a> HandshakeView<'a> {
    fn new(handshake: &'a Handshake) -> Self {
        let key = &handshake.provider_key;
        Self {
            lease_id: handshake.lease.id,
            granted: handshake.lease.granted,
            available_after: handshake.available_after,
            expires_at: handshake.lease.expires_at,
            provider_key: KeyView {
                provider_key_id: key.provider_key_id,
                provider: key.provider.as_str(),
                base_url: key.base_url.as_ref().map(tollgate::BaseUrl::as_str),
                secret: key.secret.expose(),
            },
        }
    }
}

impl ApiSchema for HandshakeView<'_> {
    const NAME: &'static str = "BudgetHandshakeGranted";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["lease_id", "granted", "available_after", "expires_at", "provider_key"],
            "properties": {
                "lease_id": id("bls_", "The lease: report against it, refresh it, return it."),
                "granted": { "type": "integer", "description": "What the lease holds (microdollars)." },
                "available_after": { "type": "integer", "description": "What is still available after the grant." },
                "expires_at": { "type": "string", "format": "date-time" },
                "provider_key": {
                    "type": "object",
                    "required": ["provider_key_id", "provider", "base_url", "secret"],
                    "properties": {
                        "provider_key_id": id("pk_", "The key."),
                        "provider": { "type": "string" },
                        "base_url": nullable(json!({ "type": "string" })),
                        "secret": { "type": "string", "readOnly": true, "description": "Keep it in memory only." },
                    }
                },
            }
        })
    }
}

/// What a report answers: the lease, and the report's receipt when the server signs them.
#[derive(Serialize)]
struct ReportView<'a> {
    #[serde(flatten)]
    lease: LeaseView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<tollgate::Receipt>,
}

impl ApiSchema for ReportView<'_> {
    const NAME: &'static str = "BudgetReported";
    fn schema(components: &mut Components) -> Value {
        let mut schema = LeaseView::schema(components);
        schema["properties"]["receipt"] = super::receipts::receipt_schema();
        schema
    }
}

/// What a refresh answers.
#[derive(Serialize)]
struct RefreshView<'a> {
    #[serde(flatten)]
    lease: LeaseView<'a>,
    available_after: i64,
}

impl ApiSchema for RefreshView<'_> {
    const NAME: &'static str = "BudgetRefreshed";
    fn schema(_: &mut Components) -> Value {
        let mut properties = lease_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert("available_after".to_owned(), json!({ "type": "integer" }));
        }
        json!({ "type": "object", "required": ["id", "granted", "available_after", "refreshed_from"], "properties": properties })
    }
}

/// What a return answers.
#[derive(Serialize)]
pub(super) struct ReturnView<'a> {
    #[serde(flatten)]
    lease: LeaseView<'a>,
    returned_now: i64,
}

impl<'a> ReturnView<'a> {
    pub(super) fn new(lease: &'a LeaseRecord, returned_now: i64) -> Self {
        Self { lease: LeaseView::new(lease), returned_now }
    }
}

impl ApiSchema for ReturnView<'_> {
    const NAME: &'static str = "BudgetReturned";
    fn schema(_: &mut Components) -> Value {
        let mut properties = lease_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "returned_now".to_owned(),
                json!({ "type": "integer", "description": "What this call gave back: 0 when the lease was already closed." }),
            );
        }
        json!({ "type": "object", "required": ["id", "state", "returned", "returned_now"], "properties": properties })
    }
}

fn ttl(seconds: Option<u64>) -> Option<std::time::Duration> {
    seconds.map(std::time::Duration::from_secs)
}

async fn handshake(
    State(state): State<AppState>,
    caller: AgentCaller,
    Json(body): Json<HandshakeBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let granted = service
        .handshake(&caller.audited(), &body.provider, body.requested_microdollars, ttl(body.ttl_seconds))
        .await?;
    let mut response = axum::Json(HandshakeView::new(&granted)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn report(
    State(state): State<AppState>,
    caller: AgentCaller,
    PathId(lease): PathId<LeaseId>,
    Json(body): Json<ReportBody>,
) -> Result<Response, ApiError> {
    let input = LeaseReportInput {
        request_id: body.request_id,
        cost: body.cost_microdollars,
        input_tokens: body.input_tokens,
        output_tokens: body.output_tokens,
        model: body.model,
    };
    let audited = caller.audited();
    let record = agents(&state)?.report_lease(&audited, &lease, &input).await?;
    let receipt = super::receipts::sign(&state, || {
        let (agent_id, token_id) = match &audited.principal {
            tollgate::Principal::Agent { id, credential } => (Some(id.to_string()), credential.to_string()),
            _ => (Some(record.agent.to_string()), record.credential.to_string()),
        };
        tollgate::ReceiptContent {
            kind: tollgate::ReceiptKind::Report,
            token_id,
            agent_id,
            reference: Some(lease.to_string()),
            request_id: Some(input.request_id.clone()),
            provider: Some(record.provider.to_string()),
            model: Some(input.model.trim().to_owned()),
            input_tokens: input.input_tokens,
            output_tokens: input.output_tokens,
            cost: tollgate::Microdollars::from_micros(input.cost),
            at: state.tokens().clock().now().to_rfc3339(),
        }
    });
    Ok(axum::Json(ReportView { lease: LeaseView::new(&record), receipt }).into_response())
}

async fn refresh(
    State(state): State<AppState>,
    caller: AgentCaller,
    PathId(lease): PathId<LeaseId>,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let (record, available_after) =
        service.refresh_lease(&caller.audited(), &lease, body.requested_microdollars, ttl(body.ttl_seconds)).await?;
    Ok(axum::Json(RefreshView { lease: LeaseView::new(&record), available_after }).into_response())
}

async fn delegate(
    State(state): State<AppState>,
    caller: AgentCaller,
    PathId(lease): PathId<LeaseId>,
    Json(body): Json<DelegateBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let child = service
        .delegate_lease(&caller.audited(), &lease, &body.agent_id, body.requested_microdollars, ttl(body.ttl_seconds))
        .await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(LeaseView::new(&child))).into_response())
}

async fn give_back(
    State(state): State<AppState>,
    caller: AgentCaller,
    PathId(lease): PathId<LeaseId>,
) -> Result<Response, ApiError> {
    let (record, returned) = agents(&state)?.return_lease(&caller.audited(), &lease).await?;
    Ok(axum::Json(ReturnView::new(&record, returned)).into_response())
}

#[cfg(test)]
mod tests {
    use super::body::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn request_schemas_match_their_types() {
        check_request::<HandshakeBody>();
        check_request::<DelegateBody>();
        check_request::<RefreshBody>();
        check_request::<ReportBody>();
        check_request::<SetBudgetBody>();
        check_request::<CreateRequestBody>();
        check_request::<ReasonBody>();
    }
}

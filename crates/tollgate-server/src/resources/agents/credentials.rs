//! An agent's credentials (issued, listed, rotated and revoked by whoever manages the agent), and
//! the one route an agent calls with its own credential: the delivery of its provider key.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{AgentId, CreatedToken, DeliveredKey, TokenId};

use super::agents;
use super::body::{CreateCredentialBody, ListCredentialsQuery};
use crate::auth::{AgentCaller, Caller};
use crate::error::ApiError;
use crate::extract::{OptionalJson, PathId, PathIds, Query};
use crate::openapi::{ApiSchema, Components, id, nullable};
use crate::resources::tokens::{CreatedTokenView, RevokeBody, RotateBody, TokenPage, TokenView};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The agent id (agt_…)";
const CREDENTIAL_ID: &str = "The credential id (tok_…)";

pub(super) fn routes() -> Routes {
    let credential = |operation_id, summary| {
        Doc::new(operation_id, "agents", summary)
            .bearer()
            .path_param("id", ID)
            .path_param("credential_id", CREDENTIAL_ID)
    };
    Routes::new()
        .post(
            "/v1/agents/{id}/credentials",
            Doc::new("createAgentCredential", "agents", "Issue a credential for an agent (the secret is shown once)")
                .describe(
                    "The credential (`tga_…`) authenticates the agent on the agent routes only; every other route \
                     refuses it, and the agent routes refuse API tokens and JWTs. It expires (default 30 days).",
                )
                .bearer()
                .path_param("id", ID)
                .body::<CreateCredentialBody>()
                .response::<CreatedTokenView<'static>>(201, "Issued")
                .response_headers(&["Location", "Cache-Control"])
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            create,
        )
        .get(
            "/v1/agents/{id}/credentials",
            Doc::new("listAgentCredentials", "agents", "List an agent's credentials, newest first")
                .bearer()
                .path_param("id", ID)
                .query::<ListCredentialsQuery>()
                .response::<TokenPage<'static>>(200, "One page")
                .problems(&[400, 404, 503]),
            list,
        )
        .post(
            "/v1/agents/{id}/credentials/{credential_id}/revoke",
            credential("revokeAgentCredential", "Revoke a credential: refused on the very next request")
                .body::<RevokeBody>()
                .response::<TokenView<'static>>(200, "Revoked")
                .problems(&[400, 403, 404, 413, 415, 503]),
            revoke,
        )
        .post(
            "/v1/agents/{id}/credentials/{credential_id}/rotate",
            credential("rotateAgentCredential", "Issue a new secret for a credential; the old one works for the grace")
                .body::<RotateBody>()
                .response::<CreatedTokenView<'static>>(200, "Rotated: the new secret, shown once")
                .response_headers(&["Cache-Control"])
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            rotate,
        )
        .post(
            "/v1/agents/{id}/provider-key",
            Doc::new(
                "deliverProviderKey",
                "agents",
                "Fetch the provider key assigned to this agent (the agent itself)",
            )
            .describe(
                "Authenticated with the agent's own credential (`Authorization: Bearer tga_…`), for the agent \
                     in the path. Every delivery is audited (agent, key, credential, client address). 404 \
                     whenever there is no key to deliver — another agent's id, no key assigned, a disabled or \
                     deleted key — without telling which; 403 `agent_paused`/`agent_disabled`.",
            )
            .bearer()
            .path_param("id", ID)
            .response::<DeliveredKeyView<'static>>(200, "The key (never cache it)")
            .response_headers(&["Cache-Control"])
            .problems(&[403, 404, 503]),
            deliver,
        )
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn created_response(state: &AppState, agent: &AgentId, status: StatusCode, created: &CreatedToken) -> Response {
    let now = state.tokens().clock().now();
    let mut response = no_store((status, axum::Json(CreatedTokenView::new(created, now))).into_response());
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/agents/{agent}/credentials/{}", created.record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent): PathId<AgentId>,
    OptionalJson(body): OptionalJson<CreateCredentialBody>,
) -> Result<Response, ApiError> {
    let ttl = body.expires_in_seconds.map(std::time::Duration::from_secs);
    let created = agents(&state)?.create_credential(&caller.audited(), &agent, body.name, ttl).await?;
    Ok(created_response(&state, &agent, StatusCode::CREATED, &created))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent): PathId<AgentId>,
    Query(query): Query<ListCredentialsQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let (status, page) = query.into_parts(settings.default_page_size, settings.max_page_size)?;
    let page = agents(&state)?.credentials(&caller.principal, &agent, status, &page).await?;
    let now = state.tokens().clock().now();
    Ok(axum::Json(TokenPage::new(&page, now)).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathIds(agent, credential): PathIds<AgentId, TokenId>,
    OptionalJson(body): OptionalJson<RevokeBody>,
) -> Result<Response, ApiError> {
    let record =
        agents(&state)?.revoke_credential(&caller.audited(), &agent, &credential, body.reason.as_deref()).await?;
    let now = state.tokens().clock().now();
    Ok(axum::Json(TokenView::new(&record, now)).into_response())
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    PathIds(agent, credential): PathIds<AgentId, TokenId>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> Result<Response, ApiError> {
    let rotated = agents(&state)?.rotate_credential(&caller.audited(), &agent, &credential, body.grace()?).await?;
    Ok(created_response(&state, &agent, StatusCode::OK, &rotated))
}

async fn deliver(
    State(state): State<AppState>,
    caller: AgentCaller,
    PathId(agent): PathId<AgentId>,
) -> Result<Response, ApiError> {
    let delivered = agents(&state)?.deliver_provider_key(&caller.audited(), &agent).await?;
    Ok(no_store(axum::Json(DeliveredKeyView::new(&delivered)).into_response()))
}

/// A delivered provider key: the one response that carries a decrypted key.
#[derive(Serialize)]
pub(super) struct DeliveredKeyView<'a> {
    provider_key_id: tollgate::ProviderKeyId,
    provider: &'a str,
    base_url: Option<&'a str>,
    secret: &'a str,
}

impl<'a> DeliveredKeyView<'a> {
    fn new(delivered: &'a DeliveredKey) -> Self {
        Self {
            provider_key_id: delivered.provider_key_id,
            provider: delivered.provider.as_str(),
            base_url: delivered.base_url.as_ref().map(tollgate::BaseUrl::as_str),
            secret: delivered.secret.expose(),
        }
    }
}

impl ApiSchema for DeliveredKeyView<'_> {
    const NAME: &'static str = "DeliveredProviderKey";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["provider_key_id", "provider", "base_url", "secret"],
            "properties": {
                "provider_key_id": id("pk_", "Which key."),
                "provider": { "type": "string" },
                "base_url": nullable(json!({ "type": "string", "description": "The provider's API address, when the key names one." })),
                "secret": { "type": "string", "readOnly": true, "description": "The provider API key. Keep it in memory only." },
            }
        })
    }
}

//! `/v1/agents`: register, list, show, change, pause, resume, disable and delete AI agents, and
//! manage their credentials. Admins manage every agent; a user the agents it owns; viewers read
//! their own. A credential authenticates its agent only on the agent routes (`credentials.rs`).

mod body;
mod credentials;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate::{AgentId, AgentService, AgentStatus, NewAgent, ProviderList};

use self::body::{AgentPage, AgentStatusBody, AgentView, CreateAgentBody, ListAgentsQuery, PatchAgentBody};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, PathId, Query};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The agent id (agt_…)";

pub(super) fn routes() -> Routes {
    let agent = |operation_id, summary| {
        Doc::new(operation_id, "agents", summary)
            .bearer()
            .path_param("id", ID)
            .response::<AgentView<'static>>(200, "The agent")
    };
    let status = |operation_id, summary| {
        agent(operation_id, summary).body::<AgentStatusBody>().problems(&[400, 403, 404, 413, 415, 503])
    };
    Routes::new()
        .post(
            "/v1/agents",
            Doc::new("createAgent", "agents", "Register an agent")
                .describe(
                    "Non-admins register agents only for themselves. A project must be one the owner is a member \
                     of; a provider key one the caller owns (any, for an admin), enabled, of a provider the agent \
                     may use and of the agent's project when it is bound to one.",
                )
                .bearer()
                .body::<CreateAgentBody>()
                .response::<AgentView<'static>>(201, "Registered")
                .response_headers(&["Location"])
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            create,
        )
        .get(
            "/v1/agents",
            Doc::new("listAgents", "agents", "List agents, newest first (non-admins see their own)")
                .bearer()
                .query::<ListAgentsQuery>()
                .response::<AgentPage<'static>>(200, "One page")
                .problems(&[400, 403, 503]),
            list,
        )
        .get("/v1/agents/{id}", agent("getAgent", "Show an agent").problems(&[400, 404, 503]), show)
        .patch(
            "/v1/agents/{id}",
            agent("updateAgent", "Change an agent's name, providers, provider key, description or metadata")
                .body::<PatchAgentBody>()
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            update,
        )
        .delete(
            "/v1/agents/{id}",
            Doc::new("deleteAgent", "agents", "Delete an agent: its credentials are revoked at once")
                .bearer()
                .path_param("id", ID)
                .response_text(204, "Deleted", "text/plain")
                .problems(&[400, 403, 404, 503]),
            delete,
        )
        .post("/v1/agents/{id}/pause", status("pauseAgent", "Pause an agent: its credentials are refused"), pause)
        .post("/v1/agents/{id}/resume", status("resumeAgent", "Resume a paused agent"), resume)
        .post(
            "/v1/agents/{id}/disable",
            status("disableAgent", "Disable an agent (only an admin can resume it)"),
            disable,
        )
        .merge(credentials::routes())
}

/// The agent service, or 503 when the server runs without a vault.
pub(crate) fn agents(state: &AppState) -> Result<&AgentService, ApiError> {
    state.agents().ok_or_else(ApiError::agents_not_configured)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateAgentBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let tokens = state.tokens();
    let own = caller.principal.owner_id().ok_or_else(|| ApiError::invalid_field("owner", "is required"))?;
    let providers = ProviderList::parse(body.providers.as_deref().unwrap_or_default())?;
    let owner = match &body.owner {
        Some(owner) => tokens.resolve_owner(&caller.principal, owner).await?,
        None => own,
    };
    let project = match &body.project {
        Some(project) => Some(tokens.resolve_project(&caller.principal, project).await?),
        None => None,
    };
    let agent = NewAgent {
        name: body.name,
        owner,
        project,
        providers,
        provider_key: body.provider_key_id,
        description: body.description.unwrap_or_default(),
        metadata: body.metadata.unwrap_or_default(),
    };
    let record = service.create_agent(&caller.audited(), agent).await?;
    let mut response = (StatusCode::CREATED, axum::Json(AgentView(&record))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/agents/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListAgentsQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let (filter, page) = query.into_parts(settings.default_page_size, settings.max_page_size)?;
    let page = agents(&state)?.list_agents(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(AgentPage::new(&page)).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
) -> Result<Response, ApiError> {
    let record = agents(&state)?.agent(&caller.principal, &id).await?;
    Ok(axum::Json(AgentView(&record)).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    Json(body): Json<PatchAgentBody>,
) -> Result<Response, ApiError> {
    let patch = body.into_patch()?;
    let record = agents(&state)?.update_agent(&caller.audited(), &id, &patch).await?;
    Ok(axum::Json(AgentView(&record)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
) -> Result<Response, ApiError> {
    agents(&state)?.delete_agent(&caller.audited(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn change_status(
    state: &AppState,
    caller: &Caller,
    id: &AgentId,
    status: AgentStatus,
    body: &AgentStatusBody,
) -> Result<Response, ApiError> {
    let record = agents(state)?.set_agent_status(&caller.audited(), id, status, body.reason.as_deref()).await?;
    Ok(axum::Json(AgentView(&record)).into_response())
}

async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    OptionalJson(body): OptionalJson<AgentStatusBody>,
) -> Result<Response, ApiError> {
    change_status(&state, &caller, &id, AgentStatus::Paused, &body).await
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    OptionalJson(body): OptionalJson<AgentStatusBody>,
) -> Result<Response, ApiError> {
    change_status(&state, &caller, &id, AgentStatus::Active, &body).await
}

async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AgentId>,
    OptionalJson(body): OptionalJson<AgentStatusBody>,
) -> Result<Response, ApiError> {
    change_status(&state, &caller, &id, AgentStatus::Disabled, &body).await
}

#[cfg(test)]
mod tests {
    use super::body::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CreateAgentBody>();
        check_request::<PatchAgentBody>();
        check_request::<AgentStatusBody>();
        check_request::<ListAgentsQuery>();
        check_request::<CreateCredentialBody>();
        check_request::<ListCredentialsQuery>();
        let at = tollgate::Timestamp::from_unix_micros(0);
        let record = tollgate::AgentRecord {
            id: tollgate::AgentId::generate(),
            name: tollgate::AgentName::parse("triage").unwrap(),
            owner: tollgate::OwnerId::User(tollgate::UserId::generate()),
            owner_name: tollgate::OwnerName::parse("alice").unwrap(),
            project: Some(tollgate::ProjectId::generate()),
            providers: tollgate::ProviderList::parse(&["openai"]).unwrap(),
            provider_key: Some(tollgate::ProviderKeyId::generate()),
            status: tollgate::AgentStatus::Paused,
            description: tollgate::Description::parse("").unwrap(),
            metadata: tollgate::Metadata::parse(serde_json::json!({"team": "search"})).unwrap(),
            created_at: at,
            updated_at: at,
        };
        check_response(&AgentView(&record));
    }
}

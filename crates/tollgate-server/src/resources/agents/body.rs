//! Request and response bodies of `/v1/agents`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    AgentName, AgentPatch, AgentRecord, AgentStatus, Description, Metadata, OwnerId, Page, PageRequest, ProjectId,
    ProviderKeyId, ProviderList,
};

use super::super::tokens::present;
use super::super::users::{page_request, paging_properties};
use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components, id, notes, nullable, owner_reference, text, timestamp};

fn providers_schema() -> Value {
    json!({
        "type": "array", "maxItems": 32,
        "items": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,64}$" },
        "description": "Providers it may use (e.g. openai, anthropic); empty: any.",
    })
}

fn metadata_schema() -> Value {
    json!({ "type": "object", "description": "Free-form JSON object, at most 4096 bytes." })
}

/// `POST /v1/agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAgentBody {
    pub(super) name: AgentName,
    #[serde(default)]
    pub(super) owner: Option<String>,
    #[serde(default)]
    pub(super) project: Option<String>,
    #[serde(default)]
    pub(super) providers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) provider_key_id: Option<ProviderKeyId>,
    #[serde(default)]
    pub(super) description: Option<Description>,
    #[serde(default)]
    pub(super) metadata: Option<Metadata>,
}

impl ApiSchema for CreateAgentBody {
    const NAME: &'static str = "CreateAgent";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": text(128, ""),
                "owner": owner_reference("A user or service account, by id or name (default: the caller). Non-admins may name only themselves."),
                "project": text(128, "A project, by id or name, that the owner is a member of."),
                "providers": providers_schema(),
                "provider_key_id": id("pk_", "A provider key the caller owns (or any, for an admin) to give it."),
                "description": notes(1024, ""),
                "metadata": metadata_schema(),
            }
        })
    }
}

/// `PATCH /v1/agents/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchAgentBody {
    #[serde(default)]
    name: Option<AgentName>,
    #[serde(default)]
    providers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    provider_key_id: Option<Option<ProviderKeyId>>,
    #[serde(default)]
    description: Option<Description>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

impl PatchAgentBody {
    pub(super) fn into_patch(self) -> Result<AgentPatch, ApiError> {
        Ok(AgentPatch {
            name: self.name,
            providers: self.providers.as_deref().map(ProviderList::parse).transpose()?,
            provider_key: self.provider_key_id,
            description: self.description,
            metadata: self.metadata,
        })
    }
}

impl ApiSchema for PatchAgentBody {
    const NAME: &'static str = "PatchAgent";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "properties": {
                "name": text(128, ""),
                "providers": providers_schema(),
                "provider_key_id": nullable(id("pk_", "Another provider key, or null for none.")),
                "description": notes(1024, ""),
                "metadata": metadata_schema(),
            }
        })
    }
}

/// `POST /v1/agents/{id}/pause|resume|disable`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentStatusBody {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

impl ApiSchema for AgentStatusBody {
    const NAME: &'static str = "ChangeAgentStatus";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": notes(1024, "Recorded in the audit log.") }
        })
    }
}

/// `GET /v1/agents` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListAgentsQuery {
    #[serde(default)]
    owner: Option<OwnerId>,
    #[serde(default)]
    project: Option<ProjectId>,
    #[serde(default)]
    status: Option<AgentStatus>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListAgentsQuery {
    pub(super) fn into_parts(
        self,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<(tollgate::AgentFilter, PageRequest), ApiError> {
        let filter = tollgate::AgentFilter { owner: self.owner, project: self.project, status: self.status };
        Ok((filter, page_request(self.limit, self.cursor, default_limit, max_limit)?))
    }
}

impl ApiSchema for ListAgentsQuery {
    const NAME: &'static str = "ListAgentsQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "owner".to_owned(),
                id("(usr|svc)_", "Only this owner's (usr_… or svc_…); non-admins see only their own."),
            );
            map.insert("project".to_owned(), id("prj_", "Only agents of this project."));
            map.insert("status".to_owned(), json!({ "type": "string", "enum": ["active", "paused", "disabled"] }));
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

/// An agent as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct AgentView<'a>(pub(crate) &'a AgentRecord);

impl ApiSchema for AgentView<'_> {
    const NAME: &'static str = "Agent";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "name", "owner", "owner_name", "project", "providers", "provider_key", "status",
                         "description", "metadata", "created_at", "updated_at"],
            "properties": {
                "id": id("agt_", "Public id."),
                "name": { "type": "string" },
                "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$" },
                "owner_name": { "type": "string", "description": "The owner's name (display only)." },
                "project": nullable(id("prj_", "The project it works for.")),
                "providers": providers_schema(),
                "provider_key": nullable(id("pk_", "The provider key assigned to it.")),
                "status": { "type": "string", "enum": ["active", "paused", "disabled"], "description": "Its credentials work only while active." },
                "description": { "type": "string" },
                "metadata": metadata_schema(),
                "created_at": timestamp("Registration time."),
                "updated_at": timestamp("Last change."),
            }
        })
    }
}

/// A page of agents, newest first.
#[derive(Debug, Serialize)]
pub(super) struct AgentPage<'a> {
    items: Vec<AgentView<'a>>,
    next_cursor: Option<&'a str>,
}

impl<'a> AgentPage<'a> {
    pub(super) fn new(page: &'a Page<AgentRecord>) -> Self {
        Self { items: page.items.iter().map(AgentView).collect(), next_cursor: page.next_cursor.as_deref() }
    }
}

impl ApiSchema for AgentPage<'_> {
    const NAME: &'static str = "AgentPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<AgentView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page." },
            }
        })
    }
}

/// `POST /v1/agents/{id}/credentials`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCredentialBody {
    #[serde(default)]
    pub(super) name: Option<tollgate::TokenName>,
    #[serde(default)]
    pub(super) expires_in_seconds: Option<u64>,
}

impl ApiSchema for CreateCredentialBody {
    const NAME: &'static str = "CreateAgentCredential";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": text(128, ""),
                "expires_in_seconds": { "type": "integer", "minimum": 1, "description": "Lifetime (default 30 days, at most the server's maximum, 90 days by default)." },
            }
        })
    }
}

/// `GET /v1/agents/{id}/credentials` query: status and paging as for tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListCredentialsQuery {
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListCredentialsQuery {
    pub(super) fn into_parts(
        self,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<(tollgate::StatusFilter, PageRequest), ApiError> {
        let status = match self.status.as_deref() {
            None | Some("active") => tollgate::StatusFilter::Active,
            Some("revoked") => tollgate::StatusFilter::Revoked,
            Some("expired") => tollgate::StatusFilter::Expired,
            Some("all") => tollgate::StatusFilter::All,
            Some(_) => return Err(ApiError::invalid_field("status", "must be one of active, revoked, expired, all")),
        };
        Ok((status, page_request(self.limit, self.cursor, default_limit, max_limit)?))
    }
}

impl ApiSchema for ListCredentialsQuery {
    const NAME: &'static str = "ListAgentCredentialsQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "status".to_owned(),
                json!({ "type": "string", "enum": ["active", "revoked", "expired", "all"] }),
            );
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

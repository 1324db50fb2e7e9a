//! `/v1/provider-keys`: provider API keys in the vault. The secret goes in once (or again, to
//! replace it) and never comes back out here: lists and reads show it masked. Only the agent it is
//! assigned to receives it (`POST /v1/agents/{id}/provider-key`).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    BaseUrl, Description, Metadata, Microdollars, NewProviderKey, OwnerId, Page, ProjectId, ProviderKeyFilter,
    ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord, ProviderName, ProviderSecret,
};

use super::agents::agents;
use super::tokens::present;
use super::users::{page_request, paging_properties};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId, Query};
use crate::openapi::{
    ApiSchema, Components, base_url, id, identifier, notes, nullable, owner_reference, text, timestamp,
};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The provider key id (pk_…)";

pub(super) fn routes() -> Routes {
    let key = |operation_id, summary| {
        Doc::new(operation_id, "provider keys", summary)
            .bearer()
            .path_param("id", ID)
            .response::<ProviderKeyView<'static>>(200, "The key, masked")
    };
    Routes::new()
        .post(
            "/v1/provider-keys",
            Doc::new("createProviderKey", "provider keys", "Store a provider API key in the vault")
                .describe(
                    "Always a new key: it never replaces another. The secret is sealed with AES-256-GCM under a \
                     fresh data key wrapped by the vault master key; only its masked form is shown after.",
                )
                .bearer()
                .body::<CreateProviderKeyBody>()
                .response::<ProviderKeyView<'static>>(201, "Stored")
                .response_headers(&["Location"])
                .problems(&[400, 403, 404, 413, 415, 503]),
            create,
        )
        .get(
            "/v1/provider-keys",
            Doc::new("listProviderKeys", "provider keys", "List provider keys, masked (non-admins see their own)")
                .bearer()
                .query::<ListProviderKeysQuery>()
                .response::<ProviderKeyPage<'static>>(200, "One page")
                .problems(&[400, 403, 503]),
            list,
        )
        .get(
            "/v1/provider-keys/{id}",
            key("getProviderKey", "Show a provider key, masked").problems(&[400, 404, 503]),
            show,
        )
        .patch(
            "/v1/provider-keys/{id}",
            key("updateProviderKey", "Change, disable or re-key a provider key")
                .describe(
                    "`enabled: false` stops its delivery at once; `secret` replaces the key (after a leak: rotate \
                     it at the provider first); `project` re-binds it, and agents outside the new project lose it.",
                )
                .body::<PatchProviderKeyBody>()
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            update,
        )
        .delete(
            "/v1/provider-keys/{id}",
            Doc::new("deleteProviderKey", "provider keys", "Delete a provider key: its ciphertext is erased")
                .bearer()
                .path_param("id", ID)
                .response_text(204, "Deleted; every agent that had it lost it", "text/plain")
                .problems(&[400, 403, 404, 503]),
            delete,
        )
}

/// `POST /v1/provider-keys`. No `Debug`: it holds the secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProviderKeyBody {
    provider: ProviderName,
    secret: String,
    #[serde(default)]
    base_url: Option<BaseUrl>,
    #[serde(default)]
    description: Option<Description>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    balance_micros: Option<i64>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

fn balance(micros: Option<i64>) -> Result<Option<Microdollars>, ApiError> {
    match micros {
        Some(micros) if micros < 0 => Err(ApiError::invalid_field("balance_micros", "must not be negative")),
        other => Ok(other.map(Microdollars::from_micros)),
    }
}

impl ApiSchema for CreateProviderKeyBody {
    const NAME: &'static str = "CreateProviderKey";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["provider", "secret"],
            "properties": {
                "provider": { "type": "string", "pattern": "^[a-z0-9._:/-]{1,64}$", "description": "openai, anthropic, google, azure-openai, or your own name (then `base_url` is required)." },
                "secret": { "type": "string", "pattern": "^[!-~]{8,4096}$", "writeOnly": true, "description": "The provider API key. Never shown again." },
                "base_url": base_url("https:// address of the provider's API (no credentials, query or fragment)."),
                "description": notes(1024, ""),
                "owner": owner_reference("A user or service account, by id or name (default: the caller)."),
                "project": text(128, "Bind it to a project (by id or name) the caller is a member of: only that project's agents may be given it."),
                "balance_micros": { "type": "integer", "minimum": 0, "description": "What is left on the provider account, in microdollars." },
                "metadata": { "type": "object", "description": "Free-form JSON object, at most 4096 bytes." },
            }
        })
    }
}

/// `PATCH /v1/provider-keys/{id}`. No `Debug`: it may hold a new secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchProviderKeyBody {
    #[serde(default)]
    description: Option<Description>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    balance_micros: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    base_url: Option<Option<BaseUrl>>,
    #[serde(default, deserialize_with = "present")]
    project: Option<Option<String>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    secret: Option<String>,
}

impl ApiSchema for PatchProviderKeyBody {
    const NAME: &'static str = "PatchProviderKey";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "properties": {
                "description": notes(1024, ""),
                "enabled": { "type": "boolean", "description": "false: no agent receives it until enabled again." },
                "balance_micros": { "type": ["integer", "null"], "minimum": 0 },
                "base_url": nullable(base_url("A new address, or null for the provider's default.")),
                "project": nullable(text(128, "Another project (id or name), or null for none.")),
                "metadata": { "type": "object" },
                "secret": { "type": "string", "pattern": "^[!-~]{8,4096}$", "writeOnly": true, "description": "A new secret for the same key id." },
            }
        })
    }
}

/// `GET /v1/provider-keys` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListProviderKeysQuery {
    #[serde(default)]
    owner: Option<OwnerId>,
    #[serde(default)]
    provider: Option<ProviderName>,
    #[serde(default)]
    project: Option<ProjectId>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for ListProviderKeysQuery {
    const NAME: &'static str = "ListProviderKeysQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = paging_properties();
        if let Some(map) = properties.as_object_mut() {
            map.insert("owner".to_owned(), id("(usr|svc)_", "Only this owner's; non-admins see only their own."));
            map.insert("provider".to_owned(), identifier(64, "Only keys of this provider."));
            map.insert("project".to_owned(), id("prj_", "Only keys bound to this project."));
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

/// A provider key as the API shows it: masked, never decrypted.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ProviderKeyView<'a>(&'a ProviderKeyRecord);

impl ApiSchema for ProviderKeyView<'_> {
    const NAME: &'static str = "ProviderKey";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "provider", "base_url", "description", "owner", "owner_name", "project", "enabled",
                         "balance_micros", "metadata", "masked", "master_key_id", "created_at", "updated_at"],
            "properties": {
                "id": id("pk_", "Public id."),
                "provider": { "type": "string" },
                "base_url": { "type": ["string", "null"] },
                "description": { "type": "string" },
                "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$" },
                "owner_name": { "type": "string" },
                "project": nullable(id("prj_", "The project it is bound to.")),
                "enabled": { "type": "boolean" },
                "balance_micros": { "type": ["integer", "null"] },
                "metadata": { "type": "object" },
                "masked": { "type": "string", "description": "The secret, masked: e.g. sk-…abcd." },
                "master_key_id": { "type": "integer", "description": "The vault master key that wraps its data key." },
                "created_at": timestamp("When it was stored."),
                "updated_at": timestamp("Last change."),
            }
        })
    }
}

/// A page of provider keys.
#[derive(Debug, Serialize)]
struct ProviderKeyPage<'a> {
    items: Vec<ProviderKeyView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for ProviderKeyPage<'_> {
    const NAME: &'static str = "ProviderKeyPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<ProviderKeyView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateProviderKeyBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let secret = ProviderSecret::parse(&body.secret)?;
    let tokens = state.tokens();
    let owner = match &body.owner {
        Some(owner) => tokens.resolve_owner(&caller.principal, owner).await?,
        None => caller.principal.owner_id().ok_or_else(|| ApiError::invalid_field("owner", "is required"))?,
    };
    let project = match &body.project {
        Some(project) => Some(tokens.resolve_project(&caller.principal, project).await?),
        None => None,
    };
    let key = NewProviderKey {
        provider: body.provider,
        base_url: body.base_url,
        description: body.description.unwrap_or_default(),
        owner,
        project,
        balance: balance(body.balance_micros)?,
        metadata: body.metadata.unwrap_or_default(),
    };
    let record = service.create_provider_key(&caller.audited(), key, secret).await?;
    let mut response = (StatusCode::CREATED, axum::Json(ProviderKeyView(&record))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/provider-keys/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListProviderKeysQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let filter = ProviderKeyFilter { owner: query.owner, provider: query.provider, project: query.project };
    let page: Page<ProviderKeyRecord> = agents(&state)?.list_provider_keys(&caller.principal, &filter, &page).await?;
    let view = ProviderKeyPage {
        items: page.items.iter().map(ProviderKeyView).collect(),
        next_cursor: page.next_cursor.as_deref(),
    };
    Ok(axum::Json(view).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProviderKeyId>,
) -> Result<Response, ApiError> {
    let record = agents(&state)?.provider_key(&caller.principal, &id).await?;
    Ok(axum::Json(ProviderKeyView(&record)).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProviderKeyId>,
    Json(body): Json<PatchProviderKeyBody>,
) -> Result<Response, ApiError> {
    let service = agents(&state)?;
    let secret = body.secret.as_deref().map(ProviderSecret::parse).transpose()?;
    let project = match body.project {
        Some(Some(project)) => Some(Some(state.tokens().resolve_project(&caller.principal, &project).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = ProviderKeyPatch {
        description: body.description,
        enabled: body.enabled,
        balance: body.balance_micros.map(balance).transpose()?,
        base_url: body.base_url,
        project,
        metadata: body.metadata,
    };
    let record = service.update_provider_key(&caller.audited(), &id, &patch, secret).await?;
    Ok(axum::Json(ProviderKeyView(&record)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProviderKeyId>,
) -> Result<Response, ApiError> {
    agents(&state)?.delete_provider_key(&caller.audited(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CreateProviderKeyBody>();
        check_request::<PatchProviderKeyBody>();
        check_request::<ListProviderKeysQuery>();
        let at = tollgate::Timestamp::from_unix_micros(0);
        let record = ProviderKeyRecord {
            id: ProviderKeyId::generate(),
            provider: ProviderName::parse("openai").unwrap(),
            base_url: None,
            description: Description::parse("").unwrap(),
            owner: OwnerId::User(tollgate::UserId::generate()),
            owner_name: tollgate::OwnerName::parse("alice").unwrap(),
            project: None,
            enabled: true,
            balance: Some(Microdollars::from_micros(5)),
            metadata: Metadata::default(),
            masked: "sk-…abcd".to_owned(),
            master_key_id: 1,
            created_at: at,
            updated_at: at,
        };
        check_response(&ProviderKeyView(&record));
    }
}

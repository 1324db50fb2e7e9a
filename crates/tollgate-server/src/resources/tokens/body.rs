//! Request bodies and query strings of `/v1/tokens`, parsed into the facade's types.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tollgate::{
    Description, Imposed, IpAllowList, NewToken, OwnerId, PageRequest, Permission, ProjectId, Scope, StatusFilter,
    Timestamp, TokenFilter, TokenName, TokenPatch, ToolList,
};

use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components, cidr, cursor, id_key, notes, nullable, owner_reference, text, timestamp};

/// A hundred years: longer lifetimes are typos.
const MAX_LIFETIME_SECONDS: u64 = 100 * 366 * 86_400;
/// The longest grace period of a rotation (a year).
const MAX_GRACE_SECONDS: u64 = 366 * 86_400;
/// At most this many scopes on one token.
const MAX_SCOPES: usize = 64;

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenBody {
    name: TokenName,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    permission: Option<Permission>,
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
    #[serde(default)]
    allowed_tools: Option<ToolList>,
    #[serde(default)]
    ip_allow: Option<IpAllowList>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    expires_in_seconds: Option<Option<u64>>,
    #[serde(default)]
    description: Option<Description>,
}

/// The longest owner or project reference: a name (a username is at most 64 characters, a project
/// name 128) or an id.
const MAX_REFERENCE: usize = 128;

fn reference<'a>(field: &'static str, text: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match text {
        Some(text) if text.is_empty() || text.chars().count() > MAX_REFERENCE => {
            Err(ApiError::invalid_field(field, format!("must be 1 to {MAX_REFERENCE} characters")))
        }
        other => Ok(other),
    }
}

impl CreateTokenBody {
    /// The owner named (an id or a name), `None` for the caller itself.
    pub(super) fn owner(&self) -> Result<Option<&str>, ApiError> {
        reference("owner", self.owner.as_deref())
    }

    /// The project named (an id or a name), if any.
    pub(super) fn project(&self) -> Result<Option<&str>, ApiError> {
        reference("project", self.project.as_deref())
    }

    /// The validated request for `owner` in `project`, with relative expiry resolved against `now`.
    pub(super) fn into_new_token(
        self,
        owner: OwnerId,
        project: Option<ProjectId>,
        now: Timestamp,
    ) -> Result<NewToken, ApiError> {
        let mut token = NewToken::new(self.name, owner);
        token.project = project;
        token.permission = self.permission.unwrap_or(Permission::Standard);
        let mut scopes = self.scopes.unwrap_or_default();
        if scopes.len() > MAX_SCOPES {
            return Err(ApiError::invalid_field("scopes", format!("must have at most {MAX_SCOPES} entries")));
        }
        scopes.sort();
        scopes.dedup();
        token.scopes = scopes;
        token.allowed_tools = self.allowed_tools.unwrap_or_default();
        token.ip_allow = self.ip_allow.unwrap_or_default();
        token.expires_at = expiry(self.expires_at, self.expires_in_seconds, now)?.flatten();
        token.description = self.description.unwrap_or_default();
        Ok(token)
    }
}

/// Resolves `expires_at` / `expires_in_seconds` (at most one of them) to an absolute expiry.
/// `None`: neither given. `Some(None)`: explicitly never (PATCH with `expires_at: null`).
/// Both are judged by presence: `expires_at: null` beside `expires_in_seconds` is refused too, as the
/// schema says (`not: {required: [expires_at, expires_in_seconds]}`).
fn expiry(
    at: Option<Option<Timestamp>>,
    in_seconds: Option<Option<u64>>,
    now: Timestamp,
) -> Result<Option<Option<Timestamp>>, ApiError> {
    match (at, in_seconds.map(|seconds| seconds.unwrap_or(0))) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid_field("expires_in_seconds", "give either expires_at or expires_in_seconds, not both"))
        }
        (Some(at), None) => {
            if at.is_some_and(|at| at <= now) {
                return Err(ApiError::invalid_field("expires_at", "must be in the future"));
            }
            Ok(Some(at))
        }
        (None, Some(seconds)) => {
            if !(1..=MAX_LIFETIME_SECONDS).contains(&seconds) {
                return Err(ApiError::invalid_field(
                    "expires_in_seconds",
                    format!("must be between 1 and {MAX_LIFETIME_SECONDS}"),
                ));
            }
            Ok(Some(Some(now.saturating_add(Duration::from_secs(seconds)))))
        }
        (None, None) => Ok(None),
    }
}

impl ApiSchema for CreateTokenBody {
    const NAME: &'static str = "CreateToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "not": { "required": ["expires_at", "expires_in_seconds"] },
            "required": ["name"],
            "properties": {
                "name": text(128, ""),
                "owner": owner_reference(
                    "A user or service account, by id (usr_…, svc_…) or name; default: the caller. Non-admins may name only themselves.",
                ),
                "project": text(MAX_REFERENCE, "A project by id (prj_…) or name; the owner must be a member of it."),
                "permission": { "type": "string", "enum": ["read_only", "standard", "admin"], "default": "standard" },
                "scopes": scopes(),
                "allowed_tools": tools(),
                "ip_allow": ip_allow(),
                "expires_at": nullable(timestamp("Absolute expiry (exclusive with expires_in_seconds); null: never.")),
                "expires_in_seconds": lifetime(),
                "description": notes(1024, ""),
            }
        })
    }
}

fn scopes() -> Value {
    json!({
        "type": "array", "maxItems": MAX_SCOPES,
        "items": { "type": "string", "pattern": "^[a-z0-9:_./-]{1,64}$" },
        "examples": [["tokens:verify"]],
    })
}

fn tools() -> Value {
    json!({
        "type": "array", "maxItems": 256, "description": "Tools the token may call; empty or absent: any.",
        "items": { "type": "string", "pattern": "^[a-z0-9:_./-]{1,128}$" },
    })
}

fn ip_allow() -> Value {
    json!({
        "type": "array", "maxItems": 256, "description": "CIDR ranges or addresses; empty or absent: anywhere.",
        "items": cidr(),
    })
}

fn lifetime() -> Value {
    json!({
        "type": "integer", "minimum": 1, "maximum": MAX_LIFETIME_SECONDS,
        "description": "Relative expiry (exclusive with expires_at).",
    })
}

/// `PATCH /v1/tokens/{id}`. Absent fields stay; `expires_at: null` removes the expiry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTokenBody {
    #[serde(default)]
    name: Option<TokenName>,
    #[serde(default)]
    description: Option<Description>,
    #[serde(default)]
    allowed_tools: Option<ToolList>,
    #[serde(default)]
    ip_allow: Option<IpAllowList>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    expires_in_seconds: Option<Option<u64>>,
}

/// Tells `"field": null` (`Some(None)`) from an absent field (`None`).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl PatchTokenBody {
    pub(crate) fn into_patch(self, now: Timestamp) -> Result<TokenPatch, ApiError> {
        let patch = TokenPatch {
            name: self.name,
            description: self.description,
            allowed_tools: self.allowed_tools,
            ip_allow: self.ip_allow,
            expires_at: expiry(self.expires_at, self.expires_in_seconds, now)?,
            impose: Imposed::NONE,
        };
        if patch.is_empty() {
            return Err(ApiError::invalid_field("body", "names no field to change"));
        }
        Ok(patch)
    }
}

impl ApiSchema for PatchTokenBody {
    const NAME: &'static str = "UpdateToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "not": { "required": ["expires_at", "expires_in_seconds"] },
            "minProperties": 1,
            "properties": {
                "name": text(128, ""),
                "description": notes(1024, ""),
                "allowed_tools": tools(),
                "ip_allow": ip_allow(),
                "expires_at": nullable(timestamp("New expiry; null: never expires.")),
                "expires_in_seconds": lifetime(),
            }
        })
    }
}

/// `POST /v1/tokens/{id}/revoke` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

impl ApiSchema for RevokeBody {
    const NAME: &'static str = "RevokeToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": notes(1024, "Recorded in the audit log.") }
        })
    }
}

/// `POST /v1/tokens/{id}/rotate` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateBody {
    #[serde(default)]
    grace_seconds: Option<u64>,
}

impl RotateBody {
    pub(crate) fn grace(&self) -> Result<Duration, ApiError> {
        let seconds = self.grace_seconds.unwrap_or(0);
        if seconds > MAX_GRACE_SECONDS {
            return Err(ApiError::invalid_field("grace_seconds", format!("must be at most {MAX_GRACE_SECONDS}")));
        }
        Ok(Duration::from_secs(seconds))
    }
}

impl ApiSchema for RotateBody {
    const NAME: &'static str = "RotateToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "grace_seconds": {
                    "type": "integer", "minimum": 0, "maximum": MAX_GRACE_SECONDS, "default": 0,
                    "description": "How long the old secret keeps working.",
                }
            }
        })
    }
}

/// Which tokens a list shows.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusParam {
    Active,
    Revoked,
    Expired,
    All,
}

/// `GET /v1/tokens?owner=&project=&status=&limit=&cursor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListTokensQuery {
    #[serde(default)]
    owner: Option<OwnerId>,
    #[serde(default)]
    project: Option<ProjectId>,
    #[serde(default)]
    status: Option<StatusParam>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListTokensQuery {
    pub(crate) fn into_parts(self, default_limit: u32, max_limit: u32) -> Result<(TokenFilter, PageRequest), ApiError> {
        let limit = self.limit.unwrap_or(default_limit);
        if !(1..=max_limit).contains(&limit) {
            return Err(ApiError::invalid_field("limit", format!("must be between 1 and {max_limit}")));
        }
        if self.cursor.as_ref().is_some_and(|cursor| cursor.is_empty() || cursor.len() > 256) {
            return Err(ApiError::invalid_field("cursor", "not a cursor from a previous page"));
        }
        let filter = TokenFilter {
            owner: self.owner,
            project: self.project,
            status: match self.status.unwrap_or(StatusParam::Active) {
                StatusParam::Active => StatusFilter::Active,
                StatusParam::Revoked => StatusFilter::Revoked,
                StatusParam::Expired => StatusFilter::Expired,
                StatusParam::All => StatusFilter::All,
            },
            agent: None,
        };
        let page = match self.cursor {
            Some(cursor) => PageRequest::after(limit, cursor),
            None => PageRequest::first(limit),
        };
        Ok((filter, page))
    }
}

impl ApiSchema for ListTokensQuery {
    const NAME: &'static str = "ListTokensQuery";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "owner": {
                    "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$",
                    "description": "Only this owner's tokens (non-admins see only their own).",
                },
                "project": { "type": "string", "pattern": "^prj_[0-9a-f]{32}$", "description": "Only this project's tokens." },
                "status": {
                    "type": "string", "enum": ["active", "revoked", "expired", "all"], "default": "active",
                    "description": "Which tokens by status.",
                },
                "limit": {
                    "type": "integer", "minimum": 1, "maximum": PageRequest::MAX_LIMIT,
                    "default": PageRequest::DEFAULT_LIMIT, "description": "Page size.",
                },
                "cursor": cursor(&id_key("tok_")),
            }
        })
    }
}

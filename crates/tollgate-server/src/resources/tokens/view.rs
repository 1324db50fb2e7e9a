//! Response bodies of `/v1/tokens`: a token's metadata with its status, a page of them, and a
//! freshly issued secret (shown once).

use serde::Serialize;
use serde_json::{Map, Value, json};
use tollgate::{CreatedToken, Page, Permission, Timestamp, TokenRecord, TokenStatus};

use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};

/// A token's metadata (never its secret or hash), its status and what it may do now.
#[derive(Debug, Serialize)]
pub(crate) struct TokenView<'a> {
    #[serde(flatten)]
    record: &'a TokenRecord,
    status: TokenStatus,
    effective_permission: Permission,
}

impl<'a> TokenView<'a> {
    pub(crate) fn new(record: &'a TokenRecord, now: Timestamp) -> Self {
        Self { record, status: record.status(now), effective_permission: record.effective_permission() }
    }
}

/// The properties of a token, shared by the token schemas.
fn token_properties() -> Map<String, Value> {
    let text = |description: &str| json!({ "type": "string", "description": description });
    let optional_time = |description: &str| nullable(timestamp(description));
    let properties = json!({
        "id": id("tok_", "Public id, stable across rotation."),
        "name": text("Human name."),
        "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "The owner: a user or a service account." },
        "owner_name": text("The owner's name (display only)."),
        "owner_role": { "type": ["string", "null"], "enum": ["admin", "user", "viewer", null], "description": "The owning user's current role; null for a service account." },
        "project": nullable(id("prj_", "The project it is bound to.")),
        "project_name": { "type": ["string", "null"], "description": "The project's name (display only)." },
        "permission": { "type": "string", "enum": ["read_only", "standard", "admin"], "description": "The level it was issued with." },
        "effective_permission": { "type": "string", "enum": ["read_only", "standard", "admin"], "description": "What it may do now: the lower of `permission` and the owner's current role." },
        "imposed": { "type": "array", "items": { "type": "string", "enum": ["ip_allow", "allowed_tools", "scopes", "expires_at"] }, "description": "Constraints an admin set; its owner can only tighten them." },
        "scopes": { "type": "array", "items": { "type": "string" } },
        "allowed_tools": { "type": "array", "items": { "type": "string" }, "description": "Empty: any tool." },
        "ip_allow": { "type": "array", "items": { "type": "string" }, "description": "Empty: anywhere." },
        "expires_at": optional_time("Expiry; null: never."),
        "description": { "type": "string" },
        "display_hint": text("Non-secret hint of the current secret, e.g. tg_AbCd…wxyz."),
        "created_at": timestamp("Creation time."),
        "updated_at": timestamp("Last change of metadata or secret."),
        "last_used_at": optional_time("Last successful verify (written in batches, seconds late)."),
        "revoked_at": optional_time("When it was revoked."),
        "revoke_reason": { "type": ["string", "null"] },
        "rotated_at": optional_time("When the secret was last rotated."),
        "previous_valid_until": optional_time("Until when the secret before the last rotation works."),
        "status": { "type": "string", "enum": ["active", "revoked", "expired"] },
        "agent": {
            "type": "object",
            "description": "Agent credentials only: the agent it authenticates and that agent's status now.",
            "required": ["id", "status"],
            "properties": {
                "id": id("agt_", "The agent."),
                "status": { "type": "string", "enum": ["active", "paused", "disabled"] },
            },
        },
    });
    match properties {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

const TOKEN_REQUIRED: [&str; 21] = [
    "id",
    "name",
    "owner",
    "owner_name",
    "owner_role",
    "project",
    "project_name",
    "permission",
    "effective_permission",
    "imposed",
    "scopes",
    "allowed_tools",
    "ip_allow",
    "expires_at",
    "description",
    "display_hint",
    "created_at",
    "updated_at",
    "last_used_at",
    "revoked_at",
    "status",
];

impl ApiSchema for TokenView<'_> {
    const NAME: &'static str = "Token";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "required": TOKEN_REQUIRED, "properties": token_properties() })
    }
}

/// A page of tokens, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct TokenPage<'a> {
    items: Vec<TokenView<'a>>,
    next_cursor: Option<&'a str>,
}

impl<'a> TokenPage<'a> {
    pub(crate) fn new(page: &'a Page<TokenRecord>, now: Timestamp) -> Self {
        Self {
            items: page.items.iter().map(|record| TokenView::new(record, now)).collect(),
            next_cursor: page.next_cursor.as_deref(),
        }
    }
}

impl ApiSchema for TokenPage<'_> {
    const NAME: &'static str = "TokenPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<TokenView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last." },
            }
        })
    }
}

/// A new secret and the token's metadata. The only time the secret is shown.
#[derive(Debug, Serialize)]
pub(crate) struct CreatedTokenView<'a> {
    token: &'a str,
    #[serde(flatten)]
    view: TokenView<'a>,
}

impl<'a> CreatedTokenView<'a> {
    pub(crate) fn new(created: &'a CreatedToken, now: Timestamp) -> Self {
        Self { token: created.secret.expose(), view: TokenView::new(&created.record, now) }
    }
}

impl ApiSchema for CreatedTokenView<'_> {
    const NAME: &'static str = "CreatedToken";
    fn schema(_: &mut Components) -> Value {
        let mut properties = token_properties();
        properties.insert(
            "token".to_owned(),
            json!({ "type": "string", "description": "The secret. Shown once: store it now.", "readOnly": true }),
        );
        let mut required: Vec<&str> = TOKEN_REQUIRED.to_vec();
        required.push("token");
        json!({ "type": "object", "required": required, "properties": properties })
    }
}

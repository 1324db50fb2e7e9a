//! The body both verify endpoints answer with: `valid`, a `code`, and the token's context.

use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{
    OwnerName, Permission, ProjectName, Refusal, Scope, Timestamp, TokenContext, TokenId, TokenName, ToolList, UserId,
};

use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};

/// The outcome of a verify: `valid: true, code: "valid"` with the context, or `valid: false`
/// with the refusal code (and, for 429-class refusals, when to retry).
#[derive(Debug, Serialize)]
pub(crate) struct VerifyResult<'a> {
    valid: bool,
    code: &'static str,
    #[serde(flatten)]
    context: Option<ContextView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<Timestamp>,
}

/// What a caller learns about a valid token.
#[derive(Debug, Serialize)]
struct ContextView<'a> {
    token_id: TokenId,
    name: &'a TokenName,
    owner: &'a OwnerName,
    user_id: Option<UserId>,
    project: Option<&'a ProjectName>,
    permission: Permission,
    scopes: &'a [Scope],
    allowed_tools: &'a ToolList,
    expires_at: Option<Timestamp>,
    via_previous_secret: bool,
}

impl<'a> VerifyResult<'a> {
    /// A valid token.
    pub(crate) fn valid(context: &'a TokenContext) -> Self {
        let record = &context.record;
        Self {
            valid: true,
            code: "valid",
            context: Some(ContextView {
                token_id: context.token_id,
                name: &record.name,
                owner: &record.owner,
                user_id: record.user_id,
                project: record.project.as_ref(),
                permission: record.permission,
                scopes: &record.scopes,
                allowed_tools: &record.allowed_tools,
                expires_at: record.expires_at,
                via_previous_secret: context.via_previous_secret,
            }),
            retry_after_seconds: None,
            limit: None,
            resets_at: None,
        }
    }

    /// A refused token.
    pub(crate) fn refused(refusal: &'a Refusal) -> Self {
        Self {
            valid: false,
            code: refusal.code.as_str(),
            context: None,
            retry_after_seconds: refusal.retry_after.map(|delay| delay.as_secs_f64().ceil() as u64),
            limit: refusal.limit.as_deref(),
            resets_at: refusal.resets_at,
        }
    }
}

impl ApiSchema for VerifyResult<'_> {
    const NAME: &'static str = "VerifyResult";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "description": "Context fields are present when `valid` is true.",
            "required": ["valid", "code"],
            "properties": {
                "valid": { "type": "boolean" },
                "code": {
                    "type": "string",
                    "enum": ["valid", "malformed", "not_found", "revoked", "expired", "ip_not_allowed",
                             "tool_not_allowed", "rate_limited", "quota_exceeded"],
                },
                "token_id": id("tok_", "The token's id."),
                "name": { "type": "string" },
                "owner": { "type": "string" },
                "user_id": nullable(id("usr_", "The owning user, if any.")),
                "project": { "type": ["string", "null"] },
                "permission": { "type": "string", "enum": ["read_only", "standard", "admin"] },
                "scopes": { "type": "array", "items": { "type": "string" } },
                "allowed_tools": { "type": "array", "items": { "type": "string" }, "description": "Empty: any tool." },
                "expires_at": nullable(timestamp("When the token expires; null: never.")),
                "via_previous_secret": {
                    "type": "boolean",
                    "description": "The caller used the secret from before the last rotation (grace period).",
                },
                "retry_after_seconds": { "type": "integer", "minimum": 0 },
                "limit": { "type": "string" },
                "resets_at": timestamp("For quota_exceeded: when the window resets."),
            }
        })
    }
}

//! The body both verify endpoints answer with: `valid`, a `code`, and the token's context.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{
    Metric, OwnerId, OwnerName, Permission, ProjectId, QuotaReservation, Refusal, ReservationId, Scope, Timestamp,
    TokenContext, TokenId, TokenName, ToolList,
};

use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};

/// The outcome of a verify: `valid: true, code: "valid"` with the context, or `valid: false`
/// with the refusal code (and, for 429-class refusals, when to retry).
///
/// One flat struct (no `#[serde(flatten)]`): it is serialized on every verify, and flattening
/// goes through serde's slower map path.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyResult<'a> {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<TokenId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a TokenName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<OwnerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_name: Option<&'a OwnerName>,
    /// `Some(None)` serializes as `null` for a valid token bound to no project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<Option<ProjectId>>,
    /// The effective permission: the lower of the token's level and its owner's current role.
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<Permission>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<&'a [Scope]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_tools: Option<&'a ToolList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Option<Timestamp>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_previous_secret: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<Timestamp>,
    /// Present when an estimate was sent with the verify: what is held until settled or released.
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<ReservationView>,
}

/// A reservation made by a verify.
#[derive(Debug, Serialize)]
pub(crate) struct ReservationView {
    /// `None` when the estimate held nothing (then report usage with `POST /v1/usage`).
    id: Option<ReservationId>,
    expires_at: Option<Timestamp>,
    /// Tokens held against the tightest tokens limit (0 when none governs the token).
    held_tokens: i64,
    /// Microdollars held against the tightest cost limit (0 when none governs the token).
    held_cost_micros: i64,
}

impl ReservationView {
    pub(crate) fn of(reservation: &QuotaReservation) -> Self {
        Self {
            id: reservation.id(),
            expires_at: reservation.expires_at(),
            held_tokens: reservation.held(Metric::Tokens),
            held_cost_micros: reservation.held(Metric::Cost),
        }
    }

    pub(crate) fn id(&self) -> Option<ReservationId> {
        self.id
    }
}

impl<'a> VerifyResult<'a> {
    /// A valid token.
    pub(crate) fn valid(context: &'a TokenContext) -> Self {
        let record = &context.record;
        Self {
            valid: true,
            code: "valid",
            token_id: Some(context.token_id),
            name: Some(&record.name),
            owner: Some(record.owner),
            owner_name: Some(&record.owner_name),
            project: Some(record.project),
            permission: Some(context.effective_permission),
            scopes: Some(&record.scopes),
            allowed_tools: Some(&record.allowed_tools),
            expires_at: Some(record.expires_at),
            via_previous_secret: Some(context.via_previous_secret),
            retry_after_seconds: None,
            limit: None,
            resets_at: None,
            reservation: None,
        }
    }

    /// A valid token with the reservation its verify made.
    pub(crate) fn reserved(context: &'a TokenContext, reservation: ReservationView) -> Self {
        Self { reservation: Some(reservation), ..Self::valid(context) }
    }

    /// The `200 application/json` answer (a valid token's is kept by
    /// [`VerifyBodies`](super::verify_bodies::VerifyBodies) instead).
    pub(crate) fn into_json_response(self) -> Response {
        json_response(self.to_json())
    }

    /// The JSON text, serialized into one buffer sized for the usual body (axum's `Json` starts at
    /// 128 bytes and grows through `BytesMut`'s writer, which showed up as a fifth of the verify's
    /// instructions).
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut body = Vec::with_capacity(512);
        serde_json::to_writer(&mut body, self)?;
        Ok(body)
    }

    /// A refused token.
    pub(crate) fn refused(refusal: &'a Refusal) -> Self {
        Self {
            valid: false,
            code: refusal.code.as_str(),
            token_id: None,
            name: None,
            owner: None,
            owner_name: None,
            project: None,
            permission: None,
            scopes: None,
            allowed_tools: None,
            expires_at: None,
            via_previous_secret: None,
            retry_after_seconds: refusal.retry_after.map(|delay| delay.as_secs_f64().ceil() as u64),
            limit: refusal.limit.as_deref(),
            resets_at: refusal.resets_at,
            reservation: None,
        }
    }
}

/// `200 application/json` with `body`, or the 500 of a body that could not be serialized.
pub(crate) fn json_response(body: serde_json::Result<impl Into<axum::body::Body>>) -> Response {
    match body {
        Ok(body) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
        }
        Err(error) => {
            crate::error::ApiError::internal(format!("serializing the verify result: {error}")).into_response()
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
                "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "The owner: a user or a service account." },
                "owner_name": { "type": "string", "description": "The owner's name (display only)." },
                "project": nullable(id("prj_", "The project the token is bound to.")),
                "permission": {
                    "type": "string", "enum": ["read_only", "standard", "admin"],
                    "description": "What the token may do now: the lower of its own level and its owner's current role.",
                },
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
                "reservation": {
                    "type": "object",
                    "description": "When an estimate was sent: what is held until settled, released or expired.",
                    "required": ["id", "expires_at", "held_tokens", "held_cost_micros"],
                    "properties": {
                        "id": nullable(id("rsv_", "Settle or release by this id; null when the estimate held nothing.")),
                        "expires_at": nullable(timestamp("When the holds return by themselves.")),
                        "held_tokens": { "type": "integer", "minimum": 0 },
                        "held_cost_micros": { "type": "integer", "minimum": 0 },
                    }
                },
            }
        })
    }
}

//! `GET /v1/receipts/key`: the public key usage receipts are signed with (public, no auth), and
//! the receipts metered responses carry when the server signs them (`ServerSettings::receipts`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{Microdollars, RECEIPT_ALGORITHM, Receipt, ReceiptContent, ReceiptKind, ReceiptPublicKey};
use tollgate::{Timestamp, UsageEvent};

use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components, nullable};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/v1/receipts/key",
        Doc::new("receiptKey", "receipts", "The public key usage receipts are signed with (no auth)")
            .describe(
                "Ed25519; `public_key` is the raw 32 bytes in base64url, `key_id` the id receipts name \
                 (the first 8 bytes of SHA-256 of the raw key, hex). `previous` holds keys rotated out, \
                 which still verify the receipts they signed. 404 `receipt_key_not_found` when the server \
                 does not sign receipts (`tollgate serve --receipts`). The canonical form a signature covers \
                 is in docs/http-api.md.",
            )
            .response::<KeyView>(200, "The current key and the previous ones")
            .problems(&[404]),
        key,
    )
}

#[derive(Debug, Serialize)]
struct PublicKeyView {
    key_id: String,
    public_key: String,
}

impl PublicKeyView {
    fn of(key: &ReceiptPublicKey) -> Self {
        Self { key_id: key.key_id().to_owned(), public_key: key.to_base64url() }
    }
}

#[derive(Debug, Serialize)]
struct KeyView {
    algorithm: &'static str,
    key_id: String,
    public_key: String,
    previous: Vec<PublicKeyView>,
}

impl ApiSchema for KeyView {
    const NAME: &'static str = "ReceiptKey";
    fn schema(_: &mut Components) -> Value {
        let key = json!({
            "type": "object",
            "required": ["key_id", "public_key"],
            "properties": {
                "key_id": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
                "public_key": { "type": "string", "description": "The raw 32-byte Ed25519 key, base64url." },
            }
        });
        json!({
            "type": "object",
            "required": ["algorithm", "key_id", "public_key", "previous"],
            "properties": {
                "algorithm": { "type": "string", "enum": [RECEIPT_ALGORITHM] },
                "key_id": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
                "public_key": { "type": "string", "description": "The raw 32-byte Ed25519 key, base64url." },
                "previous": { "type": "array", "items": key, "description": "Keys rotated out, newest first." },
            }
        })
    }
}

async fn key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let signer = state.settings().receipts.as_ref().ok_or_else(|| ApiError::not_found("receipt key"))?;
    let current = PublicKeyView::of(&signer.public_key());
    let previous = signer.previous_keys().iter().map(PublicKeyView::of).collect();
    let view =
        KeyView { algorithm: RECEIPT_ALGORITHM, key_id: current.key_id, public_key: current.public_key, previous };
    Ok(axum::Json(view).into_response())
}

/// The signed receipt for `content`, when this server signs receipts.
pub(super) fn sign(state: &AppState, content: impl FnOnce() -> ReceiptContent) -> Option<Receipt> {
    state.settings().receipts.as_ref().map(|signer| signer.sign(content()))
}

/// What a receipt for a usage event states: its token, ids, model, tokens and cost as stored.
pub(super) fn usage_content(
    kind: ReceiptKind,
    event: &UsageEvent,
    reference: Option<String>,
    at: Timestamp,
) -> ReceiptContent {
    ReceiptContent {
        kind,
        token_id: event.token_id.to_string(),
        agent_id: None,
        reference,
        request_id: event.event_id.as_ref().map(ToString::to_string),
        provider: Some(event.provider.to_string()),
        model: Some(event.model.to_string()),
        input_tokens: event.input_tokens.into(),
        output_tokens: event.output_tokens.into(),
        cost: event.cost.unwrap_or(Microdollars::ZERO),
        at: at.to_rfc3339(),
    }
}

/// The schema of the `receipt` field of a metered response.
pub(super) fn receipt_schema() -> Value {
    let text = |description: &str| nullable(json!({ "type": "string", "description": description }));
    nullable(json!({
        "type": "object",
        "description": "A signed usage receipt (only when the server signs receipts: `serve --receipts`); \
                        verify it with `GET /v1/receipts/key` or `tollgate receipt verify`.",
        "additionalProperties": false,
        "required": [
            "version", "key_id", "kind", "token_id", "agent_id", "reference", "request_id", "provider", "model",
            "input_tokens", "output_tokens", "cost_micros", "at", "signature",
        ],
        "properties": {
            "version": { "type": "integer", "enum": [1] },
            "key_id": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
            "kind": { "type": "string", "enum": ["settle", "report", "usage"] },
            "token_id": { "type": "string", "description": "The token billed (a report: the agent's credential)." },
            "agent_id": text("The agent, for a report."),
            "reference": text("The reservation (settle) or lease (report)."),
            "request_id": text("The event id, or the report's request_id."),
            "provider": text("The provider."),
            "model": text("The model."),
            "input_tokens": { "type": "integer", "minimum": 0 },
            "output_tokens": { "type": "integer", "minimum": 0 },
            "cost_micros": { "type": "integer", "minimum": 0, "description": "What was billed, microdollars." },
            "at": { "type": "string", "format": "date-time" },
            "signature": { "type": "string", "description": "Ed25519 over the canonical form, base64url." },
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_response;

    #[test]
    fn schemas_match_their_types() {
        let signer = tollgate::ReceiptSigner::ephemeral().unwrap();
        let key = PublicKeyView::of(&signer.public_key());
        let view = KeyView {
            algorithm: RECEIPT_ALGORITHM,
            key_id: key.key_id.clone(),
            public_key: key.public_key.clone(),
            previous: vec![key],
        };
        check_response(&view);
    }
}

//! `POST /v1/leaks`: a secret-scanning webhook's candidate strings, answered with which hold tollgate
//! secrets (masked hint, kind, id, state) and, with `revoke`, revoked with reason `leaked`. Admins
//! only. The body is secret-bearing: never logged, zeroized on drop.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{Caller as FacadeCaller, LeakedSecret};

use super::token_verify::PresentedToken;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components, utf8_bytes};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The most candidates in one request.
const MAX_CANDIDATES: usize = 100;
/// The longest candidate, in bytes (a secret with some text around it).
const MAX_CANDIDATE_BYTES: usize = 4096;

pub(super) fn routes() -> Routes {
    Routes::new().post(
        "/v1/leaks",
        Doc::new("reportLeaks", "leaks", "Classify (and revoke) tollgate secrets found leaked (admins only)")
            .describe(
                "For a secret-scanning webhook: each candidate string is scanned for tollgate secrets (API \
                 tokens, refresh tokens, agent credentials: prefix, 49 base62 characters, valid checksum), \
                 each found one looked up by hash. With `revoke`, every one not revoked yet is revoked with \
                 reason `leaked` (audited). Only masked hints are answered, never a secret.",
            )
            .bearer()
            .body::<LeaksBody>()
            .response::<LeaksReport>(200, "The tollgate secrets among the candidates")
            .problems(&[400, 403, 413, 415]),
        report,
    )
}

/// `POST /v1/leaks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaksBody {
    candidates: Vec<PresentedToken>,
    #[serde(default)]
    revoke: bool,
}

impl ApiSchema for LeaksBody {
    const NAME: &'static str = "ReportLeaks";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["candidates"],
            "properties": {
                "candidates": {
                    "type": "array", "maxItems": MAX_CANDIDATES, "writeOnly": true,
                    "items": utf8_bytes(MAX_CANDIDATE_BYTES, "A string that may hold a secret."),
                    "description": "Strings that may hold a tollgate secret (a match and its surroundings).",
                },
                "revoke": { "type": "boolean", "description": "Revoke what is found (default false)." },
            }
        })
    }
}

/// One tollgate secret found in a candidate.
#[derive(Debug, Serialize)]
struct LeakView {
    /// The candidate's index in the request.
    candidate: usize,
    #[serde(flatten)]
    leaked: LeakedSecret,
}

/// The answer.
#[derive(Debug, Serialize)]
struct LeaksReport {
    found: Vec<LeakView>,
}

impl ApiSchema for LeaksReport {
    const NAME: &'static str = "LeaksReport";
    fn schema(_: &mut Components) -> Value {
        let text_or_null = json!({ "type": ["string", "null"] });
        json!({
            "type": "object",
            "required": ["found"],
            "properties": {
                "found": { "type": "array", "items": {
                    "type": "object",
                    "required": ["candidate", "hint", "kind", "id", "owner", "user", "agent", "state", "revoked_now"],
                    "properties": {
                        "candidate": { "type": "integer", "minimum": 0, "description": "Index in `candidates`." },
                        "hint": { "type": "string", "description": "The masked secret: prefix, first and last four." },
                        "kind": { "type": "string", "enum": ["api_token", "refresh_token", "agent_credential"] },
                        "id": { "type": ["string", "null"], "description": "`tok_…`, or the session of a refresh token." },
                        "owner": text_or_null, "user": text_or_null, "agent": text_or_null,
                        "state": { "type": "string", "enum": ["active", "used", "revoked", "expired", "not_found"] },
                        "revoked_now": { "type": "boolean" },
                    }
                } },
            }
        })
    }
}

async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<LeaksBody>,
) -> Result<Response, ApiError> {
    if body.candidates.len() > MAX_CANDIDATES {
        return Err(ApiError::invalid_field("candidates", format!("must hold at most {MAX_CANDIDATES} strings")));
    }
    if let Some(index) = body.candidates.iter().position(|candidate| candidate.expose().len() > MAX_CANDIDATE_BYTES) {
        return Err(ApiError::invalid_field(
            format!("candidates[{index}]"),
            format!("must be at most {MAX_CANDIDATE_BYTES} bytes"),
        ));
    }
    let users = state.users();
    let scanner = users.secret_scanner();
    let facade_caller = FacadeCaller::new(caller.principal.clone()).with_ip(caller.ip);
    let mut found = Vec::new();
    for (candidate, text) in body.candidates.iter().enumerate() {
        let secrets: Vec<_> = scanner.scan(text.expose().as_bytes()).into_iter().map(|found| found.secret).collect();
        // Authorized even when nothing is found, so a non-admin learns nothing from the answer.
        let classified = users.classify_leaks(&facade_caller, &secrets, body.revoke).await?;
        found.extend(classified.into_iter().map(|leaked| LeakView { candidate, leaked }));
    }
    if body.candidates.is_empty() {
        users.classify_leaks(&facade_caller, &[], false).await?;
    }
    Ok(axum::Json(LeaksReport { found }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<LeaksBody>();
        let leaked = LeakedSecret {
            hint: "tg_abcd…wxyz".to_owned(),
            kind: tollgate::SecretKind::ApiToken,
            id: Some("tok_x".to_owned()),
            owner: None,
            user: None,
            agent: None,
            state: tollgate::LeakState::Revoked,
            revoked_now: true,
        };
        check_response(&LeaksReport { found: vec![LeakView { candidate: 0, leaked }] });
    }
}

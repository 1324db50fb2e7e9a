//! `POST /v1/tokens/cleanup`: deleting tokens revoked or expired long ago (admins only; audited).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().post(
        "/v1/tokens/cleanup",
        Doc::new("cleanupTokens", "tokens", "Delete tokens revoked or expired more than `older_than_seconds` ago")
            .describe("Admins only; audited; irreversible, so an age under an hour is refused unless `force` is true.")
            .bearer()
            .body::<CleanupBody>()
            .response::<CleanupView>(200, "How many were deleted")
            .problems(&[400, 403, 413, 415, 503]),
        cleanup,
    )
}

/// `POST /v1/tokens/cleanup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupBody {
    older_than_seconds: u64,
    #[serde(default)]
    force: bool,
}

impl ApiSchema for CleanupBody {
    const NAME: &'static str = "CleanupTokens";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["older_than_seconds"],
            "properties": {
                "older_than_seconds": { "type": "integer", "minimum": 0, "description": "At least 3600 unless `force`." },
                "force": { "type": "boolean", "default": false },
            }
        })
    }
}

/// What a cleanup did.
#[derive(Debug, serde::Serialize)]
struct CleanupView {
    deleted: u64,
}

impl ApiSchema for CleanupView {
    const NAME: &'static str = "CleanupResult";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "required": ["deleted"], "properties": { "deleted": { "type": "integer" } } })
    }
}

async fn cleanup(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CleanupBody>,
) -> Result<Response, ApiError> {
    let older_than = std::time::Duration::from_secs(body.older_than_seconds);
    let deleted = state.tokens().cleanup(&caller.principal, older_than, body.force).await?;
    Ok(axum::Json(CleanupView { deleted }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CleanupBody>();
        check_response(&CleanupView { deleted: 3 });
    }
}

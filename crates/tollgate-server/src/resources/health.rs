//! `GET /health`: 200 when the database answers (`status: degraded`, with the reason, while usage
//! writes are failing), 503 when it does not answer.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/health",
        Doc::new("health", "operations", "Check that the server and its database answer")
            .describe(
                "`status` is `degraded` while usage writes fail (the writer retries with backoff; `reason` \
                 says why): verifies still work, reports may lag, and durable usage calls may answer 503.",
            )
            .response::<Health>(200, "Healthy")
            .problems(&[503]),
        health,
    )
}

/// The health report.
#[derive(Debug, Serialize)]
pub(super) struct Health {
    status: &'static str,
    database: &'static str,
    usage_writer: &'static str,
    reason: Option<String>,
    version: &'static str,
}

impl ApiSchema for Health {
    const NAME: &'static str = "Health";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["status", "database", "usage_writer", "reason", "version"],
            "properties": {
                "status": { "type": "string", "enum": ["ok", "degraded"] },
                "database": { "const": "ok" },
                "usage_writer": { "type": "string", "enum": ["ok", "failing"] },
                "reason": { "type": ["string", "null"], "description": "Why usage writes fail, while they do." },
                "version": { "type": "string" },
            }
        })
    }
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.tokens().store().ping().await.map_err(ApiError::unavailable)?;
    let reason = state.metering().degraded();
    let (status, usage_writer) = if reason.is_some() { ("degraded", "failing") } else { ("ok", "ok") };
    Ok(Json(Health { status, database: "ok", usage_writer, reason, version: env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_response;

    #[test]
    fn schema_matches_the_type() {
        check_response(&Health { status: "ok", database: "ok", usage_writer: "ok", reason: None, version: "0.0.0" });
        let reason = Some("usage writes are failing".to_owned());
        check_response(&Health { status: "degraded", database: "ok", usage_writer: "failing", reason, version: "0" });
    }
}

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
                 says why): verifies still work, reports may lag, and durable usage calls may answer 503. \
                 It is also `degraded` while the shared rate limiter (Redis) is away: `rate_limiter` is then \
                 `local` and each node limits at the policy divided by the live nodes until it returns.",
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
    rate_limiter: &'static str,
    reason: Option<String>,
    version: &'static str,
}

impl ApiSchema for Health {
    const NAME: &'static str = "Health";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["status", "database", "usage_writer", "rate_limiter", "reason", "version"],
            "properties": {
                "status": { "type": "string", "enum": ["ok", "degraded"] },
                "database": { "const": "ok" },
                "usage_writer": { "type": "string", "enum": ["ok", "failing"] },
                "rate_limiter": {
                    "type": "string",
                    "enum": ["ok", "local"],
                    "description": "`local` while the shared rate limiter is unreachable and this node decides alone."
                },
                "reason": { "type": ["string", "null"], "description": "Why the server is degraded, while it is." },
                "version": { "type": "string" },
            }
        })
    }
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.tokens().store().ping().await.map_err(ApiError::unavailable)?;
    let writer = state.metering().degraded();
    let usage_writer = if writer.is_some() { "failing" } else { "ok" };
    let (_, limiter_local) = state.metering().rate_limiter_state();
    let rate_limiter = if limiter_local { "local" } else { "ok" };
    let limiter = limiter_local
        .then(|| "the shared rate limiter is unreachable; limiting locally at this node's share".to_owned());
    let reason = match (writer, limiter) {
        (Some(writer), Some(limiter)) => Some(format!("{writer}; {limiter}")),
        (writer, limiter) => writer.or(limiter),
    };
    let status = if reason.is_some() { "degraded" } else { "ok" };
    let version = env!("CARGO_PKG_VERSION");
    Ok(Json(Health { status, database: "ok", usage_writer, rate_limiter, reason, version }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_response;

    #[test]
    fn schema_matches_the_type() {
        let ok = Health {
            status: "ok",
            database: "ok",
            usage_writer: "ok",
            rate_limiter: "ok",
            reason: None,
            version: "0.0.0",
        };
        check_response(&ok);
        let reason = Some("usage writes are failing".to_owned());
        check_response(&Health { status: "degraded", usage_writer: "failing", rate_limiter: "local", reason, ..ok });
    }
}

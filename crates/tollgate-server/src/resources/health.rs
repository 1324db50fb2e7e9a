//! `GET /health`: 200 when the database answers, 503 when it does not.

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
    version: &'static str,
}

impl ApiSchema for Health {
    const NAME: &'static str = "Health";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["status", "database", "version"],
            "properties": {
                "status": { "const": "ok" },
                "database": { "const": "ok" },
                "version": { "type": "string" },
            }
        })
    }
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.tokens().store().ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(Health { status: "ok", database: "ok", version: env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_response;

    #[test]
    fn schema_matches_the_type() {
        check_response(&Health { status: "ok", database: "ok", version: "0.0.0" });
    }
}

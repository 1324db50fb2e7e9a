//! `/v1/rate-limits` and `/v1/tokens/{id}/rate-limit`: a token's rate limit (GCRA: sustained
//! requests per minute with a burst) — list them all, read, set (`PUT`) and remove one. The facade
//! authorizes (`metering.manage` to change, admins or the token's owner to read) and audits each
//! change in its transaction (`rate_limit.set`, `rate_limit.remove`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{RateLimitRecord, RateLimitSpec, TokenId};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId};
use crate::openapi::{ApiSchema, Components, id, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The token id (tok_…)";

pub(super) fn routes() -> Routes {
    let token = |doc: Doc| doc.bearer().path_param("id", ID);
    Routes::new()
        .get(
            "/v1/rate-limits",
            Doc::new("listRateLimits", "limits", "Every token's rate limit (admins only)")
                .bearer()
                .response::<RateLimitList>(200, "The rate limits, by token id")
                .problems(&[403]),
            list,
        )
        .get(
            "/v1/tokens/{id}/rate-limit",
            token(Doc::new("getRateLimit", "limits", "A token's rate limit (admins, or the token's owner)"))
                .response::<RateLimitView>(200, "The rate limit")
                .problems(&[400, 404]),
            show,
        )
        .put(
            "/v1/tokens/{id}/rate-limit",
            token(Doc::new("setRateLimit", "limits", "Set or replace a token's rate limit (admins only; audited)"))
                .describe(
                    "GCRA: `requests_per_minute` sustained, up to `burst` at once (default: the rate). Takes \
                     effect on the token's next request; a refused request is 429 `rate_limited` with \
                     `Retry-After`.",
                )
                .body::<RateLimitBody>()
                .response::<RateLimitView>(200, "The rate limit")
                .problems(&[400, 403, 404, 413, 415]),
            set,
        )
        .delete(
            "/v1/tokens/{id}/rate-limit",
            token(Doc::new("removeRateLimit", "limits", "Remove a token's rate limit (admins only; audited)"))
                .response::<RateLimitView>(200, "The removed rate limit")
                .problems(&[400, 403, 404]),
            remove,
        )
}

/// `PUT /v1/tokens/{id}/rate-limit`: what `tollgate limit set --rate-per-minute N [--burst B]` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    requests_per_minute: u32,
    #[serde(default)]
    burst: Option<u32>,
}

impl RateLimitBody {
    fn into_spec(self) -> Result<RateLimitSpec, ApiError> {
        Ok(RateLimitSpec::new(self.requests_per_minute, self.burst.unwrap_or(self.requests_per_minute))?)
    }
}

fn rate_properties() -> Value {
    json!({
        "requests_per_minute": {
            "type": "integer", "minimum": 1, "maximum": RateLimitSpec::MAX, "description": "Sustained rate.",
        },
        "burst": {
            "type": "integer", "minimum": 1, "maximum": RateLimitSpec::MAX, "description": "Requests allowed at once.",
        },
    })
}

impl ApiSchema for RateLimitBody {
    const NAME: &'static str = "SetRateLimit";
    fn schema(_: &mut Components) -> Value {
        let mut properties = rate_properties();
        if let Some(burst) = properties.get_mut("burst").and_then(Value::as_object_mut) {
            burst.insert("description".into(), json!("Requests allowed at once (default: requests_per_minute)."));
        }
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["requests_per_minute"],
            "properties": properties,
        })
    }
}

/// One token's rate limit.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct RateLimitView(RateLimitRecord);

impl ApiSchema for RateLimitView {
    const NAME: &'static str = "RateLimit";
    fn schema(_: &mut Components) -> Value {
        let mut properties = rate_properties();
        if let Some(properties) = properties.as_object_mut() {
            properties.insert("token_id".into(), id("tok_", "The token."));
            properties.insert("updated_at".into(), timestamp("When it was last set."));
        }
        json!({
            "type": "object",
            "required": ["token_id", "requests_per_minute", "burst", "updated_at"],
            "properties": properties,
        })
    }
}

/// Every rate limit, ordered by token id.
#[derive(Debug, Serialize)]
struct RateLimitList {
    items: Vec<RateLimitView>,
}

impl ApiSchema for RateLimitList {
    const NAME: &'static str = "RateLimitList";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<RateLimitView>(components) },
            }
        })
    }
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let items = state.metering().rate_limits(&caller.principal).await?.into_iter().map(RateLimitView).collect();
    Ok(axum::Json(RateLimitList { items }).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
) -> Result<Response, ApiError> {
    let record = state.metering().rate_limit(&caller.principal, &id).await?;
    Ok(axum::Json(RateLimitView(record)).into_response())
}

async fn set(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
    Json(body): Json<RateLimitBody>,
) -> Result<Response, ApiError> {
    let record = state.metering().set_rate_limit(&caller.principal, &id, body.into_spec()?).await?;
    Ok(axum::Json(RateLimitView(record)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
) -> Result<Response, ApiError> {
    let record = state.metering().remove_rate_limit(&caller.principal, &id).await?;
    Ok(axum::Json(RateLimitView(record)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_and_burst_defaults_to_the_rate() {
        check_request::<RateLimitBody>();
        let body: RateLimitBody = serde_json::from_str(r#"{"requests_per_minute": 30}"#).unwrap();
        let spec = body.into_spec().unwrap();
        assert_eq!((spec.requests_per_minute(), spec.burst()), (30, 30));
        let zero: RateLimitBody = serde_json::from_str(r#"{"requests_per_minute": 5, "burst": 0}"#).unwrap();
        assert_eq!(zero.into_spec().unwrap_err().field(), Some("burst"));
        let record = RateLimitRecord {
            token_id: TokenId::generate(),
            spec: RateLimitSpec::new(60, 5).unwrap(),
            updated_at: tollgate::Timestamp::from_unix_micros(0),
        };
        check_response(&RateLimitView(record.clone()));
        check_response(&RateLimitList { items: vec![RateLimitView(record)] });
    }
}

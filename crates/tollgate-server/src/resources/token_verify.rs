//! `POST /v1/tokens/verify`: a gateway verifies its caller's token. Always 200 with `valid` and
//! `code`; the gateway's own credential needs the `tokens:verify` scope or permission admin.

use std::net::IpAddr;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate::{EstimateInput, VerifyRequest};
use zeroize::Zeroizing;

use super::verify_view::{ReservationView, VerifyResult};
use crate::auth::{Caller, VERIFY_SCOPE, check_tool};
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components, event_cost, identifier, ip_address, model, text, token_count};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().post(
        "/v1/tokens/verify",
        Doc::new("verifyToken", "verify", "Verify a caller's token on behalf of a gateway")
            .describe(
                "Answers 200 whether or not the token is valid: branch on `valid` and `code`. Needs a \
                 credential with the `tokens:verify` scope or permission admin. With `reserve` (the most \
                 tokens and money the call may use), the estimate is held against the token's tokens and \
                 cost limits (`quota_exceeded` when it does not fit, so concurrent calls cannot overspend) \
                 and `reservation.id` is returned: settle it with the actual usage \
                 (`POST /v1/reservations/{id}/settle`) or release it; unsettled, it expires by itself.",
            )
            .bearer()
            .body::<VerifyTokenBody>()
            .response::<VerifyResult<'static>>(200, "The verdict and, when valid, the token's context")
            .problems(&[400, 403, 413, 415]),
        verify,
    )
}

/// The token to check and the circumstances of the caller's request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyTokenBody {
    token: PresentedToken,
    #[serde(default)]
    ip: Option<IpAddr>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    cost: Option<u32>,
    #[serde(default)]
    reserve: Option<EstimateInput>,
}

/// A presented token: zeroized on drop, never shown by `Debug`.
pub(crate) struct PresentedToken(Zeroizing<String>);

impl PresentedToken {
    /// The token as presented.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedToken(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for PresentedToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(Zeroizing::new(text)))
    }
}

impl ApiSchema for VerifyTokenBody {
    const NAME: &'static str = "VerifyToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["token"],
            "properties": {
                "token": { "type": "string", "description": "The token the caller presented.", "writeOnly": true },
                "ip": ip_address("The caller's IP address (IPv4 or IPv6)."),
                "tool": text(128, "The tool the caller is about to use."),
                "cost": {
                    "type": "integer", "minimum": 1, "maximum": 1_000_000,
                    "description": "Units this request spends against rate limits (default 1).",
                },
                "reserve": estimate_schema(),
            }
        })
    }
}

/// The `reserve` object (also documented for the `X-Tollgate-Reserve` header).
pub(super) fn estimate_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "The most the call may use: held until settled, released or expired.",
        "properties": {
            "provider": identifier(64, "With model: price the estimate from the table."),
            "model": model(""),
            "max_input_tokens": token_count(""),
            "max_output_tokens": token_count("The call's max_tokens."),
            "cost_micros": event_cost("Hold this much money instead of pricing."),
        }
    })
}

/// Names an estimate's fields under `reserve.` in errors.
pub(super) fn estimate_error(error: tollgate::ValidationError) -> ApiError {
    let field = if error.field == "reserve" { error.field.to_owned() } else { format!("reserve.{}", error.field) };
    ApiError::invalid_field(field, error.reason)
}

async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<VerifyTokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    if !caller.is_admin_or_has(VERIFY_SCOPE) {
        return Err(ApiError::forbidden(format!(
            "verifying tokens needs permission admin or the {VERIFY_SCOPE} scope"
        )));
    }
    if let Some(tool) = &body.tool {
        check_tool(tool).map_err(|reason| ApiError::invalid_field("tool", reason))?;
    }
    if body.cost.is_some_and(|cost| !(1..=1_000_000).contains(&cost)) {
        return Err(ApiError::invalid_field("cost", "must be between 1 and 1000000"));
    }
    let estimate = body.reserve.as_ref().map(EstimateInput::parse).transpose().map_err(estimate_error)?;
    let request = VerifyRequest { ip: body.ip, tool: body.tool };
    let outcome = match &estimate {
        None => state.tokens().verify(&body.token.0, &request).await.map(|context| (context, None)),
        Some(estimate) => {
            let reservation = state.metering().reservation_for(estimate);
            state
                .tokens()
                .verify_and_reserve(&body.token.0, &request, &reservation)
                .await
                .map(|(context, held)| (context, Some(ReservationView::of(&held))))
        }
    };
    let metrics = state.metrics();
    let response = match outcome {
        Ok((context, reservation)) => {
            metrics.observe_verify(Ok(()));
            match reservation {
                Some(reservation) => VerifyResult::reserved(&context, reservation).into_json_response(),
                None => state.verify_bodies().valid_response(&context),
            }
        }
        Err(tollgate::Error::Refused(refusal)) => {
            metrics.observe_verify(Err(refusal.code));
            axum::Json(VerifyResult::refused(&refusal)).into_response()
        }
        Err(other) => return Err(other.into()),
    };
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tollgate::{Refusal, RefusalCode, TokenContext};

    use super::*;
    use crate::openapi::conformance::{check_request, check_response, example_record};

    #[test]
    fn schemas_match_their_types() {
        check_request::<VerifyTokenBody>();
        let record = Arc::new(example_record());
        let context = TokenContext {
            token_id: record.id,
            effective_permission: record.effective_permission(),
            record,
            via_previous_secret: true,
            rate_limit: None,
        };
        check_response(&VerifyResult::valid(&context));
        let mut refusal = Refusal::new(RefusalCode::QuotaExceeded);
        refusal.limit = Some("requests_per_day".to_owned());
        refusal.retry_after = Some(std::time::Duration::from_secs(3));
        refusal.resets_at = Some(tollgate::Timestamp::from_unix_micros(0));
        check_response(&VerifyResult::refused(&refusal));
    }

    #[test]
    fn the_presented_token_never_shows_in_debug() {
        let body: VerifyTokenBody = serde_json::from_str(r#"{"token": "tg_secretsecret"}"#).unwrap();
        assert!(!format!("{body:?}").contains("secretsecret"));
    }
}

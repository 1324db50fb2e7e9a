//! `GET /v1/auth/verify`: verifies the bearer token itself — what a gateway asks on every request.
//!
//! 200 with the token's context; a refusal answers problem+json with the refusal code as `code`:
//! 401 (malformed, not_found, revoked, expired), 403 (ip_not_allowed, tool_not_allowed) or 429
//! with `Retry-After` (rate_limited, quota_exceeded).

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use tollgate::{EstimateInput, VerifyRequest};

use super::verify_view::{ReservationView, VerifyResult};
use crate::auth::{bearer, client_ip, tool_header, verify_bearer, verify_bearer_reserving};
use crate::error::ApiError;
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/v1/auth/verify",
        Doc::new("verifyBearer", "verify", "Verify the bearer token of this request")
            .describe(
                "Checks the token in `Authorization: Bearer` against its status, expiry, IP allow-list \
                 (the client address is the socket peer, or `X-Forwarded-For` from a trusted proxy) \
                 and allowed tools (the tool named by `X-Tollgate-Tool`), then its rate limit and quotas \
                 (one request is counted). Where a limit applies, `RateLimit-Limit`, `RateLimit-Remaining` \
                 and `RateLimit-Reset` (seconds) describe the tightest; 429 `rate_limited` or \
                 `quota_exceeded` carries `Retry-After`. With `X-Tollgate-Reserve` (the most the call may \
                 use, as `key=value` pairs: `provider`, `model`, `max_input_tokens`, `max_output_tokens`, \
                 `cost_micros`), the estimate is held against the token's tokens and cost limits and the \
                 reservation's id is returned in `reservation.id` and `X-Tollgate-Reservation`: settle it \
                 with `POST /v1/reservations/{id}/settle` or release it.",
            )
            .bearer()
            .header(
                "X-Tollgate-Tool",
                crate::openapi::header_text(128),
                "The tool the caller is about to use, checked against allowed tools",
            )
            .header(
                "X-Tollgate-Reserve",
                crate::openapi::reserve_header(),
                "An estimate to hold, e.g. `provider=openai, model=gpt-4o, max_input_tokens=1200, max_output_tokens=800`",
            )
            .response::<VerifyResult<'static>>(200, "The token is valid; its context")
            .response_headers(&["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Tollgate-Reservation"])
            .problems(&[400, 403, 429]),
        verify,
    )
}

async fn verify(State(state): State<AppState>, request: Request) -> Result<impl IntoResponse, ApiError> {
    let (parts, _body) = request.into_parts();
    // A request without a credential is told so first, whatever else is wrong with it.
    let credential = bearer(&parts.headers)?;
    let tool = tool_header(&parts.headers)?;
    let estimate = reserve_header(&parts.headers)?;
    let request = VerifyRequest { ip: client_ip(&parts, &state.settings().trusted_proxies), tool };
    let (context, reservation) = match estimate {
        None => (verify_bearer(&state, credential, &request).await?, None),
        Some(estimate) => {
            let reservation = state.metering().reservation_for(&estimate);
            let (context, held) = verify_bearer_reserving(&state, credential, &request, &reservation).await?;
            (context, Some(ReservationView::of(&held)))
        }
    };
    let reservation_id = reservation.as_ref().and_then(ReservationView::id);
    let mut response = match reservation {
        Some(reservation) => VerifyResult::reserved(&context, reservation).into_json_response(),
        None => state.verify_bodies().valid_response(&context),
    };
    if let Some(id) = reservation_id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        response.headers_mut().insert("x-tollgate-reservation", value);
    }
    if let Some(limit) = &context.rate_limit {
        // draft-ietf-httpapi-ratelimit-headers: the limit that applies, what is left, seconds to reset.
        let reset = limit.reset.as_micros().div_ceil(1_000_000);
        let headers = response.headers_mut();
        for (name, value) in [("ratelimit-limit", limit.limit), ("ratelimit-remaining", limit.remaining)] {
            headers.insert(name, HeaderValue::from(value));
        }
        headers.insert("ratelimit-reset", HeaderValue::from(u64::try_from(reset).unwrap_or(u64::MAX)));
    }
    Ok(response)
}

/// The estimate of an `X-Tollgate-Reserve` header, validated.
fn reserve_header(headers: &axum::http::HeaderMap) -> Result<Option<tollgate::Estimate>, ApiError> {
    const NAME: axum::http::HeaderName = axum::http::HeaderName::from_static("x-tollgate-reserve");
    let Some(value) = headers.get(NAME) else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::invalid_field("X-Tollgate-Reserve", "must be ASCII"))?;
    // Every error names the header; the reason names the key at fault.
    let named = |error: tollgate::ValidationError| match error.field {
        "X-Tollgate-Reserve" => ApiError::invalid_field("X-Tollgate-Reserve", error.reason),
        key => ApiError::invalid_field("X-Tollgate-Reserve", format!("{key} {}", error.reason)),
    };
    EstimateInput::from_pairs(text).and_then(|input| input.parse()).map(Some).map_err(named)
}

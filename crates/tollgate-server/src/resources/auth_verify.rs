//! `GET /v1/auth/verify`: verifies the bearer token itself — what a gateway asks on every request.
//!
//! 200 with the token's context; a refusal answers problem+json with the refusal code as `code`:
//! 401 (malformed, not_found, revoked, expired), 403 (ip_not_allowed, tool_not_allowed) or 429
//! with `Retry-After` (rate_limited, quota_exceeded).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use tollgate::VerifyRequest;

use super::verify_view::VerifyResult;
use crate::auth::{client_ip, tool_header, verify_bearer};
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
                 `quota_exceeded` carries `Retry-After`.",
            )
            .bearer()
            .header("X-Tollgate-Tool", "The tool the caller is about to use, checked against allowed tools")
            .response::<VerifyResult<'static>>(200, "The token is valid; its context")
            .response_headers(&["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"])
            .problems(&[400, 403, 429]),
        verify,
    )
}

async fn verify(State(state): State<AppState>, request: Request) -> Result<impl IntoResponse, ApiError> {
    let (parts, _body) = request.into_parts();
    let tool = tool_header(&parts.headers)?;
    let request = VerifyRequest { ip: client_ip(&parts, &state.settings().trusted_proxies), tool };
    let context = verify_bearer(&state, &parts.headers, &request).await?;
    let mut response = Json(VerifyResult::valid(&context)).into_response();
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

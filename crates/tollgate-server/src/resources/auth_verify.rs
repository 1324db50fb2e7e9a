//! `GET /v1/auth/verify`: verifies the bearer token itself — what a gateway asks on every request.
//!
//! 200 with the token's context; a refusal answers problem+json with the refusal code as `code`:
//! 401 (malformed, not_found, revoked, expired), 403 (ip_not_allowed, tool_not_allowed) or 429
//! with `Retry-After` (rate_limited, quota_exceeded).

use axum::Json;
use axum::extract::{Request, State};
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
                 and allowed tools (the tool named by `X-Tollgate-Tool`).",
            )
            .bearer()
            .header("X-Tollgate-Tool", "The tool the caller is about to use, checked against allowed tools")
            .response::<VerifyResult<'static>>(200, "The token is valid; its context")
            .problems(&[400, 403, 429]),
        verify,
    )
}

async fn verify(State(state): State<AppState>, request: Request) -> Result<impl IntoResponse, ApiError> {
    let (parts, _body) = request.into_parts();
    let tool = tool_header(&parts.headers)?;
    let request = VerifyRequest { ip: client_ip(&parts, &state.settings().trusted_proxies), tool };
    let context = verify_bearer(&state, &parts.headers, &request).await?;
    Ok(Json(VerifyResult::valid(&context)).into_response())
}

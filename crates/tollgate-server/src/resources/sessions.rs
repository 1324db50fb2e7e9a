//! `/v1/auth/login`, `/v1/auth/refresh`, `/v1/auth/logout`: password login into a session (a
//! short-lived access JWT and a rotating refresh token), refresh with reuse detection, logout.
//!
//! Every login refusal that depends on the account is one 401 `invalid_credentials`; too many
//! failures from one address is 429 `rate_limited` with `Retry-After`. Bodies are never logged.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::SessionTokens;
use zeroize::Zeroizing;

use super::users::PresentedPassword;
use crate::auth::ClientIp;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components, owner_reference, password};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post(
            "/v1/auth/login",
            Doc::new("login", "sessions", "Log in with a username (or email) and password")
                .describe(
                    "Answers an access JWT (send it as `Authorization: Bearer`) and a refresh token. Unknown user, \
                     wrong password, locked or inactive account: all 401 `invalid_credentials`. 403 \
                     `password_change_required` when the password must be changed first (`tollgate user \
                     change-password`).",
                )
                .body::<LoginBody>()
                .response::<SessionView>(200, "A new session")
                .problems(&[400, 401, 403, 413, 415, 429]),
            login,
        )
        .post(
            "/v1/auth/refresh",
            Doc::new("refreshSession", "sessions", "Exchange a refresh token for a new access and refresh token")
                .describe(
                    "The presented refresh token is used up. Presenting a used one again is treated as theft: \
                     401 `revoked`, and the whole session (every access and refresh token of it) ends.",
                )
                .body::<RefreshBody>()
                .response::<SessionView>(200, "The rotated session")
                .problems(&[400, 401, 413, 415]),
            refresh,
        )
        .post(
            "/v1/auth/logout",
            Doc::new("logout", "sessions", "End the session of a refresh token (idempotent)")
                .body::<RefreshBody>()
                .response_text(204, "The session has ended", "text/plain")
                .problems(&[400, 401, 413, 415]),
            logout,
        )
}

/// `POST /v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    password: PresentedPassword,
}

impl ApiSchema for LoginBody {
    const NAME: &'static str = "Login";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["password"],
            "description": "Exactly one of `username` and `email`.",
            "oneOf": [{ "required": ["username"] }, { "required": ["email"] }],
            "properties": {
                "username": owner_reference("The username (or give email instead)."),
                "email": { "type": "string", "format": "email", "maxLength": 254, "description": "The email (or give username instead)." },
                "password": password(1, ""),
            }
        })
    }
}

/// `POST /v1/auth/refresh` and `/v1/auth/logout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(deserialize_with = "zeroizing")]
    refresh_token: Zeroizing<String>,
}

fn zeroizing<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(deserializer).map(Zeroizing::new)
}

impl std::fmt::Debug for RefreshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshBody { refresh_token: <redacted> }")
    }
}

impl ApiSchema for RefreshBody {
    const NAME: &'static str = "RefreshToken";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["refresh_token"],
            "properties": { "refresh_token": { "type": "string", "writeOnly": true, "pattern": "^tgr_[0-9A-Za-z]{49}$" } }
        })
    }
}

/// A session's credentials, shown once.
#[derive(Serialize)]
struct SessionView {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    refresh_expires_at: tollgate::Timestamp,
    session_id: String,
    user_id: String,
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

impl ApiSchema for SessionView {
    const NAME: &'static str = "Session";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": [
                "access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_at", "session_id", "user_id",
            ],
            "properties": {
                "access_token": { "type": "string", "description": "The access JWT: `Authorization: Bearer <it>`." },
                "token_type": { "type": "string", "const": "Bearer" },
                "expires_in": { "type": "integer", "description": "Seconds until the access token expires." },
                "refresh_token": { "type": "string", "description": "Single use; shown once." },
                "refresh_expires_at": crate::openapi::timestamp("When the refresh token expires."),
                "session_id": crate::openapi::id("ses_", "The session."),
                "user_id": crate::openapi::id("usr_", "The user."),
            }
        })
    }
}

/// 200 with the credentials and `Cache-Control: no-store` so no cache keeps them.
fn session_response(tokens: &SessionTokens) -> Response {
    let view = SessionView {
        access_token: tokens.access_token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.expose().to_owned(),
        refresh_expires_at: tokens.refresh_expires_at,
        session_id: tokens.session.id.to_string(),
        user_id: tokens.user.id.to_string(),
    };
    let mut response = axum::Json(view).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    // An unknown or malformed email goes down the facade's unknown-account path: same cost, same refusal.
    let tokens = match (body.username, body.email) {
        (Some(username), None) => state.users().login(&username, body.password.into_presented()?, ip).await?,
        (None, Some(email)) => state.users().login_by_email(&email, body.password.into_presented()?, ip).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field("username", "give either username or email, not both"));
        }
        (None, None) => return Err(ApiError::invalid_field("username", "give username or email")),
    };
    Ok(session_response(&tokens))
}

async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RefreshBody>,
) -> Result<Response, ApiError> {
    let tokens = state.users().refresh(&body.refresh_token, ip).await?;
    Ok(session_response(&tokens))
}

async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RefreshBody>,
) -> Result<Response, ApiError> {
    state.users().logout(&body.refresh_token, ip).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn schemas_match_their_types_and_secrets_are_redacted() {
        check_request::<LoginBody>();
        check_request::<RefreshBody>();
        let body: RefreshBody = serde_json::from_str(r#"{"refresh_token": "tgr_secret"}"#).unwrap();
        assert!(!format!("{body:?}").contains("secret"));
        let login: LoginBody = serde_json::from_str(r#"{"username": "a", "password": "pw-secret"}"#).unwrap();
        assert!(!format!("{login:?}").contains("pw-secret"));
    }
}

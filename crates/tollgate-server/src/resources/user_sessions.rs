//! A user's login sessions over HTTP (`/v1/users/{id}/sessions`, `/v1/me/sessions`,
//! `/v1/sessions/{id}/revoke`: admins any user's, everyone their own) and changing one's own
//! password (`/v1/me/password`, which ends every session of the user).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{Page, Principal, SessionId, SessionRecord, UserId};

use super::users::{PageQuery, PresentedPassword};
use crate::auth::{Caller, ClientIp};
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, PathId, Query};
use crate::openapi::{ApiSchema, Components, id, notes, nullable, password, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    let list = |operation_id, summary| {
        Doc::new(operation_id, "sessions", summary)
            .bearer()
            .query::<PageQuery>()
            .response::<SessionPage<'static>>(200, "One page, newest first")
    };
    Routes::new()
        .get(
            "/v1/users/{id}/sessions",
            list("listUserSessions", "A user's login sessions (admins: anyone's; others: their own)")
                .path_param("id", "The user id (usr_…)")
                .problems(&[400, 403, 404, 503]),
            user_sessions,
        )
        .get(
            "/v1/me/sessions",
            list("listMySessions", "The caller's own login sessions (a user's access JWT or token)")
                .problems(&[400, 403, 503]),
            my_sessions,
        )
        .post(
            "/v1/sessions/{id}/revoke",
            Doc::new("revokeSession", "sessions", "End a login session (admins: anyone's; others: their own)")
                .bearer()
                .path_param("id", "The session id (ses_…)")
                .body::<RevokeSessionBody>()
                .response::<SessionView<'static>>(200, "The session, ended")
                .problems(&[400, 404, 413, 415, 503]),
            revoke,
        )
        .post(
            "/v1/me/password",
            Doc::new("changeMyPassword", "sessions", "Change your own password (proving the current one)")
                .describe("Ends every session of the user, this one included. Refused like a login when the current password is wrong.")
                .bearer()
                .body::<ChangePasswordBody>()
                .response_text(204, "Changed", "text/plain")
                .problems(&[400, 403, 413, 415, 503]),
            change_password,
        )
}

/// `POST /v1/sessions/{id}/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeSessionBody {
    #[serde(default)]
    reason: Option<String>,
}

impl ApiSchema for RevokeSessionBody {
    const NAME: &'static str = "RevokeSession";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": notes(1024, "Recorded in the audit log.") }
        })
    }
}

/// `POST /v1/me/password`. No `Debug` of the passwords.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: PresentedPassword,
    new_password: PresentedPassword,
}

impl ApiSchema for ChangePasswordBody {
    const NAME: &'static str = "ChangeMyPassword";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["current_password", "new_password"],
            "properties": {
                "current_password": password(1, ""),
                "new_password": password(12, "The password policy applies: at least 12 characters."),
            }
        })
    }
}

/// A session as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct SessionView<'a>(&'a SessionRecord);

impl ApiSchema for SessionView<'_> {
    const NAME: &'static str = "Session";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "user_id", "generation", "created_at", "refreshed_at", "expires_at"],
            "properties": {
                "id": id("ses_", "The session."),
                "user_id": id("usr_", "Whose."),
                "generation": { "type": "integer", "description": "Refresh tokens the session has had." },
                "created_at": timestamp("Login time."),
                "refreshed_at": nullable(timestamp("Last refresh.")),
                "expires_at": timestamp("When it ends unless refreshed."),
                "revoked_at": nullable(timestamp("When it was ended.")),
                "revoke_reason": { "type": ["string", "null"] },
            }
        })
    }
}

/// A page of sessions.
#[derive(Debug, Serialize)]
struct SessionPage<'a> {
    items: Vec<SessionView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for SessionPage<'_> {
    const NAME: &'static str = "SessionPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<SessionView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

async fn page_of(
    state: &AppState,
    principal: &Principal,
    user: &UserId,
    query: PageQuery,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = query.into_page(settings.default_page_size, settings.max_page_size)?;
    let page: Page<SessionRecord> = state.users().list_sessions(principal, user, &page).await?;
    let view =
        SessionPage { items: page.items.iter().map(SessionView).collect(), next_cursor: page.next_cursor.as_deref() };
    Ok(axum::Json(view).into_response())
}

async fn user_sessions(
    State(state): State<AppState>,
    caller: Caller,
    PathId(user): PathId<UserId>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    page_of(&state, &caller.principal, &user, query).await
}

async fn my_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let user = caller.principal.user_id().ok_or_else(|| ApiError::forbidden("only a user has sessions"))?;
    page_of(&state, &caller.principal, &user, query).await
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<SessionId>,
    OptionalJson(body): OptionalJson<RevokeSessionBody>,
) -> Result<Response, ApiError> {
    let session = state.users().revoke_session(&caller.audited(), &id, body.reason.as_deref()).await?;
    Ok(axum::Json(SessionView(&session)).into_response())
}

async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    Json(body): Json<ChangePasswordBody>,
) -> Result<Response, ApiError> {
    let Principal::User { username, .. } = &caller.principal else {
        return Err(ApiError::forbidden("sign in as the user (an access JWT) to change its password"));
    };
    let (current, new) = (body.current_password.into_presented()?, body.new_password.into_new()?);
    state.users().change_password(username.as_str(), current, new, ip).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn request_schemas_match_their_types() {
        check_request::<RevokeSessionBody>();
        check_request::<ChangePasswordBody>();
    }
}

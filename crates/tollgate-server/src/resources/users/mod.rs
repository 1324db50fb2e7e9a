//! `/v1/users`: create, list, show, change role or email, suspend, activate, unlock, reset the password and
//! soft-delete users. The facade decides who may do what (`authz.rs`); mutations are audited with
//! the caller's address.

mod body;
mod view;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate::{Email, UserId};

use self::body::{CreateUserBody, DeleteQuery, ListUsersQuery, PatchUserBody, ResetPasswordBody, SuspendBody};
pub(crate) use self::body::{PageQuery, PresentedPassword, page_request, paging_properties};
use self::view::{UserPage, UserView};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId, Query};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The user id (usr_…)";

pub(super) fn routes() -> Routes {
    let user = |operation_id, summary| {
        Doc::new(operation_id, "users", summary)
            .bearer()
            .path_param("id", ID)
            .response::<UserView<'static>>(200, "The user")
    };
    Routes::new()
        .post(
            "/v1/users",
            Doc::new("createUser", "users", "Create a user (admins only)")
                .bearer()
                .body::<CreateUserBody>()
                .response::<UserView<'static>>(201, "Created")
                .response_headers(&["Location"])
                .problems(&[400, 403, 409, 413, 415]),
            create,
        )
        .get(
            "/v1/users",
            Doc::new("listUsers", "users", "List users, newest first (admins only)")
                .bearer()
                .query::<ListUsersQuery>()
                .response::<UserPage<'static>>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/users/{id}",
            user("getUser", "Show a user (admins: anyone; others: themselves)").problems(&[400, 404]),
            show,
        )
        .patch(
            "/v1/users/{id}",
            user("updateUser", "Change a user's role or email (admins only)")
                .describe(
                    "Their sessions and tokens act with the new role from the next request. A new email is \
                     stored lowercase and must be free in any case (409 otherwise, deleted users included). \
                     Given both, the email changes first; each change is audited on its own.",
                )
                .body::<PatchUserBody>()
                .problems(&[400, 403, 404, 409, 413, 415]),
            update,
        )
        .post(
            "/v1/users/{id}/suspend",
            user("suspendUser", "Suspend a user: their sessions and API tokens are revoked at once")
                .body::<SuspendBody>()
                .problems(&[400, 403, 404, 409, 413, 415]),
            suspend,
        )
        .post(
            "/v1/users/{id}/activate",
            user("activateUser", "Activate a suspended user (revoked tokens stay revoked)")
                .problems(&[400, 403, 404, 409]),
            activate,
        )
        .post(
            "/v1/users/{id}/unlock",
            user("unlockUser", "Clear a user's failed logins and lock").problems(&[400, 403, 404]),
            unlock,
        )
        .post(
            "/v1/users/{id}/reset-password",
            user("resetPassword", "Set a new password; the user's sessions end")
                .body::<ResetPasswordBody>()
                .problems(&[400, 403, 404, 413, 415]),
            reset_password,
        )
        .delete(
            "/v1/users/{id}",
            user("deleteUser", "Soft-delete a user: kept for the audit trail, never usable again")
                .query::<DeleteQuery>()
                .problems(&[400, 403, 404, 409]),
            delete,
        )
}

fn user_response(status: StatusCode, record: &tollgate::UserRecord) -> Response {
    (status, axum::Json(UserView(record))).into_response()
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateUserBody>,
) -> Result<Response, ApiError> {
    let (user, password) = body.into_parts()?;
    let record = state.users().create(&caller.audited(), user, password).await?;
    let mut response = user_response(StatusCode::CREATED, &record);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/users/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListUsersQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let (filter, page) = query.into_parts(settings.default_page_size, settings.max_page_size)?;
    let page = state.users().list(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(UserPage::new(&page)).into_response())
}

async fn show(State(state): State<AppState>, caller: Caller, PathId(id): PathId<UserId>) -> Result<Response, ApiError> {
    let record = state.users().show(&caller.principal, &id).await?;
    Ok(user_response(StatusCode::OK, &record))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
    Json(body): Json<PatchUserBody>,
) -> Result<Response, ApiError> {
    let email = body.email.as_deref().map(Email::parse).transpose()?;
    let caller = caller.audited();
    let mut record = None;
    if let Some(email) = email {
        record = Some(state.users().set_email(&caller, &id, email).await?);
    }
    if let Some(role) = body.role {
        record = Some(state.users().set_role(&caller, &id, role).await?);
    }
    let Some(record) = record else {
        return Err(ApiError::invalid_field("body", "give at least one of role, email"));
    };
    Ok(user_response(StatusCode::OK, &record))
}

async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
    Json(body): Json<SuspendBody>,
) -> Result<Response, ApiError> {
    let record = state.users().suspend(&caller.audited(), &id, &body.reason).await?;
    Ok(user_response(StatusCode::OK, &record))
}

async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
) -> Result<Response, ApiError> {
    let record = state.users().activate(&caller.audited(), &id).await?;
    Ok(user_response(StatusCode::OK, &record))
}

async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
) -> Result<Response, ApiError> {
    let record = state.users().unlock(&caller.audited(), &id).await?;
    Ok(user_response(StatusCode::OK, &record))
}

async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
    Json(body): Json<ResetPasswordBody>,
) -> Result<Response, ApiError> {
    let password = body.password.into_new()?;
    let record = state.users().reset_password(&caller.audited(), &id, password, body.must_change_password).await?;
    Ok(user_response(StatusCode::OK, &record))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<UserId>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, ApiError> {
    let record = state.users().delete(&caller.audited(), &id, query.reason.as_deref()).await?;
    Ok(user_response(StatusCode::OK, &record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CreateUserBody>();
        check_request::<PatchUserBody>();
        check_request::<SuspendBody>();
        check_request::<ResetPasswordBody>();
        check_request::<ListUsersQuery>();
        check_request::<DeleteQuery>();
        let now = tollgate::Timestamp::from_unix_micros(0);
        let record = tollgate::UserRecord {
            id: UserId::generate(),
            username: tollgate::Username::parse("alice").unwrap(),
            email: tollgate::Email::parse("alice@example.com").unwrap(),
            role: tollgate::Role::User,
            status: tollgate::UserStatus::Active,
            status_reason: Some("back".to_owned()),
            must_change_password: false,
            failed_logins: 0,
            locked_until: Some(now),
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            last_login_at: Some(now),
        };
        check_response(&UserView(&record));
        let page = tollgate::Page { items: vec![record], next_cursor: None };
        check_response(&UserPage::new(&page));
    }
}

//! Users (admins): the list with search and filters, creation, and per user: suspend, activate,
//! role change, unlock and password reset. Each is the `UserService` operation the API calls.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tollgate::{Email, NewUser, Operation, Password, Role, UserFilter, UserId, UserRecord, UserStatus, Username};

use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{IdAction, Query, blank, encoded, page_after};
use crate::dashboard::layout::{Section, badge, csrf_field, maybe_time, notice, page, pager, see_other, table};
use crate::dashboard::session::{Form, Session};
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /dashboard/users?q=&role=&status=&cursor=&done=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let (search, role, status) = (blank(&query.q), blank(&query.role), blank(&query.status));
    let filter = UserFilter {
        role: role
            .as_deref()
            .map(str::parse::<Role>)
            .transpose()
            .map_err(|error| ApiError::from(error.renamed("role")))?,
        status: status
            .as_deref()
            .map(str::parse::<UserStatus>)
            .transpose()
            .map_err(|error| ApiError::from(error.renamed("status")))?,
        search: search.clone(),
    };
    let page_request = page_after(&state, &query.cursor);
    let found = state.users().list(session.principal(), &filter, &page_request).await?;
    let encoded = encoded(&[("q", &search), ("role", &role), ("status", &status)]);
    let rows = html! { @for user in &found.items { (user_row(&session, user)) } };
    let body = html! {
        h1 { "Users" }
        (notice(query.done.as_deref().map(|_| "Done.")))
        form.filters method="get" action="/dashboard/users" role="search" {
            label { "Username or email contains " input type="search" name="q" value=(search.as_deref().unwrap_or_default()) maxlength="254"; }
            label { "Role " select name="role" {
                option value="" { "any" }
                @for each in Role::ALL { option value=(each.as_str()) selected[role.as_deref() == Some(each.as_str())] { (each.as_str()) } }
            } }
            label { "Status " select name="status" {
                option value="" { "any" }
                @for word in ["active", "suspended", "deleted"] { option value=(word) selected[status.as_deref() == Some(word)] { (word) } }
            } }
            button type="submit" { "Filter" }
        }
        (table("Users", &["Username", "Email", "Role", "Status", "Last login", "Actions"], rows))
        (pager("/dashboard/users", &encoded, found.next_cursor.as_deref()))
        @if session.can(Operation::CreateUser { role: Role::Viewer }) { (create_form(&session)) }
    };
    Ok(page(&session, Section::Users, "Users", body))
}

fn user_row(session: &Session, user: &UserRecord) -> Markup {
    let action = |name: &str| format!("/dashboard/users/{}/{name}", user.id);
    let locked = user.locked_until.is_some() || user.failed_logins > 0;
    html! {
        tr {
            td { (user.username.as_str()) }
            td { (user.email.as_str()) }
            td { (user.role.as_str()) }
            td { (badge(user.status.as_str())) @if locked { " " (badge("locked")) } }
            td { (maybe_time(user.last_login_at)) }
            td.actions {
                @if user.status == UserStatus::Active && session.can(Operation::ChangeUserStatus { user: user.id, status: UserStatus::Suspended }) {
                    form.inline method="post" action=(action("suspend")) data-confirm="Suspend this user? Their tokens stop working." {
                        (csrf_field(session))
                        label { span.visually-hidden { "Reason for suspending " (user.username.as_str()) } input name="reason" required maxlength="1024" placeholder="reason"; }
                        button type="submit" { "Suspend" }
                    }
                }
                @if user.status == UserStatus::Suspended && session.can(Operation::ChangeUserStatus { user: user.id, status: UserStatus::Active }) {
                    form.inline method="post" action=(action("activate")) { (csrf_field(session)) button type="submit" { "Activate" } }
                }
                @if user.status != UserStatus::Deleted && session.can(Operation::ChangeUserRole { user: user.id, role: Role::Viewer }) {
                    form.inline method="post" action=(action("role")) {
                        (csrf_field(session))
                        label { span.visually-hidden { "Role of " (user.username.as_str()) }
                            select name="role" { @for each in Role::ALL { option value=(each.as_str()) selected[each == user.role] { (each.as_str()) } } }
                        }
                        button type="submit" { "Set role" }
                    }
                }
                @if locked && session.can(Operation::UnlockUser { user: user.id }) {
                    form.inline method="post" action=(action("unlock")) { (csrf_field(session)) button type="submit" { "Unlock" } }
                }
                @if user.status != UserStatus::Deleted && session.can(Operation::ResetPassword { user: user.id }) {
                    form.inline method="post" action=(action("password")) {
                        (csrf_field(session))
                        label { span.visually-hidden { "New password for " (user.username.as_str()) }
                            input name="password" type="password" autocomplete="new-password" required minlength="12" placeholder="new password"; }
                        input type="hidden" name="must_change_password" value="true";
                        button type="submit" { "Reset password" }
                    }
                }
            }
        }
    }
}

fn create_form(session: &Session) -> Markup {
    html! {
        section #create-user {
            h2 { "Create a user" }
            form.stack method="post" action="/dashboard/users" {
                (csrf_field(session))
                label for="username" { "Username" }
                input #username name="username" required maxlength="64";
                label for="email" { "Email" }
                input #email name="email" type="email" required maxlength="254";
                label for="role" { "Role" }
                select #role name="role" { @for each in Role::ALL { option value=(each.as_str()) selected[each == Role::User] { (each.as_str()) } } }
                label for="password" { "Initial password (at least 12 characters; they must change it at first sign-in)" }
                input #password name="password" type="password" autocomplete="new-password" required minlength="12";
                button type="submit" { "Create user" }
            }
        }
    }
}

fn role(form: &Form) -> Result<Role, ApiError> {
    form.required("role")?.parse::<Role>().map_err(|error| ApiError::from(error.renamed("role")))
}

pub(crate) async fn create(State(state): State<AppState>, session: Session, form: Form) -> Result<Response, HtmlError> {
    let username = Username::parse(form.required("username")?).map_err(ApiError::from)?;
    let email = Email::parse(form.required("email")?).map_err(ApiError::from)?;
    let password = Password::new(form.raw("password").unwrap_or_default().to_owned()).map_err(ApiError::from)?;
    let mut user = NewUser::new(username, email, role(&form)?);
    user.must_change_password = true;
    state.users().create(&session.caller.audited(), user, password).await?;
    Ok(see_other(&session, "/dashboard/users?done=created"))
}

/// `POST /dashboard/users/{id}/{suspend|activate|role|unlock|password}`.
pub(crate) async fn act(
    State(state): State<AppState>,
    session: Session,
    IdAction(id, action): IdAction<UserId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let users = state.users();
    let caller = session.caller.audited();
    match action.as_str() {
        "suspend" => users.suspend(&caller, &id, form.required("reason")?).await?,
        "activate" => users.activate(&caller, &id).await?,
        "role" => users.set_role(&caller, &id, role(&form)?).await?,
        "unlock" => users.unlock(&caller, &id).await?,
        "password" => {
            let password =
                Password::new(form.raw("password").unwrap_or_default().to_owned()).map_err(ApiError::from)?;
            users.reset_password(&caller, &id, password, form.get("must_change_password") == Some("true")).await?
        }
        _ => return Err(ApiError::route_not_found().into()),
    };
    Ok(see_other(&session, &format!("/dashboard/users?done={action}")))
}

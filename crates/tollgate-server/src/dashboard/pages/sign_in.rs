//! Sign-in, the password change a flagged account must make first, and sign-out.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tollgate::{Password, SessionTokens};

use crate::dashboard::error::HtmlError;
use crate::dashboard::layout::{bare_page, hidden_csrf, secure_headers};
use crate::dashboard::session::{
    CSRF_COOKIE, Form, REFRESH_COOKIE, Session, cleared_cookies, cookie, new_csrf, session_cookies, set_cookie,
};
use crate::error::ApiError;
use crate::state::AppState;

/// How long the CSRF cookie of the sign-in form lives.
const SIGN_IN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// `GET /dashboard/login`.
pub(crate) async fn form(headers: HeaderMap) -> Result<Response, HtmlError> {
    let (csrf, set) = match cookie(&headers, CSRF_COOKIE) {
        Some(csrf) => (csrf.to_owned(), None),
        None => {
            let csrf = new_csrf()?;
            let set = set_cookie(CSRF_COOKIE, &csrf, SIGN_IN_FORM_LIFETIME, false);
            (csrf, Some(set))
        }
    };
    let mut response = sign_in_page(StatusCode::OK, &csrf, None, "");
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    Ok(response)
}

fn sign_in_page(status: StatusCode, csrf: &str, problem: Option<&str>, login: &str) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
        form.stack method="post" action="/dashboard/login" {
            (hidden_csrf(csrf))
            label for="login" { "Username or email" }
            input #login name="login" type="text" autocomplete="username" required value=(login) maxlength="254";
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required maxlength="1024";
            button type="submit" { "Sign in" }
        }
    };
    respond(status, bare_page("Sign in", body), &[])
}

fn respond(status: StatusCode, markup: Markup, cookies: &[HeaderValue]) -> Response {
    let mut response = (status, markup).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    secure_headers(&mut response);
    response
}

/// 303 to the overview with a new session's cookies and a fresh CSRF value.
fn signed_in(state: &AppState, tokens: &SessionTokens, secure: bool) -> Result<Response, HtmlError> {
    let mut cookies = session_cookies(tokens, state.tokens().clock().now(), secure);
    cookies.push(set_cookie(CSRF_COOKIE, &new_csrf()?, SIGN_IN_FORM_LIFETIME, secure));
    let mut response = respond(StatusCode::SEE_OTHER, html! {}, &cookies);
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
    Ok(response)
}

/// `POST /dashboard/login`: the login of `POST /v1/auth/login` (lockout and throttling apply).
pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, HtmlError> {
    let csrf = cookie(&headers, CSRF_COOKIE).unwrap_or_default().to_owned();
    let login = form.get("login").unwrap_or_default().to_owned();
    let password = Password::presented(form.raw("password").unwrap_or_default().to_owned()).map_err(ApiError::from)?;
    let outcome = if login.contains('@') {
        state.users().login_by_email(&login, password, form.ip).await
    } else {
        state.users().login(&login, password, form.ip).await
    };
    match outcome.map_err(ApiError::from) {
        Ok(tokens) => signed_in(&state, &tokens, form.secure),
        Err(error) if error.code() == "password_change_required" => {
            let username = if login.contains('@') { "" } else { login.as_str() };
            Ok(password_page(
                StatusCode::FORBIDDEN,
                &csrf,
                username,
                Some("Your password must be changed before you sign in."),
            ))
        }
        Err(error) if matches!(error.status().as_u16(), 400 | 401 | 403 | 429) => {
            let problem = match error.status().as_u16() {
                429 => "Too many failed sign-ins from this address: wait a few minutes and try again.",
                400 => error.detail(),
                _ => "Wrong username or password, or the account is locked or inactive.",
            };
            Ok(sign_in_page(error.status(), &csrf, Some(problem), &login))
        }
        Err(error) => Err(error.into()),
    }
}

fn password_page(status: StatusCode, csrf: &str, username: &str, problem: Option<&str>) -> Response {
    let body = html! {
        h1 { "Change your password" }
        @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
        form.stack method="post" action="/dashboard/password" {
            (hidden_csrf(csrf))
            label for="username" { "Username" }
            input #username name="username" type="text" autocomplete="username" required value=(username) maxlength="64";
            label for="current_password" { "Current password" }
            input #current_password name="current_password" type="password" autocomplete="current-password" required;
            label for="new_password" { "New password (at least 12 characters)" }
            input #new_password name="new_password" type="password" autocomplete="new-password" required minlength="12";
            label for="confirm_password" { "New password again" }
            input #confirm_password name="confirm_password" type="password" autocomplete="new-password" required minlength="12";
            button type="submit" { "Change password and sign in" }
        }
    };
    respond(status, bare_page("Change password", body), &[])
}

/// `GET /dashboard/password`: the signed-in user's own password change.
pub(crate) async fn password_form(session: Session) -> Response {
    let mut response = password_page(StatusCode::OK, session.csrf(), session.username(), None);
    for cookie in &session.set_cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// `POST /dashboard/password`: changes the password, then signs in with the new one.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, HtmlError> {
    let csrf = cookie(&headers, CSRF_COOKIE).unwrap_or_default().to_owned();
    let username = form.get("username").unwrap_or_default().to_owned();
    let outcome = async {
        let current = Password::presented(form.raw("current_password").unwrap_or_default().to_owned())
            .map_err(|error| error.renamed("current_password"))?;
        let new = form.raw("new_password").unwrap_or_default();
        if form.raw("confirm_password") != Some(new) {
            return Err(ApiError::invalid_field("confirm_password", "does not match the new password"));
        }
        let new = Password::new(new.to_owned()).map_err(|error| error.renamed("new_password"))?;
        let again = Password::presented(new.expose().to_owned())?;
        state.users().change_password(&username, current, new, form.ip).await?;
        Ok(state.users().login(&username, again, form.ip).await?)
    }
    .await;
    match outcome {
        Ok(tokens) => signed_in(&state, &tokens, form.secure),
        Err(error) if matches!(error.status().as_u16(), 400 | 401 | 403 | 429) => {
            let problem = match (error.status().as_u16(), error.field()) {
                (400, Some(_)) => error.detail().to_owned(),
                (429, _) => "Too many failed attempts from this address: wait a few minutes.".to_owned(),
                _ => "The username or current password is wrong, or the account is locked or inactive.".to_owned(),
            };
            Ok(password_page(error.status(), &csrf, &username, Some(&problem)))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /dashboard/logout`: ends the session (its refresh and access tokens) and the cookies.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, HtmlError> {
    if let Some(refresh) = cookie(&headers, REFRESH_COOKIE) {
        match state.users().logout(refresh, form.ip).await.map_err(ApiError::from) {
            Ok(_) => {}
            // An unknown or already used refresh token: the session is over anyway.
            Err(error) if error.status() == StatusCode::UNAUTHORIZED => {}
            Err(error) => return Err(error.into()),
        }
    }
    let mut response = respond(StatusCode::SEE_OTHER, html! {}, &cleared_cookies());
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/dashboard/login"));
    Ok(response)
}

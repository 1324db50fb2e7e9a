//! How a dashboard request that failed is answered: the crate's [`ApiError`] rendered as an HTML
//! page with its status, title and detail (never a rejected value), or, when the session is gone, a
//! redirect to the sign-in page.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{bare_page, secure_headers};
use super::session::cleared_cookies;
use crate::error::ApiError;

/// A refused or failed dashboard request.
#[derive(Debug)]
pub(crate) enum HtmlError {
    /// No (valid) session: sign in again.
    SignIn,
    /// What the facade or the request's parsing refused.
    Api(ApiError),
}

/// The refusal of a request without a valid session.
pub(crate) fn to_login() -> HtmlError {
    HtmlError::SignIn
}

impl From<ApiError> for HtmlError {
    fn from(error: ApiError) -> Self {
        if error.status() == StatusCode::UNAUTHORIZED { Self::SignIn } else { Self::Api(error) }
    }
}

impl From<tollgate::Error> for HtmlError {
    fn from(error: tollgate::Error) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => {
                let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard/login")]).into_response();
                for cookie in cleared_cookies() {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                secure_headers(&mut response);
                response
            }
            Self::Api(error) => {
                error.log_if_server_error();
                let status = error.status();
                let detail =
                    if status.is_server_error() { "The server failed to handle the request." } else { error.detail() };
                let body = html! {
                    h1 { (error.title()) }
                    p.problem role="alert" {
                        (detail)
                        @if let Some(field) = error.field() { " (field " code { (field) } ")" }
                    }
                    p { a href="/dashboard" { "Back to the overview" } }
                };
                let mut response = (status, bare_page(error.title(), body)).into_response();
                secure_headers(&mut response);
                response
            }
        }
    }
}

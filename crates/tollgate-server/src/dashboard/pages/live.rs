//! The live feed: the event stream of `GET /v1/events`, authenticated by the session cookie (a
//! browser's `EventSource` cannot send `Authorization`), shown as a list the script prepends to.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::auth::StreamCaller;
use crate::dashboard::error::HtmlError;
use crate::dashboard::layout::{Section, page};
use crate::dashboard::session::Session;
use crate::resources::events::every_event;
use crate::state::AppState;

/// `GET /dashboard/live`.
pub(crate) async fn page_view(session: Session) -> Response {
    let body = html! {
        h1 { "Live" }
        p { "Events as they happen: tokens created, revoked and rotated, users suspended, leases, budget thresholds, \
             quota refusals and the usage writer's health. The newest is first." }
        p #live-state role="status" { "Connecting…" }
        ol #live-feed data-live="/dashboard/live/stream" aria-live="polite" aria-label="Live events" {}
    };
    page(&session, Section::Live, "Live", body)
}

/// `GET /dashboard/live/stream`: Server-Sent Events.
pub(crate) async fn stream(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, HtmlError> {
    let set_cookies = session.set_cookies.clone();
    let caller = StreamCaller { caller: session.caller, credential: session.credential };
    let mut response = every_event(&state, caller, &headers)?.into_response();
    for cookie in set_cookies {
        response.headers_mut().append(axum::http::header::SET_COOKIE, cookie);
    }
    Ok(response)
}

//! The web dashboard at `/dashboard`: server-rendered HTML (maud templates compiled into the binary),
//! SVG charts drawn on the server, one small script for the copy button, confirmations and the live
//! feed, and no third-party asset.
//!
//! Every page and form calls the same facade operations as the JSON API with the signed-in user's
//! principal, so the facade's authorization matrix decides here too; the pages only use it to hide
//! what would be refused. Sessions and CSRF are in [`session`]; the shell and security headers in
//! [`layout`].

mod assets;
mod charts;
mod error;
mod extract;
mod layout;
mod pages;
mod session;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use session::Renewals;

use crate::state::AppState;

/// The dashboard's routes, nested under `/dashboard` by the app.
pub(crate) fn router() -> Router<AppState> {
    use pages::{access, agent, agents, audit, live, overview, sign_in, tokens, usage, users};
    Router::new()
        .route("/", get(overview::show))
        .route("/login", get(sign_in::form).post(sign_in::submit))
        .route("/password", get(sign_in::password_form).post(sign_in::change_password))
        .route("/logout", post(sign_in::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", get(tokens::show).post(tokens::update))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/tokens/{id}/rotate", post(tokens::rotate))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}/{action}", post(users::act))
        .route("/service-accounts", get(access::service_accounts).post(access::create_service_account))
        .route("/service-accounts/{id}/{action}", post(access::act_on_service_account))
        .route("/projects", get(access::projects).post(access::create_project))
        .route("/projects/{id}", get(access::project))
        .route("/projects/{id}/members", post(access::put_member))
        .route("/projects/{id}/members/{member_id}/remove", post(access::remove_member))
        .route("/limits", get(usage::limits))
        .route("/usage", get(usage::explorer))
        .route("/agents", get(agents::agents))
        .route("/agents/{id}", get(agent::show))
        .route("/agents/{id}/credentials", post(agent::create_credential))
        .route("/agents/{id}/credentials/{credential_id}/revoke", post(agent::revoke_credential))
        .route("/budgets", get(agents::budgets))
        .route("/budgets/requests/{id}/{decision}", post(agents::decide))
        .route("/provider-keys", get(agents::provider_keys))
        .route("/audit", get(audit::list))
        .route("/audit/verify", post(audit::verify))
        .route("/live", get(live::page_view))
        .route("/live/stream", get(live::stream))
        .fallback(not_found)
}

async fn not_found() -> error::HtmlError {
    crate::error::ApiError::route_not_found().into()
}

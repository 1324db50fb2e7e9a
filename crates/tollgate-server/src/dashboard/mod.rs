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
use axum::routing::{MethodRouter, get, post};

pub(crate) use session::Renewals;

use crate::state::AppState;

/// The dashboard's routes, nested under `/dashboard` by the app, and their path templates.
pub(crate) fn router() -> (Router<AppState>, Vec<&'static str>) {
    use pages::{access, agent, agents, audit, live, overview, sign_in, tokens, usage, users};
    let pages = Pages::default()
        .page("/", get(overview::show))
        .page("/login", get(sign_in::form).post(sign_in::submit))
        .page("/password", get(sign_in::password_form).post(sign_in::change_password))
        .page("/logout", post(sign_in::logout))
        .page("/assets/{name}", get(assets::serve))
        .page("/tokens", get(tokens::list).post(tokens::create))
        .page("/tokens/{id}", get(tokens::show).post(tokens::update))
        .page("/tokens/{id}/revoke", post(tokens::revoke))
        .page("/tokens/{id}/rotate", post(tokens::rotate))
        .page("/users", get(users::list).post(users::create))
        .page("/users/{id}/{action}", post(users::act))
        .page("/service-accounts", get(access::service_accounts).post(access::create_service_account))
        .page("/service-accounts/{id}/{action}", post(access::act_on_service_account))
        .page("/projects", get(access::projects).post(access::create_project))
        .page("/projects/{id}", get(access::project))
        .page("/projects/{id}/members", post(access::put_member))
        .page("/projects/{id}/members/{member_id}/remove", post(access::remove_member))
        .page("/limits", get(usage::limits))
        .page("/usage", get(usage::explorer))
        .page("/agents", get(agents::agents))
        .page("/agents/{id}", get(agent::show))
        .page("/agents/{id}/credentials", post(agent::create_credential))
        .page("/agents/{id}/credentials/{credential_id}/revoke", post(agent::revoke_credential))
        .page("/budgets", get(agents::budgets))
        .page("/budgets/requests/{id}/{decision}", post(agents::decide))
        .page("/provider-keys", get(agents::provider_keys))
        .page("/audit", get(audit::list))
        .page("/audit/verify", post(audit::verify))
        .page("/live", get(live::page_view))
        .page("/live/stream", get(live::stream));
    (pages.router.fallback(not_found), pages.templates)
}

/// The routes being registered, with their templates.
#[derive(Default)]
struct Pages {
    router: Router<AppState>,
    templates: Vec<&'static str>,
}

impl Pages {
    fn page(mut self, template: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(template, handler);
        self.templates.push(template);
        self
    }
}

async fn not_found() -> error::HtmlError {
    crate::error::ApiError::route_not_found().into()
}

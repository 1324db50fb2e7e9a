//! The HTTP resources, one module each, merged into one route table here.

mod agent_analytics;
mod agents;
mod audit;
mod auth_verify;
mod budget;
pub(crate) mod events;
mod health;
mod leaks;
mod limits;
mod me;
mod metrics;
mod openapi;
mod prices;
mod projects;
mod provider_keys;
mod rate_limits;
mod receipts;
mod reservations;
mod service_accounts;
mod sessions;
mod token_verify;
pub(crate) mod tokens;
mod traces;
mod usage;
mod usage_record;
mod user_sessions;
mod users;
mod verify_bodies;
mod verify_view;

pub(crate) use verify_bodies::VerifyBodies;

use crate::routes::Routes;

/// Every route of the control API.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(auth_verify::routes())
        .merge(token_verify::routes())
        .merge(tokens::routes())
        .merge(users::routes())
        .merge(user_sessions::routes())
        .merge(service_accounts::routes())
        .merge(projects::routes())
        .merge(sessions::routes())
        .merge(me::routes())
        .merge(audit::routes())
        .merge(leaks::routes())
        .merge(usage_record::routes())
        .merge(usage::routes())
        .merge(reservations::routes())
        .merge(receipts::routes())
        .merge(limits::routes())
        .merge(prices::routes())
        .merge(rate_limits::routes())
        .merge(agents::routes())
        .merge(provider_keys::routes())
        .merge(budget::routes())
        .merge(agent_analytics::routes())
        .merge(events::routes())
        .merge(traces::routes())
}

//! tollgate's HTTP control API (axum), and a guard layer that other axum applications add to
//! protect their own routes with tollgate tokens.
//!
//! [`app`] builds the [`App`] (the router and the layer that observes it) over an [`AppState`]; the `tollgate serve` command binds it. Errors
//! are RFC 9457 problem+json ([`ApiError`]); `GET /openapi.json` serves the document that
//! [`openapi_document`] returns. See `docs/http-api.md` for the contract.

mod app;
mod auth;
mod bootstrap;
mod dashboard;
mod error;
mod event_client;
mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod metrics;
mod observe;
mod openapi;
mod resources;
mod route_templates;
mod routes;
mod serve;
mod state;

pub use app::{App, app};
pub use auth::{TOOL_HEADER, VERIFY_SCOPE};
pub use bootstrap::admin_exists;
pub use error::{ApiError, PROBLEM_JSON};
pub use event_client::{EventClient, EventClientError, StreamEvent};
pub use guard::{GuardLayer, GuardService, VerifiedToken};
pub use openapi::openapi_document;
pub use serve::{RelaySettings, ServeOptions, housekeeping, serve};
pub use state::{AppState, ServerSettings, TrustedProxies};

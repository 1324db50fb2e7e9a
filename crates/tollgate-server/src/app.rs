//! Assembles the router: every resource's routes, the fallbacks, and the layers that apply to all.

use axum::Router;

use crate::error::ApiError;
use crate::observe::ObserveLayer;
use crate::state::AppState;

/// The control API over `state`. Serve it with `axum::serve` (with `ConnectInfo<SocketAddr>`,
/// so IP allow-lists see the client address), or drive it in tests with
/// `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let (router, _operations) = crate::resources::routes().into_parts();
    router
        .nest("/dashboard", crate::dashboard::router())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(ObserveLayer::new(state.clone()))
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

//! Assembles the app: every resource's routes, the dashboard, the fallbacks, and the layer around
//! them all that observes every request.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::response::Response;
use axum::routing::IntoMakeService;
use axum::routing::future::RouteFuture;
use tower::{Layer as _, Service};

use crate::error::ApiError;
use crate::observe::{Observe, ObserveLayer, Observed};
use crate::route_templates::{RouteTemplates, nested};
use crate::state::AppState;

/// Where the dashboard is served.
const DASHBOARD: &str = "/dashboard";

/// The control API over `state`. Serve it with `axum::serve` and
/// [`App::into_make_service_with_connect_info`] (so IP allow-lists see the client address), or
/// drive it in tests with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> App {
    let (router, templates) = routes();
    let router = router.with_state(state.clone());
    App { observed: ObserveLayer::new(state, RouteTemplates::new(templates)).layer(router) }
}

/// Every route with its fallbacks, and the routes' templates.
fn routes() -> (Router<AppState>, Vec<String>) {
    let (api, operations) = crate::resources::routes().into_parts();
    let (dashboard, pages) = crate::dashboard::router();
    let templates = operations
        .iter()
        .map(|operation| operation.path.to_owned())
        .chain(pages.iter().map(|page| nested(DASHBOARD, page)))
        .collect();
    let router =
        api.nest(DASHBOARD, dashboard).fallback(route_not_found).method_not_allowed_fallback(method_not_allowed);
    (router, templates)
}

/// The control API as a tower service: the router inside the layer that observes every request.
#[derive(Clone)]
pub struct App {
    observed: Observe<Router>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// A make-service that hands each connection's peer address to the handlers
    /// (`ConnectInfo<C>`), for `axum::serve`.
    pub fn into_make_service_with_connect_info<C>(self) -> IntoMakeServiceWithConnectInfo<Self, C> {
        axum::ServiceExt::<Request>::into_make_service_with_connect_info(self)
    }

    /// A make-service without the peer address (IP allow-lists then refuse every client).
    pub fn into_make_service(self) -> IntoMakeService<Self> {
        axum::ServiceExt::<Request>::into_make_service(self)
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<RouteFuture<Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.observed.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.observed.call(request)
    }
}

async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::MatchedPath;
    use axum::http::{HeaderValue, Method};
    use axum::middleware::{self, Next};
    use tower::ServiceExt as _;

    use super::*;
    use crate::state::ServerSettings;
    use crate::state::tests::state_over;

    const MATCHED: &str = "x-matched-template";

    async fn echo_matched(matched: MatchedPath, request: Request, next: Next) -> Response {
        let mut response = next.run(request).await;
        response.headers_mut().insert(MATCHED, HeaderValue::from_str(matched.as_str()).unwrap());
        response
    }

    /// `template` with every `{parameter}` filled in.
    fn a_path_of(template: &str) -> String {
        let segments = template.split('/').map(|segment| if segment.starts_with('{') { "p1" } else { segment });
        segments.collect::<Vec<_>>().join("/")
    }

    /// The template axum matched for `path` under any method, or `None` when it matched no route.
    async fn matched_by_the_router(router: &Router, path: &str) -> Option<String> {
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            if let Some(template) = response.headers().get(MATCHED) {
                return Some(template.to_str().unwrap().to_owned());
            }
        }
        None
    }

    #[tokio::test]
    async fn route_templates_name_every_path_as_the_router_matches_it() {
        let store = tollgate::open("sqlite::memory:").await.unwrap();
        let state = state_over(store, ServerSettings::default()).await;
        let (router, templates) = routes();
        let router = router.route_layer(middleware::from_fn(echo_matched)).with_state(state);
        let routes = RouteTemplates::new(&templates);
        assert!(templates.len() > 60, "{} templates", templates.len());
        for template in &templates {
            let path = a_path_of(template);
            let named = routes.name(routes.route_of(&path));
            assert_eq!(Some(named), matched_by_the_router(&router, &path).await.as_deref(), "{path}");
        }
        for unrouted in ["/", "/v1", "/v1/tokens/", "//v1/tokens", "/nowhere", "/dashboard/", "/dashboard/nowhere"] {
            assert_eq!(routes.route_of(unrouted), None, "{unrouted}");
            assert_eq!(matched_by_the_router(&router, unrouted).await, None, "{unrouted}");
        }
    }
}

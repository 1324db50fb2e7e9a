//! The layer every request passes: a tracing span, the handler timeout, panic recovery and the
//! metrics. It never records headers or bodies, so no credential reaches a log. A refusal of a
//! request that carries a body closes the connection (`Connection: close`), since the body may not
//! have been read.
//!
//! One hand-written layer around the whole router, rather than a stack of them, a layer the router
//! applies, or `axum::middleware::from_fn`: every layer the router applies boxes and clones each
//! route once more per request, and `from_fn` adds a boxed service and a boxed future of its own.
//! On the verify path those were a tenth of the server's work. Outside the router the matched route
//! is not known yet, so the layer names it from [`RouteTemplates`].

use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::metrics::{InFlight, RouteSeries, UNMATCHED};
use crate::route_templates::{RouteId, RouteTemplates};
use crate::state::AppState;

/// Observes every request of the service it wraps (the app's router).
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    shared: Arc<Shared>,
}

/// What every observed request reads: one reference, cloned with the service per request.
struct Shared {
    state: AppState,
    routes: RouteTemplates,
    /// The metrics of each route, by its [`RouteId`], then of requests that matched none.
    series: Vec<Arc<RouteSeries>>,
}

impl ObserveLayer {
    /// Observes requests against `state`, naming their routes from `routes`.
    pub(crate) fn new(state: AppState, routes: RouteTemplates) -> Self {
        let metrics = state.metrics();
        let series = routes.templates().chain([UNMATCHED]).map(|route| metrics.route(route)).collect();
        Self { shared: Arc::new(Shared { state, routes, series }) }
    }
}

impl Shared {
    fn series_of(&self, route: Option<RouteId>) -> &RouteSeries {
        let index = route.map_or(self.series.len() - 1, RouteId::index);
        &self.series[index]
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, shared: Arc::clone(&self.shared) }
    }
}

/// Times, limits, guards and counts one request (made by [`ObserveLayer`]).
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let Shared { state, routes, .. } = &*self.shared;
        let method = request.method().clone();
        let route = routes.route_of(request.uri().path());
        let declares_body = declares_body(request.body());
        let in_flight = state.metrics().start_request();
        // Debug level: at 50k requests/s an info span per request costs a few percent of the CPU
        // (the fmt layer formats its fields); server errors are logged at the end with their route.
        let span = tracing::debug_span!("request", method = %method, route = routes.name(route));
        tracing::trace!(parent: &span, "received");
        let deadline = tokio::time::Instant::from_std(started) + state.settings().request_timeout;
        // A layer below may run code of its own when called, not only when polled.
        let handling = match span.in_scope(|| catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))) {
            Ok(future) => Handling::Running { future },
            Err(_panic) => Handling::Panicked,
        };
        let shared = Arc::clone(&self.shared);
        let report = Report { shared, started, method, route, declares_body, in_flight, span };
        Observed { handling, deadline, timer: None, report: Some(report) }
    }
}

pin_project! {
    /// The answer of an observed request (public only as the future of [`crate::App`]).
    pub struct Observed<F> {
        #[pin]
        handling: Handling<F>,
        deadline: tokio::time::Instant,
        // Armed only when the first poll is not ready: most answers (a verify from the cache)
        // are, and registering and removing a timer entry per request was a measurable share
        // of their cost.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        // Taken when the answer is given.
        report: Option<Report>,
    }
}

pin_project! {
    #[project = HandlingProjection]
    enum Handling<F> {
        Running { #[pin] future: F },
        Panicked,
    }
}

/// How the handler ended.
enum Outcome {
    Answered(Response),
    Panicked,
    TimedOut,
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let report = this.report.as_ref().expect("an observed request is not polled after its answer");
        let outcome = match this.handling.project() {
            HandlingProjection::Panicked => Outcome::Panicked,
            HandlingProjection::Running { future } => {
                // The panic message has already gone to the panic hook; the client gets a 500 without it.
                let polled = report.span.in_scope(|| catch_unwind(AssertUnwindSafe(|| future.poll(context))));
                match polled {
                    Ok(Poll::Ready(Ok(response))) => Outcome::Answered(response),
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(_panic) => Outcome::Panicked,
                    Ok(Poll::Pending) => {
                        let deadline = *this.deadline;
                        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        ready!(timer.as_mut().poll(context));
                        Outcome::TimedOut
                    }
                }
            }
        };
        let report = this.report.take().expect("checked above");
        Poll::Ready(Ok(report.answer(outcome)))
    }
}

/// What is known of a request until it is answered.
struct Report {
    shared: Arc<Shared>,
    started: Instant,
    method: Method,
    route: Option<RouteId>,
    declares_body: bool,
    in_flight: InFlight,
    span: tracing::Span,
}

impl Report {
    /// The response to send for `outcome`, counted and logged.
    fn answer(self, outcome: Outcome) -> Response {
        let Self { shared, started, method, route, declares_body, in_flight, span } = self;
        let mut response = match outcome {
            Outcome::Answered(response) => response,
            Outcome::Panicked => span.in_scope(|| ApiError::internal("a handler panicked").into_response()),
            Outcome::TimedOut => span.in_scope(|| ApiError::timeout().into_response()),
        };
        drop(in_flight);
        let latency = started.elapsed();
        let status = response.status().as_u16();
        if declares_body && status >= 400 {
            // A refusal may come before the body is read (401, 413, 415): the unread rest would be
            // taken for the next request, so the connection ends here, and says so to pooled clients.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        shared.series_of(route).observe(&method, status, latency);
        let route = shared.routes.name(route);
        if status >= 500 {
            tracing::warn!(%method, route, status, "answered with a server error");
        } else {
            tracing::debug!(parent: &span, status, latency_us = latency.as_micros() as u64, "answered");
        }
        response
    }
}

/// Whether a request says it carries a body: a length above zero, or chunked (hyper sizes the body
/// from `Content-Length` and `Transfer-Encoding`, so no header is looked up again).
fn declares_body(body: &Body) -> bool {
    body.size_hint().exact() != Some(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;
    use crate::state::ServerSettings;
    use crate::state::tests::state_over;

    #[tokio::test]
    async fn a_handler_that_never_finishes_is_answered_503_timeout() {
        let store = tollgate::open("sqlite::memory:").await.unwrap();
        let settings = ServerSettings { request_timeout: Duration::from_millis(20), ..ServerSettings::default() };
        let state = state_over(store, settings).await;
        let router = Router::new().route("/stuck", get(std::future::pending::<()>));
        let router = ObserveLayer::new(state.clone(), RouteTemplates::new(["/stuck"])).layer(router);
        let response = router.oneshot(Request::get("/stuck").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 503);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"code\":\"timeout\""));
        let text = state.metrics().render(tollgate::CacheStats::default());
        assert!(text.contains(r#"route="/stuck",method="GET",status="503"} 1"#), "{text}");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_internal() {
        let store = tollgate::open("sqlite::memory:").await.unwrap();
        let state = state_over(store, ServerSettings::default()).await;
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let router = Router::new().route("/boom", get(boom));
        let router = ObserveLayer::new(state.clone(), RouteTemplates::new(["/boom"])).layer(router);
        let response = router.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"code\":\"internal\"") && !body.contains("handler bug"), "{body}");
    }
}

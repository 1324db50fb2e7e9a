//! The middleware every request passes: a tracing span, the handler timeout, panic recovery and
//! the metrics. It never records headers or bodies, so no credential reaches a log. A refusal of a
//! request that carries a body closes the connection (`Connection: close`), since the body may not
//! have been read. One
//! middleware rather than a stack of layers: each layer costs a boxed future per request.

use std::any::Any;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::metrics::UNMATCHED;
use crate::state::AppState;

/// Times, limits, guards and counts one request.
pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let declares_body = declares_body(request.headers());
    let metrics = state.metrics();
    let in_flight = metrics.start_request();
    // Debug level: at 50k requests/s an info span per request costs a few percent of the CPU
    // (the fmt layer formats its fields); server errors are logged below with their route.
    let span = tracing::debug_span!("request", method = %method, route);
    tracing::trace!(parent: &span, "received");
    let deadline = tokio::time::Instant::from_std(started) + state.settings().request_timeout;
    let handled = within(deadline, catching_panics(next.run(request)).instrument(span.clone()));
    let mut response = match handled.await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => span.in_scope(|| ApiError::internal("a handler panicked").into_response()),
        Err(_elapsed) => span.in_scope(|| ApiError::timeout().into_response()),
    };
    drop(in_flight);
    let latency = started.elapsed();
    let status = response.status().as_u16();
    if declares_body && status >= 400 {
        // A refusal may come before the body is read (401, 413, 415): the unread rest would be
        // taken for the next request, so the connection ends here, and says so to pooled clients.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    metrics.observe_request(route, &method, status, latency);
    if status >= 500 {
        tracing::warn!(%method, route, status, "answered with a server error");
    } else {
        tracing::debug!(parent: &span, status, latency_us = latency.as_micros() as u64, "answered");
    }
    response
}

/// Whether a request says it carries a body (a length above zero, or chunked).
fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0")
}

/// Runs `future` until `deadline` (`Err` after it), like `tokio::time::timeout_at`, but arms the
/// timer only when the first poll is not ready: most answers (a verify from the cache) are, and
/// registering and removing a timer entry per request was a measurable share of their cost.
async fn within<T>(deadline: tokio::time::Instant, future: impl Future<Output = T>) -> Result<T, Elapsed> {
    let mut future = pin!(future);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    poll_fn(|context| {
        if let Poll::Ready(output) = future.as_mut().poll(context) {
            return Poll::Ready(Ok(output));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(context).map(|()| Err(Elapsed))
    })
    .await
}

/// The handler ran past the request timeout.
struct Elapsed;

/// Runs `future`, turning a panic while polling it into `Err` (the panic message has already
/// gone to the panic hook; the client gets a 500 without it).
async fn catching_panics<T>(future: impl Future<Output = T>) -> Result<T, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    poll_fn(|context| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(context))) {
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(panic) => Poll::Ready(Err(panic)),
    })
    .await
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

    async fn state_over(store: std::sync::Arc<dyn tollgate::Store>, settings: ServerSettings) -> AppState {
        let metering = tollgate::Metering::builder(store.clone()).start().await.unwrap();
        let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[1u8; 32]).unwrap();
        let tokens = tollgate::TokenManager::builder(store, hasher).metering(metering.clone()).build();
        let keys = tollgate::JwtKeys::new("k1", &[2u8; 32]).unwrap();
        let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[1u8; 32]).unwrap();
        let users = tollgate::UserService::builder(&tokens, keys, hasher).build().unwrap();
        AppState::with_settings(tokens, users, metering, settings)
    }

    #[tokio::test]
    async fn a_handler_that_never_finishes_is_answered_503_timeout() {
        let store = tollgate::open("sqlite::memory:").await.unwrap();
        let settings = ServerSettings { request_timeout: Duration::from_millis(20), ..ServerSettings::default() };
        let state = state_over(store, settings).await;
        let router = Router::new()
            .route("/stuck", get(std::future::pending::<()>))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state.clone());
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
        let router = Router::new()
            .route("/boom", get(boom))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state.clone());
        let response = router.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"code\":\"internal\"") && !body.contains("handler bug"), "{body}");
    }
}

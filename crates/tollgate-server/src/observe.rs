//! The middleware every request passes: a tracing span, the handler timeout, and the metrics.
//! It never records headers or bodies, so no credential reaches a log.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::metrics::UNMATCHED;
use crate::state::AppState;

/// Times, limits and counts one request.
pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let metrics = state.metrics();
    let in_flight = metrics.start_request();
    let span = tracing::info_span!("request", method = %method, route);
    let response = match tokio::time::timeout(state.settings().request_timeout, next.run(request))
        .instrument(span.clone())
        .await
    {
        Ok(response) => response,
        Err(_) => {
            let _entered = span.enter();
            ApiError::timeout().into_response()
        }
    };
    drop(in_flight);
    let latency = started.elapsed();
    let status = response.status().as_u16();
    metrics.observe_request(route, &method, status, latency);
    tracing::debug!(parent: &span, status, latency_us = latency.as_micros() as u64, "answered");
    response
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

    #[tokio::test]
    async fn a_handler_that_never_finishes_is_answered_503_timeout() {
        let store = tollgate::open("sqlite::memory:").await.unwrap();
        let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[1u8; 32]).unwrap();
        let settings = ServerSettings { request_timeout: Duration::from_millis(20), ..ServerSettings::default() };
        let state = AppState::with_settings(tollgate::TokenManager::builder(store, hasher).build(), settings);
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
}

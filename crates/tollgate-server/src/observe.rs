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

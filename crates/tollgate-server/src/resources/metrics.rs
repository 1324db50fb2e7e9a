//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::routes::{Doc, Routes};
use crate::state::AppState;

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/metrics",
        Doc::new("metrics", "operations", "Prometheus metrics")
            .describe(
                "Requests by route and status, latency histograms, verify outcomes by code and the verify \
             cache's hit ratio. Unauthenticated: expose it only where your scraper can reach it.",
            )
            .response_text(200, "Prometheus text format 0.0.4", "text/plain"),
        metrics,
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics().render(state.tokens().cache_stats());
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text)
}

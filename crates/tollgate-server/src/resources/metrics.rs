//! `GET /metrics`: Prometheus text exposition.

use std::fmt::Write as _;

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
             cache's hit ratio, the usage queue (depth, accepted, written, duplicates, dead letters, failed writes, degraded), request quotas lost with crashed processes (stranded), and open live event streams. Unauthenticated: expose it only where your scraper can reach it.",
            )
            .response_text(200, "Prometheus text format 0.0.4", "text/plain"),
        metrics,
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics().render(state.tokens().cache_stats());
    let usage = state.metering().stats();
    let (limiter, limiter_local) = state.metering().rate_limiter_state();
    for (name, kind, help, value) in [
        ("tollgate_usage_queue_depth", "gauge", "Usage events accepted and not yet written.", usage.queued_events),
        ("tollgate_usage_events_accepted_total", "counter", "Usage events accepted.", usage.accepted_events),
        ("tollgate_usage_events_written_total", "counter", "Usage events written.", usage.written_events),
        ("tollgate_usage_write_failures_total", "counter", "Usage batch writes that failed.", usage.failed_writes),
        (
            "tollgate_usage_events_duplicate_total",
            "counter",
            "Usage events that repeated an event_id.",
            usage.duplicate_events,
        ),
        (
            "tollgate_usage_dead_letters_total",
            "counter",
            "Usage events the store refused (kept as dead letters).",
            usage.dead_lettered_events,
        ),
        (
            "tollgate_usage_events_refused_total",
            "counter",
            "Durable usage events answered 503 (store unavailable).",
            usage.refused_events,
        ),
        (
            "tollgate_usage_writer_degraded",
            "gauge",
            "1 while usage writes are failing.",
            u64::from(usage.degraded.is_some()),
        ),
        (
            "tollgate_rate_limiter_degraded",
            "gauge",
            "1 while the shared rate limiter (Redis) is unreachable and this node limits at its share of each policy.",
            u64::from(limiter_local),
        ),
        (
            "tollgate_rate_limit_fallback_decisions_total",
            "counter",
            "Rate-limit decisions made locally because the shared limiter did not answer.",
            limiter.fallback_decisions,
        ),
        (
            "tollgate_rate_limit_backend_errors_total",
            "counter",
            "Calls to the shared rate limiter that failed or timed out.",
            limiter.backend_errors,
        ),
        (
            "tollgate_live_subscribers",
            "gauge",
            "Open live event streams (SSE and WebSocket).",
            state.live().subscribers() as u64,
        ),
    ] {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    // A store that cannot answer leaves the gauge out rather than failing the scrape.
    if let Ok(stranded) = state.metering().stranded_units().await {
        let name = "tollgate_quota_stranded_units";
        let help = "Request-quota units lost with crashed processes, in windows not yet ended (under-admission).";
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {stranded}\n");
    }
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text)
}

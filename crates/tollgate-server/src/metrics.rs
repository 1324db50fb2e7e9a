//! A small Prometheus registry on atomics: requests by route, method and status, latency
//! histograms, verify outcomes by code and the verify cache's hit ratio. Rendered as text by
//! `GET /metrics`. Hand-written because the set is small and fixed; a metrics crate would add
//! weight for nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::Method;
use tollgate::{CacheStats, RefusalCode};

/// The statuses counted one by one; anything else is counted as `other`.
const STATUSES: [u16; 20] =
    [200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 502, 503, 504];
/// Latency bucket upper bounds in microseconds (100 µs to 10 s).
const BUCKETS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OTHER"];
/// Verify outcomes, in the order of [`outcome_index`].
const OUTCOMES: [&str; 10] = [
    "valid",
    "malformed",
    "not_found",
    "revoked",
    "expired",
    "ip_not_allowed",
    "tool_not_allowed",
    "rate_limited",
    "quota_exceeded",
    "other",
];

/// Counters and a latency histogram for one (route, method).
#[derive(Debug, Default)]
struct Series {
    statuses: [AtomicU64; STATUSES.len() + 1],
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Series {
    fn observe(&self, status: u16, latency: Duration) {
        let slot = STATUSES.iter().position(|&known| known == status).unwrap_or(STATUSES.len());
        self.statuses[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS.iter().position(|&bound| micros <= bound).unwrap_or(BUCKETS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The series of one route, by method. The layer that observes requests holds each route's
/// series, so counting a request looks nothing up.
#[derive(Debug, Default)]
pub(crate) struct RouteSeries {
    methods: [Series; METHODS.len()],
}

impl RouteSeries {
    /// Counts one finished request.
    pub(crate) fn observe(&self, method: &Method, status: u16, latency: Duration) {
        self.methods[method_index(method)].observe(status, latency);
    }
}

/// The registry. One per [`AppState`](crate::AppState).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Keyed by the matched route template (`/v1/tokens/{id}`), so the key set is bounded by the
    /// route table (unmatched paths share one key).
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
    /// Shared with the guards of the requests being handled, which outlive a borrow of the registry.
    in_flight: Arc<AtomicI64>,
    verify_outcomes: [AtomicU64; OUTCOMES.len()],
}

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

fn method_index(method: &Method) -> usize {
    METHODS.iter().position(|name| *name == method.as_str()).unwrap_or(METHODS.len() - 1)
}

fn outcome_index(outcome: Result<(), RefusalCode>) -> usize {
    match outcome {
        Ok(()) => 0,
        Err(RefusalCode::Malformed) => 1,
        Err(RefusalCode::NotFound) => 2,
        Err(RefusalCode::Revoked) => 3,
        Err(RefusalCode::Expired) => 4,
        Err(RefusalCode::IpNotAllowed) => 5,
        Err(RefusalCode::ToolNotAllowed) => 6,
        Err(RefusalCode::RateLimited) => 7,
        Err(RefusalCode::QuotaExceeded) => 8,
        Err(_) => 9,
    }
}

impl Metrics {
    /// The series of `route` (a template, or [`UNMATCHED`]), registered on first use.
    pub(crate) fn route(&self, route: &str) -> Arc<RouteSeries> {
        let mut routes = self.routes.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(routes.entry(route.to_owned()).or_default())
    }

    /// Marks a request started; the guard marks it finished when dropped.
    pub(crate) fn start_request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(&self.in_flight))
    }

    /// Counts one verify outcome (`Ok` for a valid token, else the refusal code).
    pub(crate) fn observe_verify(&self, outcome: Result<(), RefusalCode>) {
        self.verify_outcomes[outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self, cache: CacheStats) -> String {
        let mut out = String::with_capacity(4096);
        let routes = self.routes.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();

        out.push_str(
            "# HELP tollgate_http_requests_total HTTP requests answered, by route template, method and status.\n",
        );
        out.push_str("# TYPE tollgate_http_requests_total counter\n");
        for name in &names {
            for (method, series) in METHODS.iter().zip(&routes[*name].methods) {
                for (slot, counter) in series.statuses.iter().enumerate() {
                    let count = counter.load(Ordering::Relaxed);
                    if count == 0 {
                        continue;
                    }
                    let status = STATUSES.get(slot).map_or_else(|| "other".to_owned(), ToString::to_string);
                    let _ = writeln!(
                        out,
                        "tollgate_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                        escape(name)
                    );
                }
            }
        }

        out.push_str("# HELP tollgate_http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE tollgate_http_request_duration_seconds histogram\n");
        for name in &names {
            for (method, series) in METHODS.iter().zip(&routes[*name].methods) {
                let total: u64 = series.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).sum();
                if total == 0 {
                    continue;
                }
                let labels = format!("route=\"{}\",method=\"{method}\"", escape(name));
                let mut cumulative = 0;
                for (bound, bucket) in BUCKETS_MICROS.iter().zip(&series.buckets) {
                    cumulative += bucket.load(Ordering::Relaxed);
                    let seconds = *bound as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "tollgate_http_request_duration_seconds_bucket{{{labels},le=\"{seconds}\"}} {cumulative}"
                    );
                }
                let sum = series.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "tollgate_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}");
                let _ = writeln!(out, "tollgate_http_request_duration_seconds_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "tollgate_http_request_duration_seconds_count{{{labels}}} {total}");
            }
        }
        drop(routes);

        out.push_str("# HELP tollgate_http_requests_in_flight HTTP requests being handled now.\n");
        out.push_str("# TYPE tollgate_http_requests_in_flight gauge\n");
        let _ = writeln!(out, "tollgate_http_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed));

        out.push_str("# HELP tollgate_verify_total Token verifications by outcome (valid or the refusal code).\n");
        out.push_str("# TYPE tollgate_verify_total counter\n");
        for (code, counter) in OUTCOMES.iter().zip(&self.verify_outcomes) {
            let _ = writeln!(out, "tollgate_verify_total{{code=\"{code}\"}} {}", counter.load(Ordering::Relaxed));
        }

        out.push_str("# HELP tollgate_verify_cache_hits_total Verifies answered from the in-memory cache.\n");
        out.push_str("# TYPE tollgate_verify_cache_hits_total counter\n");
        let _ = writeln!(out, "tollgate_verify_cache_hits_total {}", cache.hits);
        out.push_str("# HELP tollgate_verify_cache_misses_total Verifies that went to the database.\n");
        out.push_str("# TYPE tollgate_verify_cache_misses_total counter\n");
        let _ = writeln!(out, "tollgate_verify_cache_misses_total {}", cache.misses);
        out.push_str("# HELP tollgate_verify_cache_hit_ratio Share of verifies answered from the cache since start.\n");
        out.push_str("# TYPE tollgate_verify_cache_hit_ratio gauge\n");
        let lookups = cache.hits + cache.misses;
        let ratio = if lookups == 0 { 0.0 } else { cache.hits as f64 / lookups as f64 };
        let _ = writeln!(out, "tollgate_verify_cache_hit_ratio {ratio}");
        out.push_str("# HELP tollgate_verify_cache_entries Tokens held in the verify cache.\n");
        out.push_str("# TYPE tollgate_verify_cache_entries gauge\n");
        let _ = writeln!(out, "tollgate_verify_cache_entries {}", cache.entries);
        out.push_str(
            "# HELP tollgate_verify_cache_unconfirmed_total Verifies that read through because the change follower's last look was older than its bound.\n",
        );
        out.push_str("# TYPE tollgate_verify_cache_unconfirmed_total counter\n");
        let _ = writeln!(out, "tollgate_verify_cache_unconfirmed_total {}", cache.unconfirmed);
        if let Some(age) = cache.confirmation_age {
            out.push_str(
                "# HELP tollgate_change_follower_age_seconds How old the change follower's last confirmed look at the audit log is.\n",
            );
            out.push_str("# TYPE tollgate_change_follower_age_seconds gauge\n");
            let _ = writeln!(out, "tollgate_change_follower_age_seconds {}", age.as_secs_f64());
        }
        out
    }
}

/// Decrements the in-flight gauge when the request is done (also when its future is dropped).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Escapes a label value (route templates hold no quotes, but a registry must not trust that).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let metrics = Metrics::default();
        let tokens = metrics.route("/v1/tokens");
        tokens.observe(&Method::GET, 200, Duration::from_micros(300));
        metrics.route("/v1/tokens").observe(&Method::GET, 200, Duration::from_millis(3));
        tokens.observe(&Method::POST, 418, Duration::from_secs(30));
        metrics.route("/v1/agents");
        let text = metrics.render(CacheStats::default());
        assert!(text.contains(r#"tollgate_http_requests_total{route="/v1/tokens",method="GET",status="200"} 2"#));
        assert!(text.contains(r#"tollgate_http_requests_total{route="/v1/tokens",method="POST",status="other"} 1"#));
        assert!(text.contains(r#"duration_seconds_bucket{route="/v1/tokens",method="GET",le="0.0005"} 1"#));
        assert!(text.contains(r#"duration_seconds_bucket{route="/v1/tokens",method="GET",le="0.005"} 2"#));
        assert!(text.contains(r#"duration_seconds_bucket{route="/v1/tokens",method="POST",le="+Inf"} 1"#));
        assert!(text.contains(r#"duration_seconds_count{route="/v1/tokens",method="GET"} 2"#));
        assert!(!text.contains("/v1/agents"), "a route nothing was counted on is left out");
    }

    #[test]
    fn verify_outcomes_and_cache_ratio_are_reported() {
        let metrics = Metrics::default();
        metrics.observe_verify(Ok(()));
        metrics.observe_verify(Err(RefusalCode::Revoked));
        metrics.observe_verify(Err(RefusalCode::Revoked));
        let text =
            metrics.render(CacheStats { hits: 3, misses: 1, entries: 1, unconfirmed: 0, confirmation_age: None });
        assert!(text.contains(r#"tollgate_verify_total{code="valid"} 1"#));
        assert!(text.contains(r#"tollgate_verify_total{code="revoked"} 2"#));
        assert!(text.contains("tollgate_verify_cache_hit_ratio 0.75"));
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let metrics = Metrics::default();
        let first = metrics.start_request();
        let _second = metrics.start_request();
        drop(first);
        assert!(metrics.render(CacheStats::default()).contains("tollgate_http_requests_in_flight 1\n"));
    }
}

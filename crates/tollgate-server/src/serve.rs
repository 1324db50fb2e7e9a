//! Running the control API on a socket: connection info for IP checks, a background flush of
//! batched writes, and a graceful shutdown that drains in-flight requests and flushes last.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::AppState;

/// How [`serve`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How often batched writes (`last_used_at`) are flushed (default 5 s).
    pub flush_interval: Duration,
    /// After the shutdown signal, how long in-flight requests may take to finish (default 30 s).
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { flush_interval: Duration::from_secs(5), drain_timeout: Duration::from_secs(30) }
    }
}

/// Serves [`app`](crate::app) on `listener` until `shutdown` completes. Then it stops accepting,
/// lets in-flight requests finish (up to `drain_timeout`), and flushes pending writes, so work
/// acknowledged to a client (tokens' last use, usage events answered 202) is not lost. Returns an error only when the final flush fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stopping.send(true);
    });

    let flusher = tokio::spawn(flush_periodically(state.clone(), options.flush_interval, stop.clone()));

    let mut stop_accepting = stop.clone();
    let router = crate::app(state.clone());
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop_accepting.wait_for(|stopping| *stopping).await;
        });
    let mut drain_started = stop.clone();
    let drain_deadline = async move {
        let _ = drain_started.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(options.drain_timeout).await;
    };
    tokio::select! {
        served = server.into_future() => served?,
        () = drain_deadline => tracing::warn!(timeout = ?options.drain_timeout, "drain timed out; closing open connections"),
    }

    flusher.abort();
    let _ = flusher.await;
    state.tokens().flush().await.map_err(|error| {
        tracing::error!(%error, "final flush failed");
        std::io::Error::other("the final flush failed")
    })?;
    // Every usage event answered 202 is in the queue by now (requests have drained): write them all.
    state.metering().shutdown().await.map_err(|error| {
        tracing::error!(%error, "final usage write failed");
        std::io::Error::other("the final usage write failed")
    })?;
    tracing::info!("stopped");
    Ok(())
}

async fn flush_periodically(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = state.tokens().flush().await {
                    tracing::warn!(%error, "flush failed; will retry");
                }
            }
            // The only change is to `true` (or the sender is gone): either way, stop.
            _ = stop.changed() => return,
        }
    }
}

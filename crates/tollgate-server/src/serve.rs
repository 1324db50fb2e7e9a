//! Running the control API on a socket: connection info for IP checks, a background flush of
//! batched writes, and a graceful shutdown that drains in-flight requests, then writes what is
//! queued, all within one timeout.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate::{FollowSettings, TailSettings};

use crate::state::AppState;

/// How [`serve`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How often batched writes (`last_used_at`) are flushed (default 5 s).
    pub flush_interval: Duration,
    /// After the shutdown signal, how long everything may take (default 30 s): in-flight requests
    /// get most of it, and the final writes the rest (at least a fifth).
    pub shutdown_timeout: Duration,
    /// How the live event hub is fed from the audit log and metering.
    pub live: TailSettings,
    /// How changes made by other processes and nodes reach this one's caches, and within what bound.
    pub follow: FollowSettings,
    /// Where node-local live events (metering samples) are relayed to the other nodes, if anywhere.
    pub relay: Option<RelaySettings>,
}

/// A Redis pub/sub channel that carries node-local live events between nodes.
#[derive(Clone)]
pub struct RelaySettings {
    /// The Redis URL (may hold a password: never logged, redacted in `Debug`).
    pub url: String,
    /// The channel.
    pub channel: String,
    /// This node's name on the channel (its own events are not fed back).
    pub node: String,
}

impl std::fmt::Debug for RelaySettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RelaySettings")
            .field("url", &"<redacted>")
            .field("channel", &self.channel)
            .field("node", &self.node)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            live: TailSettings::default(),
            follow: FollowSettings::default(),
            relay: None,
        }
    }
}

/// Serves [`app`](crate::app) on `listener` until `shutdown` completes. Then it stops accepting,
/// lets in-flight requests finish, and writes what is queued (tokens' last use, usage recorded in
/// the background, shadow counts, unused leased quota), all within `shutdown_timeout`. Every final
/// write is tried even when another fails; the error (and the last log line) says which failed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let follower = state.start_change_follower(options.follow).await.map_err(std::io::Error::other)?;
    let relay = match &options.relay {
        Some(relay) => Some(
            tollgate::LiveRelay::start(state.live().clone(), &relay.url, &relay.channel, &relay.node)
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let tail = state.start_relayed_live_tail(options.live, relay).await.map_err(std::io::Error::other)?;
    let (stopping, stop) = watch::channel(None::<Instant>);
    let hub = state.live().clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        // Event streams never finish by themselves: end them so the drain can.
        hub.close();
        let _ = stopping.send(Some(Instant::now()));
    });

    let flusher = tokio::spawn(flush_periodically(state.clone(), options.flush_interval, stop.clone()));
    let housekeeper = tokio::spawn(housekeeping_periodically(state.clone()));

    let mut stop_accepting = stop.clone();
    let router = crate::app(state.clone());
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop_accepting.wait_for(Option::is_some).await;
        });
    // The final writes keep at least a fifth of the timeout.
    let drain_share = options.shutdown_timeout.mul_f64(0.8);
    let mut drain_started = stop.clone();
    let drain_deadline = async move {
        let _ = drain_started.wait_for(Option::is_some).await;
        tokio::time::sleep(drain_share).await;
    };
    tokio::select! {
        served = server.into_future() => served?,
        () = drain_deadline => tracing::warn!(timeout = ?drain_share, "drain timed out; closing open connections"),
    }
    flusher.abort();
    let _ = flusher.await;
    housekeeper.abort();
    tail.stop().await;
    follower.stop().await;

    let started = (*stop.borrow()).unwrap_or_else(Instant::now);
    let left = options.shutdown_timeout.saturating_sub(started.elapsed()).max(options.shutdown_timeout / 5);
    let failures = match tokio::time::timeout(left, final_writes(&state)).await {
        Ok(failures) => failures,
        Err(_) => vec![format!("the final writes did not finish within {}s", left.as_secs_f64())],
    };
    if failures.is_empty() {
        tracing::info!("stopped; everything acknowledged is written");
        return Ok(());
    }
    let summary = failures.join("; ");
    tracing::error!(failed = %summary, "stopped with writes that could not be made");
    Err(std::io::Error::other(format!("stopped with writes that could not be made: {summary}")))
}

/// Writes last-used times and everything metering holds; each step runs whatever the other did.
async fn final_writes(state: &AppState) -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(error) = state.tokens().flush().await {
        failures.push(format!("tokens' last-used times: {error}"));
    }
    if let Err(error) = state.users().flush_login_failures(true).await {
        failures.push(format!("summaries of repeated failed logins: {error}"));
    }
    // Requests have drained: every usage event accepted is in the queue by now.
    if let Err(error) = state.metering().shutdown().await {
        failures.push(format!("usage: {error}"));
    }
    failures
}

/// Runs [`housekeeping`] at start and every ten minutes.
async fn housekeeping_periodically(state: AppState) {
    let mut ticker = tokio::time::interval(Duration::from_secs(600));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        housekeeping(&state).await;
    }
}

/// Keeps traces within their retention and total size, and deletes sessions that ended longer
/// ago than [`ServerSettings::session_retention`](crate::ServerSettings::session_retention).
/// [`serve`] runs it at start and every ten minutes; an application that serves [`crate::app`]
/// itself calls it on an interval of its own. A failure is logged, and the next call tries again.
pub async fn housekeeping(state: &AppState) {
    match state.traces().purge().await {
        Ok(purged) if purged.by_age + purged.by_size > 0 => {
            tracing::info!(by_age = purged.by_age, by_size = purged.by_size, "purged request traces");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "purging request traces failed; will retry"),
    }
    match state.users().purge_ended_sessions(state.settings().session_retention).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "deleted sessions past their retention"),
        Err(error) => tracing::warn!(%error, "deleting ended sessions failed; will retry"),
    }
}

async fn flush_periodically(state: AppState, interval: Duration, mut stop: watch::Receiver<Option<Instant>>) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = state.tokens().flush().await {
                    tracing::warn!(%error, "flush failed; will retry");
                }
                if let Err(error) = state.users().flush_login_failures(false).await {
                    tracing::warn!(%error, "writing summaries of repeated failed logins failed; will retry");
                }
            }
            // The only change is to `Some` (or the sender is gone): either way, stop.
            _ = stop.changed() => return,
        }
    }
}

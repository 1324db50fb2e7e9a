//! The write-behind queue: recording is a send on a bounded channel (callers wait when it is full,
//! so memory stays bounded); one task writes batches (events, rollups, counter changes, shadow
//! hits) in one transaction each, on size, on an interval, on `flush` and on shutdown.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tollgate_store::{Store, StoreError, UsageBatch};
use tollgate_types::{Clock, UsageEvent};

use super::prices::PriceBook;
use super::quotas::QuotaEngine;
use super::rates::RateLimits;
use crate::{Error, Result};

/// A write attempt that failed is retried after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the last write on shutdown is attempted before giving up.
const SHUTDOWN_ATTEMPTS: u32 = 5;
/// Counters whose window ended longer ago than this are deleted from the store.
const COUNTER_RETENTION: Duration = Duration::from_secs(2 * 86_400);

type Reply = oneshot::Sender<Result<(), StoreError>>;

#[derive(Debug)]
pub(crate) enum Message {
    Event(UsageEvent),
    Flush(Reply),
    Shutdown(Reply),
}

/// How the queue behaves.
#[derive(Debug, Clone)]
pub(crate) struct RecorderSettings {
    pub(crate) queue_capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) event_retention: Option<Duration>,
}

/// Counts for metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct RecorderStats {
    accepted: AtomicU64,
    written: AtomicU64,
    failed_writes: AtomicU64,
}

/// What the recorder has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MeteringStats {
    /// Events accepted by `record`.
    pub accepted_events: u64,
    /// Events written to the store.
    pub written_events: u64,
    /// Events accepted but not yet written.
    pub queued_events: u64,
    /// Batch writes that failed (and were retried).
    pub failed_writes: u64,
    /// Quota counters held in memory.
    pub live_counters: usize,
    /// Tokens the rate limiter holds state for.
    pub rate_limited_keys: usize,
}

/// The sending side, owned by [`Metering`](crate::Metering).
#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<Message>,
    closed: AtomicBool,
    stats: Arc<RecorderStats>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn shut_down() -> Error {
    Error::Unavailable("metering is shut down".to_owned())
}

impl Recorder {
    /// Starts the writer task on the current Tokio runtime.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        quotas: Arc<QuotaEngine>,
        prices: Arc<PriceBook>,
        rates: Arc<RateLimits>,
        clock: Arc<dyn Clock>,
        settings: RecorderSettings,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let stats = Arc::new(RecorderStats::default());
        let worker = Worker {
            receiver,
            store,
            quotas,
            prices,
            rates,
            clock,
            buffer: Vec::with_capacity(settings.batch_size),
            settings,
            stats: Arc::clone(&stats),
        };
        let task = tokio::spawn(worker.run());
        Self { sender, closed: AtomicBool::new(false), stats, task: Mutex::new(Some(task)) }
    }

    /// Queues one event, waiting while the queue is full.
    pub(crate) async fn send(&self, event: UsageEvent) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        self.sender.send(Message::Event(event)).await.map_err(|_| shut_down())?;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues one event if there is room now.
    pub(crate) fn try_send(&self, event: UsageEvent) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        self.sender.try_send(Message::Event(event)).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable("the usage queue is full".to_owned()),
            mpsc::error::TrySendError::Closed(_) => shut_down(),
        })?;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues events in order, waiting for room in chunks of at most the queue's capacity.
    pub(crate) async fn send_many(&self, events: Vec<UsageEvent>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        let chunk = self.sender.max_capacity();
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let wanted = events.len().min(chunk);
            let permits = self.sender.reserve_many(wanted).await.map_err(|_| shut_down())?;
            for (permit, event) in permits.zip(events.by_ref()) {
                permit.send(Message::Event(event));
            }
            self.stats.accepted.fetch_add(wanted as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits until every event queued before this call is written.
    pub(crate) async fn flush(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Flush(reply)).await.is_err() {
            return Ok(()); // the writer has stopped after writing everything (shutdown)
        }
        match done.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Ok(()),
        }
    }

    /// Refuses new events, writes everything queued, and stops the writer.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let (reply, done) = oneshot::channel();
        let result = if self.sender.send(Message::Shutdown(reply)).await.is_ok() {
            done.await.unwrap_or(Ok(())).map_err(Error::from)
        } else {
            Ok(())
        };
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }

    pub(crate) fn stats(&self, live_counters: usize, rate_limited_keys: usize) -> MeteringStats {
        let accepted = self.stats.accepted.load(Ordering::Relaxed);
        let written = self.stats.written.load(Ordering::Relaxed);
        MeteringStats {
            accepted_events: accepted,
            written_events: written,
            queued_events: accepted.saturating_sub(written),
            failed_writes: self.stats.failed_writes.load(Ordering::Relaxed),
            live_counters,
            rate_limited_keys,
        }
    }
}

struct Worker {
    receiver: mpsc::Receiver<Message>,
    store: Arc<dyn Store>,
    quotas: Arc<QuotaEngine>,
    prices: Arc<PriceBook>,
    rates: Arc<RateLimits>,
    clock: Arc<dyn Clock>,
    buffer: Vec<UsageEvent>,
    settings: RecorderSettings,
    stats: Arc<RecorderStats>,
}

impl Worker {
    async fn run(mut self) {
        let period = self.settings.flush_interval.max(Duration::from_millis(1));
        // The first tick one period from now, not at once: nothing is pending at start.
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_refresh = Instant::now() + self.settings.refresh_interval;
        // Not at once: a short-lived process (a CLI command) should not start with housekeeping.
        let mut next_maintenance = Instant::now() + self.settings.refresh_interval;
        let mut messages = Vec::with_capacity(self.settings.batch_size);
        loop {
            tokio::select! {
                received = self.receiver.recv_many(&mut messages, self.settings.batch_size) => {
                    if received == 0 {
                        // Every sender is gone: write what is left and stop.
                        let _ = self.write_on_shutdown().await;
                        return;
                    }
                    for message in messages.drain(..) {
                        if let Some(reply) = self.handle(message).await {
                            let result = self.finish().await;
                            let _ = reply.send(result);
                            return;
                        }
                    }
                }
                _ = ticker.tick() => {
                    let refresh = Instant::now() >= next_refresh;
                    if let Err(error) = self.write(refresh).await {
                        tracing::warn!(error = %error, "writing usage on the interval failed; will retry");
                    }
                    if refresh {
                        self.refresh().await;
                        next_refresh = Instant::now() + self.settings.refresh_interval;
                    }
                    if Instant::now() >= next_maintenance {
                        self.maintain().await;
                        next_maintenance = Instant::now() + Duration::from_secs(3_600);
                    }
                }
            }
        }
    }

    /// Handles one message; returns the reply of a shutdown request.
    async fn handle(&mut self, message: Message) -> Option<Reply> {
        match message {
            Message::Event(event) => {
                self.buffer.push(event);
                if self.buffer.len() >= self.settings.batch_size {
                    self.write_until_done().await;
                }
                None
            }
            Message::Flush(reply) => {
                let _ = reply.send(self.write(false).await);
                None
            }
            Message::Shutdown(reply) => Some(reply),
        }
    }

    /// Drains the queue after a shutdown request (events sent before the close are acknowledged
    /// and must be written), then writes the rest.
    async fn finish(&mut self) -> Result<(), StoreError> {
        self.receiver.close();
        let mut replies = Vec::new();
        while let Some(message) = self.receiver.recv().await {
            match message {
                Message::Event(event) => {
                    self.buffer.push(event);
                    if self.buffer.len() >= self.settings.batch_size {
                        self.write_until_done().await;
                    }
                }
                Message::Flush(reply) | Message::Shutdown(reply) => replies.push(reply),
            }
        }
        let result = self.write_on_shutdown().await;
        for reply in replies {
            let _ = reply.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|_| StoreError::backend(std::io::Error::other("usage could not be written on shutdown"))),
            );
        }
        result
    }

    /// Writes everything pending in one transaction; on failure keeps it for the next attempt.
    async fn write(&mut self, all_counters: bool) -> Result<(), StoreError> {
        let drained = self.quotas.drain(all_counters);
        if self.buffer.is_empty() && drained.deltas.is_empty() && drained.shadow_hits.is_empty() {
            return Ok(());
        }
        let batch = UsageBatch { events: &self.buffer, counters: &drained.deltas, shadow_hits: &drained.shadow_hits };
        match self.store.record_usage(batch).await {
            Ok(totals) => {
                self.quotas.written(drained, &totals, self.clock.now());
                self.stats.written.fetch_add(self.buffer.len() as u64, Ordering::Relaxed);
                self.buffer.clear();
                Ok(())
            }
            Err(error) => {
                self.quotas.restore(drained);
                self.stats.failed_writes.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Writes a full batch, retrying with backoff for as long as the store fails. Meanwhile nothing
    /// is received, so the queue fills and `record` callers wait: backpressure, not unbounded memory.
    async fn write_until_done(&mut self) {
        let mut backoff = FIRST_BACKOFF;
        while let Err(error) = self.write(false).await {
            tracing::error!(error = %error, events = self.buffer.len(), "writing usage failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn write_on_shutdown(&mut self) -> Result<(), StoreError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.write(true).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= SHUTDOWN_ATTEMPTS => {
                    tracing::error!(error = %error, lost_events = self.buffer.len(), "usage could not be written on shutdown");
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(error = %error, attempt, "writing usage on shutdown failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    }

    /// Picks up limits, rates and prices changed by other processes; drops idle rate-limit keys.
    async fn refresh(&self) {
        if let Err(error) = self.quotas.reload().await {
            tracing::warn!(error = %error, "reloading limits failed");
        }
        if let Err(error) = self.rates.reload(self.store.as_ref()).await {
            tracing::warn!(error = %error, "reloading rate limits failed");
        }
        self.rates.evict_idle();
        match self.store.prices().await {
            Ok(stored) => self.prices.apply_stored(&stored),
            Err(error) => tracing::warn!(error = %error, "reloading prices failed"),
        }
    }

    /// Deletes ended counters and, when a retention is configured, old raw events.
    async fn maintain(&self) {
        let now = self.clock.now();
        if let Err(error) = self.store.purge_counters(now.saturating_sub(COUNTER_RETENTION)).await {
            tracing::warn!(error = %error, "purging ended quota counters failed");
        }
        if let Some(retention) = self.settings.event_retention {
            match self.store.purge_usage_events(now.saturating_sub(retention)).await {
                Ok(purged) if purged > 0 => tracing::info!(purged, "purged raw usage events past retention"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "purging raw usage events failed"),
            }
        }
    }
}

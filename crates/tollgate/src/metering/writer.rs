//! The usage writer task: stores what the queue delivers in group commits.
//!
//! - A durable batch is written as soon as it arrives, with whatever else is queued by then (the
//!   queue fills while a write waits for its commit: that is the group commit). Fire-and-forget
//!   events wait up to the flush interval to share a transaction.
//! - A write the store refuses is split in halves until the events it refuses are alone; those go to
//!   the dead-letter table with the reason and everything else commits. A store that cannot write at
//!   all (`StoreError::Unavailable`) is retried with bounded backoff while `/health` reports degraded;
//!   durable callers are answered `Unavailable` after a few failed attempts instead of waiting forever.
//! - Flush and shutdown arrive on their own channel: they never wait behind a full queue, and a
//!   shutdown makes a bounded number of attempts, then says what it could not write.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tollgate_store::{DeadLetter, Store, StoreError, UsageBatch};
use tollgate_types::Clock;

use super::pending::Pending;
use super::prices::PriceBook;
use super::quotas::QuotaEngine;
use super::rates::RateLimits;
use super::recorder::{Batch, Control, RecorderSettings, RecorderStats, UsageOutcome};
use crate::{Error, Result};

/// A failed write is retried after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Failed attempts a durable batch waits through before it is answered `Unavailable`.
const DURABLE_ATTEMPTS: u32 = 5;
/// Write attempts on shutdown before what is left is reported lost.
const SHUTDOWN_ATTEMPTS: u32 = 3;
/// Batches taken from the queue per receive.
const RECEIVE_CHUNK: usize = 1_024;
/// A lease report is sent at least this often, so other processes see this one is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Counters, leases and closed reservations whose window ended longer ago than this are deleted.
const QUOTA_STATE_RETENTION: Duration = Duration::from_secs(2 * 86_400);

/// What the writer works with, besides its channels.
#[derive(Debug)]
pub(crate) struct WorkerParts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) quotas: Arc<QuotaEngine>,
    pub(crate) prices: Arc<PriceBook>,
    pub(crate) rates: Arc<RateLimits>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: RecorderSettings,
}

pub(crate) struct Worker {
    parts: WorkerParts,
    receiver: mpsc::Receiver<Batch>,
    control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<RecorderStats>,
    pending: Pending,
    /// Batches received so far.
    received: u64,
    flushes: Vec<(u64, oneshot::Sender<Result<()>>)>,
    /// While the store fails: when to try again, and the delay after that.
    retry: Option<(Instant, Duration)>,
    last_heartbeat: Instant,
}

fn reason_of(error: &StoreError) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason.chars().take(1_000).collect()
}

impl Worker {
    pub(crate) fn new(
        parts: WorkerParts,
        receiver: mpsc::Receiver<Batch>,
        control: mpsc::UnboundedReceiver<Control>,
        stats: Arc<RecorderStats>,
    ) -> Self {
        Self {
            parts,
            receiver,
            control,
            stats,
            pending: Pending::default(),
            received: 0,
            flushes: Vec::new(),
            retry: None,
            last_heartbeat: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self) {
        let period = self.parts.settings.flush_interval.max(Duration::from_millis(1));
        // The first tick one period from now, not at once: nothing is pending at start.
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let refresh_every = self.parts.settings.refresh_interval;
        let mut next_refresh = Instant::now() + refresh_every;
        // Not at once: a short-lived process (a CLI command) should not start with housekeeping.
        let mut next_maintenance = Instant::now() + refresh_every;
        let mut batches = Vec::with_capacity(RECEIVE_CHUNK);
        loop {
            let room = self.pending.len() < self.parts.settings.queue_capacity;
            let retry_at = self.retry.map(|(at, _)| at);
            let mut tick = false;
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(Control::Flush { through, reply }) => {
                        self.receive_through(through);
                        self.flushes.push((through, reply));
                    }
                    Some(Control::Shutdown { reply }) => {
                        let _ = reply.send(self.finish().await);
                        return;
                    }
                    None => {
                        let _ = self.finish().await;
                        return;
                    }
                },
                received = self.receiver.recv_many(&mut batches, RECEIVE_CHUNK), if room => {
                    if received == 0 {
                        let _ = self.finish().await;
                        return;
                    }
                    for batch in batches.drain(..) {
                        self.accept(batch);
                    }
                    self.receive_ready();
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {}
                _ = ticker.tick() => tick = true,
            }
            if self.write_due(tick) {
                self.write_pending().await;
            }
            if !self.flushes.is_empty() {
                self.write_quota_state().await;
                self.answer_flushes();
            }
            if tick {
                self.housekeeping(&mut next_refresh, &mut next_maintenance).await;
            }
        }
    }

    fn accept(&mut self, batch: Batch) {
        self.received += 1;
        self.pending.push(batch, self.received);
    }

    /// Takes what is already queued, to share the next transaction.
    fn receive_ready(&mut self) {
        let (capacity, batch_size) = (self.parts.settings.queue_capacity, self.parts.settings.batch_size);
        while self.pending.len() < capacity && self.pending.unwritten() < batch_size {
            match self.receiver.try_recv() {
                Ok(batch) => self.accept(batch),
                Err(_) => return,
            }
        }
    }

    /// Takes every batch sent before a flush (they are in the channel: `sent` counts completed sends).
    fn receive_through(&mut self, through: u64) {
        while self.received < through {
            match self.receiver.try_recv() {
                Ok(batch) => self.accept(batch),
                Err(_) => return,
            }
        }
    }

    fn write_due(&self, tick: bool) -> bool {
        if self.pending.unwritten() == 0 {
            return false;
        }
        match self.retry {
            // After a failure: at the retry time, whatever is held (background events too).
            Some((at, _)) => Instant::now() >= at,
            None => {
                tick || !self.flushes.is_empty()
                    || self.pending.has_durable()
                    || self.pending.unwritten() >= self.parts.settings.batch_size
                    // Nothing more is received while the writer holds its capacity.
                    || self.pending.len() >= self.parts.settings.queue_capacity
            }
        }
    }

    /// Writes every unwritten event, splitting what the store refuses; returns whether the store
    /// could write (`false`: it is unavailable, and the rest waits for a retry).
    async fn write_pending(&mut self) -> bool {
        let batch_size = self.parts.settings.batch_size.max(1);
        let mut stack: Vec<Range<usize>> = Vec::new();
        for run in self.pending.unwritten_runs() {
            let mut start = run.start;
            while start < run.end {
                let end = (start + batch_size).min(run.end);
                stack.push(start..end);
                start = end;
            }
        }
        stack.reverse();
        let mut failure = None;
        while let Some(range) = stack.pop() {
            let batch = UsageBatch { events: &self.pending.events[range.clone()], counters: &[], shadow_hits: &[] };
            match self.parts.store.record_usage(batch).await {
                Ok(written) => {
                    self.parts.quotas.observe(&written.totals, self.parts.clock.now());
                    for (offset, index) in range.enumerate() {
                        // The transaction committed: an outcome the store did not list is a recording.
                        let outcome = written.outcomes.get(offset).map_or(UsageOutcome::Recorded, |&o| o.into());
                        self.pending.set(index, outcome, &self.stats);
                    }
                }
                Err(error) => {
                    self.stats.failed_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if error.is_unavailable() {
                        failure = Some(error);
                        break;
                    }
                    if range.len() > 1 {
                        let middle = range.start + range.len() / 2;
                        stack.push(middle..range.end);
                        stack.push(range.start..middle);
                        continue;
                    }
                    if let Err(error) = self.dead_letter(range.start, &error).await {
                        failure = Some(error);
                        break;
                    }
                }
            }
        }
        self.pending.answer_complete(&self.stats);
        match failure {
            None => {
                if self.retry.take().is_some() {
                    tracing::info!("usage writes succeed again");
                    self.stats.set_degraded(None);
                }
                true
            }
            Some(error) => {
                let reason = reason_of(&error);
                let backoff = self.retry.map_or(FIRST_BACKOFF, |(_, backoff)| (backoff * 2).min(MAX_BACKOFF));
                tracing::error!(error = %reason, unwritten = self.pending.unwritten(), retry_in_ms = backoff.as_millis() as u64, "writing usage failed");
                self.retry = Some((Instant::now() + backoff, backoff));
                self.stats.set_degraded(Some(format!("usage writes are failing: {reason}")));
                self.pending.count_failure(
                    DURABLE_ATTEMPTS,
                    "usage could not be written: storage is unavailable",
                    &self.stats,
                );
                false
            }
        }
    }

    /// Sets one refused event aside with the reason.
    async fn dead_letter(&mut self, index: usize, error: &StoreError) -> Result<(), StoreError> {
        let event = &self.pending.events[index].event;
        let reason = reason_of(error);
        tracing::warn!(token_id = %event.token_id, reason = %reason, "a usage event was refused by the store; kept as a dead letter");
        let letter = DeadLetter { event: event.clone(), reason, failed_at: self.parts.clock.now() };
        self.parts.store.add_dead_letters(std::slice::from_ref(&letter)).await?;
        self.pending.set(index, UsageOutcome::DeadLettered, &self.stats);
        Ok(())
    }

    fn answer_flushes(&mut self) {
        let oldest = self.pending.oldest_seq();
        let received = self.received;
        let failing = self.retry.is_some();
        for (through, reply) in std::mem::take(&mut self.flushes) {
            let done = received >= through && oldest.is_none_or(|seq| seq > through);
            if done {
                let _ = reply.send(Ok(()));
            } else if failing {
                let _ = reply
                    .send(Err(Error::Unavailable("usage could not be written: storage is unavailable".to_owned())));
            } else {
                self.flushes.push((through, reply));
            }
        }
    }

    /// Writes shadow request counts and reports what was admitted from leased blocks.
    async fn write_quota_state(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        let quotas = &self.parts.quotas;
        let (counters, shadow_hits) = quotas.take_shadow();
        if !counters.is_empty() || !shadow_hits.is_empty() {
            let batch = UsageBatch { events: &[], counters: &counters, shadow_hits: &shadow_hits };
            match self.parts.store.record_usage(batch).await {
                Ok(written) => quotas.observe(&written.totals, self.parts.clock.now()),
                Err(error) => {
                    tracing::warn!(error = %reason_of(&error), "writing shadow-limit counts failed; will retry");
                    failures.push(format!("shadow-limit counts: {}", reason_of(&error)));
                    quotas.restore_shadow(counters, shadow_hits);
                }
            }
        }
        if quotas.leases.has_unreported() || self.last_heartbeat.elapsed() >= HEARTBEAT {
            match quotas.leases.report().await {
                Ok(()) => self.last_heartbeat = Instant::now(),
                Err(error) => {
                    tracing::warn!(error = %error, "reporting leased request quotas failed; will retry");
                    failures.push(format!("lease report: {error}"));
                }
            }
        }
        failures
    }

    async fn housekeeping(&mut self, next_refresh: &mut Instant, next_maintenance: &mut Instant) {
        self.write_quota_state().await;
        if Instant::now() >= *next_refresh {
            self.refresh().await;
            *next_refresh = Instant::now() + self.parts.settings.refresh_interval;
        }
        if Instant::now() >= *next_maintenance {
            self.maintain().await;
            *next_maintenance = Instant::now() + Duration::from_secs(3_600);
        }
    }

    /// Picks up limits, rates and prices changed by other processes; returns expired reservations'
    /// holds; drops idle rate-limit keys and ended windows.
    async fn refresh(&self) {
        let WorkerParts { store, quotas, prices, rates, clock, .. } = &self.parts;
        let now = clock.now();
        match store.expire_reservations(now).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "reservations expired; their holds were returned"),
            Err(error) => tracing::warn!(error = %error, "expiring reservations failed"),
        }
        if let Err(error) = super::reload_settings(store.as_ref(), quotas, rates, prices, now).await {
            tracing::warn!(error = %error, "reloading limits, rate limits and prices failed");
        }
        quotas.forget_ended(now);
        rates.evict_idle();
    }

    /// Deletes ended counters, leases and closed reservations, and, when a retention is configured,
    /// old raw events.
    async fn maintain(&self) {
        let store = &self.parts.store;
        let now = self.parts.clock.now();
        let ended = now.saturating_sub(QUOTA_STATE_RETENTION);
        if let Err(error) = store.purge_counters(ended).await {
            tracing::warn!(error = %error, "purging ended quota counters failed");
        }
        if let Err(error) = store.purge_quota_state(ended).await {
            tracing::warn!(error = %error, "purging ended leases and reservations failed");
        }
        if let Some(retention) = self.parts.settings.event_retention {
            match store.purge_usage_events(now.saturating_sub(retention)).await {
                Ok(purged) if purged > 0 => tracing::info!(purged, "purged raw usage events past retention"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "purging raw usage events failed"),
            }
        }
    }

    /// Takes what was accepted before the close, writes it (a bounded number of attempts), writes
    /// quota state and gives unused leased quota back. Every step is tried whatever the others did;
    /// the error lists what could not be written.
    async fn finish(&mut self) -> Result<()> {
        self.receiver.close();
        while let Some(batch) = self.receiver.recv().await {
            self.accept(batch);
        }
        let mut attempt = 0;
        while self.pending.unwritten() > 0 && attempt < SHUTDOWN_ATTEMPTS {
            attempt += 1;
            if !self.write_pending().await && attempt < SHUTDOWN_ATTEMPTS {
                let backoff = self.retry.map_or(FIRST_BACKOFF, |(_, backoff)| backoff);
                tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
            }
        }
        let mut failures = self.write_quota_state().await;
        if let Err(error) = self.parts.quotas.leases.stop().await {
            failures.push(format!("returning unused request quota: {error}"));
        }
        let lost = self.pending.abandon("metering stopped before the usage could be written", &self.stats);
        if lost > 0 {
            failures.insert(0, format!("{lost} usage events could not be written"));
        }
        self.answer_flushes();
        for (_, reply) in self.flushes.drain(..) {
            let _ = reply.send(Err(Error::Unavailable("metering stopped".to_owned())));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            let summary = failures.join("; ");
            tracing::error!(what = %summary, "metering stopped with writes it could not make");
            Err(Error::Unavailable(summary))
        }
    }
}

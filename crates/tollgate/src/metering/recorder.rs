//! The usage queue's sending side. Recording sends a batch of events on a bounded channel (callers
//! wait while it is full, so memory stays bounded); one task (`writer`) stores what it receives in
//! group commits and answers each durable batch once its transaction is on disk. Flush and shutdown
//! travel on a separate channel, so they never wait behind a full queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tollgate_store::{EventToRecord, RecordOutcome};

use super::writer::{Worker, WorkerParts};
use crate::{Error, Result};

/// What became of one recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageOutcome {
    /// Stored and counted against the quotas.
    Recorded,
    /// Its `event_id` was already recorded for its token: counted once, not again.
    Duplicate,
    /// It could not be stored with its batch (the store refused it); it is kept in the dead-letter
    /// table with the reason, for an operator, and counted nowhere.
    DeadLettered,
}

impl From<RecordOutcome> for UsageOutcome {
    fn from(outcome: RecordOutcome) -> Self {
        match outcome {
            RecordOutcome::Recorded => Self::Recorded,
            RecordOutcome::Duplicate => Self::Duplicate,
        }
    }
}

pub(crate) type OutcomesReply = oneshot::Sender<Result<Vec<UsageOutcome>>>;

/// Events to store; `reply` is `None` for fire-and-forget recording.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) events: Vec<EventToRecord>,
    pub(crate) reply: Option<OutcomesReply>,
}

#[derive(Debug)]
pub(crate) enum Control {
    /// Answer once every batch up to the `through`-th sent is written.
    Flush { through: u64, reply: oneshot::Sender<Result<()>> },
    /// Stop receiving, write what was accepted, give unused quota leases back, and stop.
    Shutdown { reply: oneshot::Sender<Result<()>> },
}

/// How the queue behaves.
#[derive(Debug, Clone)]
pub(crate) struct RecorderSettings {
    /// Events held (queued or waiting for a retry) before senders wait.
    pub(crate) queue_capacity: usize,
    /// Events per transaction at most.
    pub(crate) batch_size: usize,
    /// How long fire-and-forget events wait to share a transaction, and how often shadow counts
    /// and lease reports are written.
    pub(crate) flush_interval: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) event_retention: Option<Duration>,
}

/// Counts for metrics and health, shared with the writer task.
#[derive(Debug, Default)]
pub(crate) struct RecorderStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) failed_writes: AtomicU64,
    pub(crate) refused: AtomicU64,
    /// Why the writer is failing now (`None` while it is healthy).
    pub(crate) degraded: Mutex<Option<String>>,
}

impl RecorderStats {
    pub(crate) fn set_degraded(&self, reason: Option<String>) {
        *self.degraded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }
}

/// What the recorder has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeteringStats {
    /// Events accepted by `record` and its variants.
    pub accepted_events: u64,
    /// Events stored (new ones; duplicates and dead letters are counted apart).
    pub written_events: u64,
    /// Events that repeated an `event_id` and were not counted again.
    pub duplicate_events: u64,
    /// Events set aside in the dead-letter table by this process.
    pub dead_lettered_events: u64,
    /// Events accepted and not yet written.
    pub queued_events: u64,
    /// Batch writes that failed (split to find the bad events, or retried).
    pub failed_writes: u64,
    /// Durable batches answered `Unavailable` because the store kept failing (not acknowledged;
    /// the client may retry them, safely when they carry event ids).
    pub refused_events: u64,
    /// Why the usage writer is failing, while it is.
    pub degraded: Option<String>,
    /// Quota counters held in memory.
    pub live_counters: usize,
    /// Tokens the rate limiter holds state for.
    pub rate_limited_keys: usize,
}

/// The sending side, owned by [`Metering`](crate::Metering).
#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<Batch>,
    control: mpsc::UnboundedSender<Control>,
    /// Batches sent so far (a flush waits for the ones sent before it).
    sent: AtomicU64,
    closed: AtomicBool,
    stats: Arc<RecorderStats>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn shut_down() -> Error {
    Error::Unavailable("metering is shut down".to_owned())
}

impl Recorder {
    /// Starts the writer task on the current Tokio runtime.
    pub(crate) fn start(parts: WorkerParts) -> Self {
        let (sender, receiver) = mpsc::channel(parts.settings.queue_capacity.max(1));
        let (control, control_receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(RecorderStats::default());
        let task = tokio::spawn(Worker::new(parts, receiver, control_receiver, Arc::clone(&stats)).run());
        Self {
            sender,
            control,
            sent: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            stats,
            task: Mutex::new(Some(task)),
        }
    }

    async fn send(&self, batch: Batch) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        let events = batch.events.len() as u64;
        self.sender.send(batch).await.map_err(|_| shut_down())?;
        self.sent.fetch_add(1, Ordering::AcqRel);
        self.stats.accepted.fetch_add(events, Ordering::Relaxed);
        Ok(())
    }

    /// Stores `events` and answers once their transaction is on disk, one outcome per event.
    pub(crate) async fn record(&self, events: Vec<EventToRecord>) -> Result<Vec<UsageOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, outcomes) = oneshot::channel();
        self.send(Batch { events, reply: Some(reply) }).await?;
        outcomes
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("metering stopped before the usage was written".to_owned())))
    }

    /// Queues `events` without waiting for their write (they are written within the flush interval).
    pub(crate) async fn record_background(&self, events: Vec<EventToRecord>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.send(Batch { events, reply: None }).await
    }

    /// Waits until every batch sent before this call is written.
    pub(crate) async fn flush(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        let through = self.sent.load(Ordering::Acquire);
        if self.control.send(Control::Flush { through, reply }).is_err() {
            return Ok(()); // the writer has stopped after writing everything (shutdown)
        }
        done.await.unwrap_or(Ok(()))
    }

    /// Refuses new events, writes everything accepted, gives leased quota back, and stops the writer.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let (reply, done) = oneshot::channel();
        let result =
            if self.control.send(Control::Shutdown { reply }).is_ok() { done.await.unwrap_or(Ok(())) } else { Ok(()) };
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        result
    }

    /// Why the usage writer is failing, while it is.
    pub(crate) fn degraded(&self) -> Option<String> {
        self.stats.degraded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn stats(&self, live_counters: usize, rate_limited_keys: usize) -> MeteringStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let accepted = load(&self.stats.accepted);
        let settled = load(&self.stats.written)
            + load(&self.stats.duplicates)
            + load(&self.stats.dead_letters)
            + load(&self.stats.refused);
        MeteringStats {
            accepted_events: accepted,
            written_events: load(&self.stats.written),
            duplicate_events: load(&self.stats.duplicates),
            dead_lettered_events: load(&self.stats.dead_letters),
            queued_events: accepted.saturating_sub(settled),
            failed_writes: load(&self.stats.failed_writes),
            refused_events: load(&self.stats.refused),
            degraded: self.degraded(),
            live_counters,
            rate_limited_keys,
        }
    }
}

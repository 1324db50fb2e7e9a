//! The one writer: a dedicated thread that owns the write connection and commits in groups.
//!
//! Every write is a job: a closure that runs inside a transaction on the writer thread. The thread
//! takes every job that is waiting, runs each in its own savepoint (a failing job is rolled back
//! alone), commits once (`synchronous=FULL`: the commit is on disk before it returns) and only then
//! answers every job of the group. Concurrent writers therefore share one fsync: durability costs
//! a commit's latency, not throughput. Nothing is acknowledged before its commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;
use tollgate_store::{Result, StoreError};

use crate::audit::AuditHead;
use crate::error::SqliteResultExt;
use crate::syncer::{Committed, Syncer};

/// The most jobs committed together (a bound on one transaction's size and latency).
const MAX_GROUP: usize = 4_096;

/// What a job sees: the connection, inside the group's transaction and the job's own savepoint,
/// and the chain head of the audit log as of the previous append.
pub(crate) struct Tx<'c> {
    pub(crate) connection: &'c Connection,
    pub(crate) audit_head: &'c mut AuditHead,
}

/// A job with its reply: it runs in the transaction, then learns whether the commit succeeded.
trait Job: Send {
    /// Whether the job runs alone, outside any transaction (migrations, checkpoints, backups).
    fn exclusive(&self) -> bool;
    /// Runs the work; `false` when it failed (its savepoint is then rolled back).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answers the caller once the group's commit has succeeded or failed.
    fn finish(self: Box<Self>, committed: std::result::Result<(), &str>);
}

struct Typed<T, F> {
    exclusive: bool,
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
{
    fn exclusive(&self) -> bool {
        self.exclusive
    }

    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(work) = self.work.take() else { return false };
        let outcome = match catch_unwind(AssertUnwindSafe(|| work(tx))) {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::backend(std::io::Error::other("a storage write panicked"))),
        };
        let kept = outcome.is_ok();
        self.outcome = Some(outcome);
        kept
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), &str>) {
        let result = match (self.outcome, committed) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(reason)) => Err(commit_failed(reason)),
            (None, Ok(())) => Err(commit_failed("the write was not run")),
        };
        let _ = self.reply.send(result);
    }
}

fn commit_failed(reason: &str) -> StoreError {
    StoreError::unavailable(std::io::Error::other(format!("commit failed: {reason}")))
}

fn writer_gone() -> StoreError {
    StoreError::unavailable(std::io::Error::other("the database writer has stopped"))
}

/// Counts for metrics.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    pub(crate) commits: AtomicU64,
    pub(crate) jobs: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
}

/// The handle to the writer thread. Dropping the last handle stops the thread after the queued jobs.
pub(crate) struct Writer {
    sender: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<WriterStats>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("commits", &self.stats.commits.load(Ordering::Relaxed)).finish()
    }
}

impl Writer {
    /// Starts the thread that owns `connection`. `window` is how long a group waits for more jobs
    /// after its first one (zero: only what is already queued, which is what arrives during a commit).
    /// With a `syncer`, commits are answered once it has flushed them; without one, at once.
    pub(crate) fn start(connection: Connection, window: Duration, syncer: Option<Arc<Syncer>>) -> Result<Self> {
        let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("tollgate-sqlite-writer".to_owned())
            .spawn(move || {
                let writer = Thread { connection, syncer, stats: thread_stats, audit_head: AuditHead::Unknown };
                writer.run(&receiver, window);
            })
            .map_err(StoreError::backend)?;
        Ok(Self { sender: Mutex::new(Some(sender)), thread: Mutex::new(Some(thread)), stats })
    }

    /// Runs `work` in the next group's transaction and answers after its commit is on disk.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.submit(false, work).await
    }

    /// Runs `work` on the writer connection between groups, outside any transaction: for work
    /// that manages its own transactions or cannot run inside one (migrations, checkpoints).
    pub(crate) async fn exclusive<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, move |tx: &mut Tx<'_>| work(tx.connection)).await
    }

    async fn submit<T, F>(&self, exclusive: bool, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed { exclusive, work: Some(work), outcome: None, reply });
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(writer_gone)?;
        sender.send(job).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Stops taking jobs, lets the thread finish the queued ones and waits for it (blocking).
    pub(crate) fn stop(&self) {
        self.sender.lock().unwrap_or_else(PoisonError::into_inner).take();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    pub(crate) fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish the queued jobs and exit.
        self.stop();
    }
}

/// The writer thread's state.
struct Thread {
    connection: Connection,
    syncer: Option<Arc<Syncer>>,
    stats: Arc<WriterStats>,
    audit_head: AuditHead,
}

impl Thread {
    fn run(mut self, receiver: &mpsc::Receiver<Box<dyn Job>>, window: Duration) {
        let mut carried: Option<Box<dyn Job>> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match receiver.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            if first.exclusive() {
                self.run_exclusive(first);
                continue;
            }
            let mut group = vec![first];
            let deadline = Instant::now() + window;
            while group.len() < MAX_GROUP {
                let next = match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => receiver.recv_timeout(left).ok(),
                    _ => receiver.try_recv().ok(),
                };
                match next {
                    Some(job) if job.exclusive() => {
                        carried = Some(job);
                        break;
                    }
                    Some(job) => group.push(job),
                    None => break,
                }
            }
            if let Some(committed) = self.commit_group(group) {
                // More work waiting: let the syncer flush while the writer goes on. Nothing waiting:
                // flush here, one thread wake-up sooner.
                carried = receiver.try_recv().ok();
                self.answer(committed, carried.is_none());
            }
        }
    }

    /// Answers jobs whose work is committed once it is flushed (here when `inline`, else by the
    /// syncer's thread), or at once without a syncer.
    fn answer(&self, group: Vec<Box<dyn Job>>, inline: bool) {
        let finish: Committed = Box::new(move |flushed| {
            for job in group {
                job.finish(flushed);
            }
        });
        match &self.syncer {
            Some(syncer) if inline => syncer.flush_now(finish),
            Some(syncer) => syncer.after_flush(finish),
            None => finish(Ok(())),
        }
    }

    fn refuse(group: Vec<Box<dyn Job>>, reason: &str) {
        for job in group {
            job.finish(Err(reason));
        }
    }

    /// Answers jobs that ran and failed, with their own errors.
    fn refuse_with_outcome(group: Vec<Box<dyn Job>>) {
        for job in group {
            job.finish(Ok(()));
        }
    }

    fn flush_failed(&self) -> bool {
        self.syncer.as_ref().is_some_and(|syncer| syncer.failed())
    }

    fn run_exclusive(&mut self, mut job: Box<dyn Job>) {
        if self.flush_failed() {
            return Self::refuse(vec![job], FLUSH_FAILED);
        }
        // Whatever it did to the audit log is read again by the next append.
        self.audit_head = AuditHead::Unknown;
        job.run(&mut Tx { connection: &self.connection, audit_head: &mut self.audit_head });
        self.audit_head = AuditHead::Unknown;
        self.answer(vec![job], true);
    }

    /// Runs a group in one transaction; returns it when committed (to be answered once flushed),
    /// `None` when it was answered with an error.
    fn commit_group(&mut self, mut group: Vec<Box<dyn Job>>) -> Option<Vec<Box<dyn Job>>> {
        self.stats.jobs.fetch_add(group.len() as u64, Ordering::Relaxed);
        if self.flush_failed() {
            Self::refuse(group, FLUSH_FAILED);
            return None;
        }
        if let Err(error) = control(&self.connection, "BEGIN IMMEDIATE").store() {
            tracing::error!(error = %error, jobs = group.len(), "could not start a write transaction");
            self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            Self::refuse(group, &error.to_string());
            return None;
        }
        // Another process may have appended to the audit log since our last transaction: the first
        // append of the group reads the head again, under the write lock just taken.
        self.audit_head = AuditHead::Unknown;
        if let [job] = group.as_mut_slice() {
            // Alone in its group, a job needs no savepoint (every page it touches would be copied to
            // the statement journal for one): when it fails, the whole transaction is its own.
            if !job.run(&mut Tx { connection: &self.connection, audit_head: &mut self.audit_head }) {
                let _ = control(&self.connection, "ROLLBACK");
                self.audit_head = AuditHead::Unknown;
                // Nothing was committed: the job's own error answers it at once.
                Self::refuse_with_outcome(group);
                return None;
            }
        } else {
            for job in &mut group {
                run_in_savepoint(&self.connection, job.as_mut(), &mut self.audit_head);
            }
        }
        match control(&self.connection, "COMMIT").store() {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                Some(group)
            }
            Err(error) => {
                tracing::error!(error = %error, jobs = group.len(), "commit failed; the group is rolled back");
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                let _ = control(&self.connection, "ROLLBACK");
                self.audit_head = AuditHead::Unknown;
                Self::refuse(group, &error.to_string());
                None
            }
        }
    }
}

const FLUSH_FAILED: &str = "an earlier flush of the database to disk failed; restart tollgate";

fn run_in_savepoint(connection: &Connection, job: &mut dyn Job, audit_head: &mut AuditHead) {
    // Without a savepoint a failure could not be undone alone: the job is not run, and its
    // empty outcome answers it with an error.
    if control(connection, "SAVEPOINT job").is_err() {
        return;
    }
    let head_before = audit_head.clone();
    let kept = job.run(&mut Tx { connection, audit_head });
    if !kept {
        let _ = control(connection, "ROLLBACK TO job");
        *audit_head = head_before;
    }
    let _ = control(connection, "RELEASE job");
}

/// A transaction-control statement, prepared once per connection.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

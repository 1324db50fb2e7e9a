//! Durability off the writer's thread: the writer commits with `synchronous=NORMAL` (the commit is
//! written to the WAL but not flushed) and hands the committed group here; this thread flushes the
//! WAL file with `fdatasync` and only then answers the group's jobs.
//!
//! While one flush is in flight the writer already commits the next groups, and one flush then
//! covers all of them: the same guarantee as `synchronous=FULL` (nothing is acknowledged before
//! its commit is on disk, and SQLite's WAL recovery keeps every commit whose frames were flushed)
//! without the writer waiting for the disk between groups. Commits become visible to readers when
//! written, a flush before they are acknowledged; only a power failure in between can take back a
//! write someone read, never one that was acknowledged.
//!
//! An `fdatasync` that fails leaves the file's state unknown (the kernel may have dropped the
//! dirty pages), so the syncer answers with an error and every later write is refused until the
//! process restarts and SQLite recovers from what is really on disk.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use tollgate_store::{Result, StoreError};

/// What the syncer answers once the flush is done: the jobs of one committed group.
pub(crate) type Committed = Box<dyn FnOnce(std::result::Result<(), &str>) + Send>;

/// The handle to the syncing thread.
pub(crate) struct Syncer {
    sender: Mutex<Option<mpsc::Sender<Committed>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<AtomicBool>,
    /// The writer's own handle, for flushing on its thread when nothing else waits.
    inline: Mutex<WalFile>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("failed", &self.failed.load(Ordering::Relaxed)).finish()
    }
}

impl Syncer {
    /// Starts flushing the WAL of the database at `database`.
    pub(crate) fn start(database: &Path) -> Result<Self> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let wal = WalFile { path: PathBuf::from(wal), file: None };
        let inline = Mutex::new(WalFile { path: wal.path.clone(), file: None });
        let (sender, receiver) = mpsc::channel::<Committed>();
        let failed = Arc::new(AtomicBool::new(false));
        let thread_failed = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("tollgate-sqlite-sync".to_owned())
            .spawn(move || run(wal, &receiver, &thread_failed))
            .map_err(StoreError::backend)?;
        Ok(Self { sender: Mutex::new(Some(sender)), thread: Mutex::new(Some(thread)), failed, inline })
    }

    /// Whether a flush has failed (every later write is refused).
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Flushes on the caller's thread and answers `committed`: for a writer with nothing else to do,
    /// a hand-off to this thread would only add a thread wake-up to the commit's latency.
    pub(crate) fn flush_now(&self, committed: Committed) {
        let mut wal = self.inline.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = flush(&mut wal, &self.failed);
        drop(wal);
        committed(outcome.as_ref().map(|_| ()).map_err(String::as_str));
    }

    /// Queues a committed group to be answered after the next flush. Answers it with an error at
    /// once when the syncer has stopped.
    pub(crate) fn after_flush(&self, committed: Committed) {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match sender {
            Some(sender) => {
                if let Err(mpsc::SendError(committed)) = sender.send(committed) {
                    committed(Err("the database syncer has stopped"));
                }
            }
            None => committed(Err("the database syncer has stopped")),
        }
    }

    /// Flushes what is queued, answers it and stops the thread (blocking).
    pub(crate) fn stop(&self) {
        self.sender.lock().unwrap_or_else(PoisonError::into_inner).take();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The WAL file, opened on first use and again whenever the path names another file (SQLite
/// deletes the WAL when the last connection closes; a new one must be the one flushed).
struct WalFile {
    path: PathBuf,
    file: Option<File>,
}

impl WalFile {
    fn flush(&mut self) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.path)?;
        let same = match &self.file {
            Some(file) => file.metadata().is_ok_and(|open| open.ino() == current.ino() && open.dev() == current.dev()),
            None => false,
        };
        if !same {
            self.file = Some(File::open(&self.path)?);
        }
        match &self.file {
            Some(file) => file.sync_data(),
            None => Err(std::io::Error::other("the WAL file is not open")),
        }
    }
}

fn run(mut wal: WalFile, receiver: &mpsc::Receiver<Committed>, failed: &AtomicBool) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = vec![first];
        waiting.extend(receiver.try_iter());
        let outcome = flush(&mut wal, failed);
        for committed in waiting {
            committed(outcome.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// One flush, recording a failure for good.
fn flush(wal: &mut WalFile, failed: &AtomicBool) -> std::result::Result<(), String> {
    if failed.load(Ordering::Acquire) {
        return Err("an earlier flush of the database failed; restart tollgate".to_owned());
    }
    wal.flush().map_err(|error| {
        failed.store(true, Ordering::Release);
        tracing::error!(error = %error, "flushing the database to disk failed; refusing every further write");
        format!("flushing the database to disk failed: {error}")
    })
}

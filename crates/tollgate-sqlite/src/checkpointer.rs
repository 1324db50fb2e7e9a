//! Checkpoints off the writer's thread: the writer's connection never checkpoints (its automatic
//! checkpoint is off), so a commit never pays for copying the WAL back into the database file and
//! fsyncing it; this thread does that on its own connection, in PASSIVE mode, which never blocks the
//! writer or a reader.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tollgate_store::{Result, StoreError};

use crate::error::SqliteResultExt;
use crate::writer::WriterStats;

/// How often the thread looks whether there is anything to checkpoint.
const INTERVAL: Duration = Duration::from_millis(200);

/// The handle to the checkpointing thread; stopping it runs one last checkpoint.
pub(crate) struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` whenever the writer has committed since the last time.
    pub(crate) fn start(path: &Path, writer: Arc<WriterStats>) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).store()?;
        connection.busy_timeout(Duration::from_secs(1)).store()?;
        // NORMAL checkpoints still flush the WAL before copying it and the database after.
        connection.pragma_update(None, "synchronous", "NORMAL").store()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tollgate-sqlite-checkpoint".to_owned())
            .spawn(move || run(&connection, &stopped, &writer))
            .map_err(StoreError::backend)?;
        Ok(Self { stop: Mutex::new(Some(stop)), thread: Mutex::new(Some(thread)) })
    }

    /// Stops the thread after a last checkpoint (blocking).
    pub(crate) fn stop(&self) {
        self.stop.lock().unwrap_or_else(PoisonError::into_inner).take();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(connection: &Connection, stopped: &mpsc::Receiver<()>, writer: &WriterStats) {
    let mut checkpointed_at = 0;
    loop {
        let last_round = match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let commits = writer.commits.load(Ordering::Relaxed);
        if commits != checkpointed_at || last_round {
            // PASSIVE copies what no reader still needs and never waits; what it leaves is taken next time.
            match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                Ok(()) => checkpointed_at = commits,
                Err(error) => tracing::warn!(error = %error, "checkpointing the WAL failed; will retry"),
            }
        }
        if last_round {
            return;
        }
    }
}

//! Read-only connections to the database file, pooled.
//!
//! Point lookups (a token by hash, a user by id) take a few microseconds on an indexed B-tree, so
//! they run right on the calling task: handing them to another thread would cost ten times the
//! lookup. WAL readers never wait for the writer, so the executor thread is held only for the
//! lookup itself. Scans (lists, reports, the audit chain) run on Tokio's blocking pool instead.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tollgate_store::{Result, StoreError};

use crate::error::SqliteResultExt;

/// How much of the file each reader maps (address space, not memory: pages are the OS page cache's).
pub(crate) const MMAP_BYTES: i64 = 256 << 20;
/// Prepared statements kept per connection.
pub(crate) const STATEMENT_CACHE: usize = 256;

/// A small pool of read-only connections to one database file.
pub(crate) struct ReaderPool {
    path: Box<Path>,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool").field("path", &self.path).field("max_idle", &self.max_idle).finish()
    }
}

impl ReaderPool {
    /// Opens one connection at once, so a file that cannot be read fails at open, not at the first read.
    pub(crate) fn open(path: &Path, busy_timeout: Duration, max_idle: usize) -> Result<Self> {
        let pool = Self { path: path.into(), busy_timeout, idle: Mutex::new(Vec::new()), max_idle: max_idle.max(1) };
        let first = pool.connect()?;
        pool.give_back(first);
        Ok(pool)
    }

    fn connect(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags).store()?;
        connection.busy_timeout(self.busy_timeout).store()?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Pages read through a memory map cost no read(2) each: a point lookup touches about six.
        connection.pragma_update(None, "mmap_size", MMAP_BYTES).store()?;
        Ok(connection)
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => self.connect(),
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    /// Runs `read` on a pooled connection on this thread.
    pub(crate) fn with<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let connection = self.take()?;
        let outcome = read(&connection);
        // A connection that failed for a backend reason is dropped rather than reused.
        if !matches!(outcome, Err(StoreError::Backend(_) | StoreError::Unavailable(_))) {
            self.give_back(connection);
        }
        outcome
    }

    /// Runs `read` on a pooled connection on Tokio's blocking pool.
    pub(crate) async fn scan<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.with(read))
            .await
            .map_err(|_| StoreError::backend(std::io::Error::other("a storage read panicked")))?
    }
}

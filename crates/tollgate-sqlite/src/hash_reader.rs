//! The verify hot path's read: a token by the hash of its secret, on synchronous rusqlite connections.
//!
//! sqlx runs every SQLite statement on a worker thread and hands the result back through a channel;
//! on a small VM those two thread wake-ups cost 100–150 µs, ten times the lookup itself. A point
//! lookup on the unique hash index takes a few microseconds, so it runs right on the calling task:
//! that blocks the executor thread for about as long as a cache-missing HMAC does, and never on a
//! lock, because WAL readers do not wait for the writer. Everything else stays on sqlx.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tollgate_store::{Result, StoreError, TokenLookup};
use tollgate_types::{Timestamp, TokenHash};

use crate::tokens::{BY_HASH, lookup_from_row};

/// How much of the file each reader maps (address space, not memory: pages are the OS page cache's).
const MMAP_BYTES: i64 = 256 << 20;

/// A small pool of read-only connections to one database file.
pub(crate) struct HashReader {
    path: Box<Path>,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl std::fmt::Debug for HashReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashReader").field("path", &self.path).field("max_idle", &self.max_idle).finish()
    }
}

impl HashReader {
    /// Opens one connection at once, so a file that cannot be read fails at open, not at the first verify.
    pub(crate) fn open(path: &Path, busy_timeout: Duration, max_idle: usize) -> Result<Self> {
        let reader = Self { path: path.into(), busy_timeout, idle: Mutex::new(Vec::new()), max_idle: max_idle.max(1) };
        let first = reader.connect()?;
        reader.give_back(first);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags).map_err(StoreError::backend)?;
        connection.busy_timeout(self.busy_timeout).map_err(StoreError::backend)?;
        // Pages read through a memory map cost no read(2) each: the lookup touches about six.
        connection.pragma_update(None, "mmap_size", MMAP_BYTES).map_err(StoreError::backend)?;
        Ok(connection)
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => self.connect(),
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    /// The token whose current secret hashes to `hash`, or whose previous one does and is still in grace at `now`.
    pub(crate) fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>> {
        let connection = self.take()?;
        let found = Self::query(&connection, hash, now);
        // A connection that failed is dropped rather than reused: the next call opens a fresh one.
        if found.is_ok() {
            self.give_back(connection);
        }
        found
    }

    fn query(connection: &Connection, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>> {
        let mut statement = connection.prepare_cached(BY_HASH).map_err(StoreError::backend)?;
        let mut rows = statement
            .query(rusqlite::params![hash.as_bytes().as_slice(), now.unix_micros()])
            .map_err(StoreError::backend)?;
        match rows.next().map_err(StoreError::backend)? {
            Some(row) => lookup_from_row(row).map(Some),
            None => Ok(None),
        }
    }
}

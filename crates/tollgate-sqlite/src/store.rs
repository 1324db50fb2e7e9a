//! Opening a SQLite database: connection settings, the writer thread, the readers, migrations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tollgate_store::{StoreAdmin, StoreError};
use tollgate_types::{Clock, SystemClock};

use crate::checkpointer::Checkpointer;
use crate::error::SqliteResultExt;
use crate::migrate::{self, AppliedMigration};
use crate::readers::{MMAP_BYTES, ReaderPool, STATEMENT_CACHE};
use crate::syncer::Syncer;
use crate::writer::{Tx, Writer};

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// On disk: every commit is fsync'd before it is acknowledged (`synchronous=FULL`). The default;
    /// nothing acknowledged is lost on a crash or a power failure.
    #[default]
    Full,
    /// Written to the operating system only (`synchronous=NORMAL`): survives a crash of the process,
    /// not a power failure. For benchmarks that measure what durability costs.
    ProcessCrashOnly,
}

impl Durability {
    /// The writer's `synchronous` setting once open. Commits are flushed by the syncer's thread
    /// (see `syncer`) rather than by SQLite inside `COMMIT`, so the writer never waits for the disk.
    const WRITER_SYNCHRONOUS: &'static str = "NORMAL";
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How many read connections are kept open.
    pub readers: u32,
    /// How long a connection waits for a lock held by another process before giving up.
    pub busy_timeout: Duration,
    /// Apply pending migrations on open.
    pub migrate: bool,
    /// How long a group commit waits for more writes after its first (default zero: a group is what
    /// queued while the previous commit was being written, which is enough under load).
    pub group_commit_window: Duration,
    /// When a commit counts as done.
    pub durability: Durability,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            migrate: true,
            group_commit_window: Duration::ZERO,
            durability: Durability::Full,
        }
    }
}

#[derive(Debug)]
struct Inner {
    writer: Writer,
    /// Flushes commits before they are answered (`Durability::Full` on a file).
    syncer: Option<Arc<Syncer>>,
    /// `None` for an in-memory database (it checkpoints nothing).
    checkpointer: Option<Checkpointer>,
    closed: AtomicBool,
    /// `None` for an in-memory database, which only the writer's connection can see.
    readers: Option<Arc<ReaderPool>>,
    path: Option<PathBuf>,
}

/// The SQLite store: implements every `tollgate-store` trait. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn open_writer_connection(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    create_private(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).store()?;
    configure_writer(&connection, options)?;
    let mode: String = connection.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0)).store()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(std::io::Error::other(format!("journal_mode is {mode}, not wal"))));
    }
    connection.pragma_update(None, "mmap_size", MMAP_BYTES).store()?;
    // The checkpointer's thread copies the WAL back, so no commit waits for it.
    connection.pragma_update(None, "wal_autocheckpoint", 0).store()?;
    Ok(connection)
}

fn configure_writer(connection: &Connection, options: &SqliteOptions) -> Result<(), StoreError> {
    connection.busy_timeout(options.busy_timeout).store()?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Full while opening (migrations are flushed by SQLite itself); see `Durability::WRITER_SYNCHRONOUS`.
    connection.pragma_update(None, "synchronous", "FULL").store()?;
    connection.pragma_update(None, "foreign_keys", "ON").store()?;
    connection.pragma_update(None, "temp_store", "MEMORY").store()?;
    // A large group (thousands of usage events and their index entries) must not spill dirty pages to
    // the WAL mid-transaction or re-read what it just wrote: 32 MiB of page cache, filled only as used.
    connection.pragma_update(None, "cache_size", WRITER_CACHE_KIB).store()?;
    Ok(())
}

/// The writer's page cache, as SQLite's `cache_size` takes it (negative: KiB).
const WRITER_CACHE_KIB: i64 = -32 * 1024;

fn now_micros() -> i64 {
    SystemClock.now().unix_micros()
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file at `path` and applies pending migrations.
    pub async fn open(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
        let owned_path = path.to_owned();
        let settings = options.clone();
        let connection = tokio::task::spawn_blocking(move || {
            create_private(&owned_path)?;
            let connection = open_writer_connection(&owned_path, &settings)?;
            if settings.migrate {
                migrate::run(&connection, now_micros())?;
            }
            connection.pragma_update(None, "synchronous", Durability::WRITER_SYNCHRONOUS).store()?;
            Ok::<_, StoreError>(connection)
        })
        .await
        .map_err(StoreError::backend)??;
        let syncer = match options.durability {
            Durability::Full => Some(Arc::new(Syncer::start(path)?)),
            Durability::ProcessCrashOnly => None,
        };
        let writer = Writer::start(connection, options.group_commit_window, syncer.clone())?;
        let checkpointer = Checkpointer::start(path, Arc::clone(writer.stats()))?;
        let readers = usize::try_from(options.readers).unwrap_or(usize::MAX);
        let readers = ReaderPool::open(path, options.busy_timeout, readers)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                syncer,
                checkpointer: Some(checkpointer),
                closed: AtomicBool::new(false),
                readers: Some(Arc::new(readers)),
                path: Some(path.to_owned()),
            }),
        })
    }

    /// An in-memory database (one connection for reads and writes), for tests and experiments.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory().store()?;
        configure_writer(&connection, &SqliteOptions::default())?;
        migrate::run(&connection, now_micros())?;
        let writer = Writer::start(connection, Duration::ZERO, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                syncer: None,
                checkpointer: None,
                closed: AtomicBool::new(false),
                readers: None,
                path: None,
            }),
        })
    }

    /// The newest schema version this build knows (its last migration).
    pub const LATEST_SCHEMA_VERSION: i64 = migrate::MIGRATIONS[migrate::MIGRATIONS.len() - 1].version;

    /// The database file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The migrations recorded in the database and whether each is unchanged.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StoreError> {
        self.inner.writer.exclusive(migrate::applied).await
    }

    /// Commits made and jobs written since open (for metrics: jobs per commit is the group size).
    pub fn commit_stats(&self) -> (u64, u64) {
        let stats = self.inner.writer.stats();
        (stats.commits.load(Ordering::Relaxed), stats.jobs.load(Ordering::Relaxed))
    }

    /// Finishes the queued writes and stops the writer; later reads and writes fail.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || {
            inner.writer.stop();
            if let Some(syncer) = &inner.syncer {
                syncer.stop();
            }
            if let Some(checkpointer) = &inner.checkpointer {
                checkpointer.stop();
            }
        })
        .await;
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::unavailable(std::io::Error::other("the store is closed")));
        }
        Ok(())
    }

    /// Runs `work` in the next group commit; answers once the commit is on disk.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.writer.write(work).await
    }

    /// A point read (an indexed lookup of one row): on this thread, since it takes microseconds.
    pub(crate) async fn point<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        match &self.inner.readers {
            Some(readers) => readers.with(read),
            None => self.inner.writer.write(move |tx| read(tx.connection)).await,
        }
    }

    /// A read that may visit many rows: on the blocking pool.
    pub(crate) async fn scan<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        match &self.inner.readers {
            Some(readers) => readers.scan(read).await,
            None => self.inner.writer.write(move |tx| read(tx.connection)).await,
        }
    }
}

/// Creates a new database file readable by its owner only (0600): it holds password hashes, emails
/// and token HMACs. SQLite gives the WAL and shared-memory files the database file's mode. An
/// existing file is left as it is (`tollgate serve` warns when it is readable by others).
pub(crate) fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::unavailable(error)),
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn migrate(&self) -> Result<usize, StoreError> {
        self.inner.writer.exclusive(|connection| migrate::run(connection, now_micros())).await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.applied_migrations().await?.iter().map(|migration| migration.version).max().unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.point(|connection| crate::columns::scalar::<i64>(connection, "SELECT 1", [])).await.map(drop)
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}

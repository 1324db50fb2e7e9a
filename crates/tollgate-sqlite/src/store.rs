//! Opening a SQLite database: connection settings, the writer and reader pools, migrations.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tollgate_store::{StoreAdmin, StoreError};
use tollgate_types::{Clock, SystemClock};

use crate::error::SqlxResultExt;
use crate::hash_reader::HashReader;
use crate::migrate::{self, AppliedMigration};

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How many read connections (writes always use one connection).
    pub readers: u32,
    /// How long a connection waits for a lock held by another process before giving up.
    pub busy_timeout: Duration,
    /// Apply pending migrations on open.
    pub migrate: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { readers: 4, busy_timeout: Duration::from_secs(5), migrate: true }
    }
}

/// The SQLite store: implements every `tollgate-store` trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// Synchronous reads for the verify lookup; `None` for an in-memory database, which only sqlx's connection sees.
    pub(crate) hash_reader: Option<Arc<HashReader>>,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub async fn open(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .pragma("temp_store", "memory")
            .statement_cache_capacity(256);
        // An embedded file needs no liveness probe before each use: sqlx's default pings on every
        // acquire, which doubles the round trips to SQLite's worker thread on the verify path.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await
            .store()?;
        let store_for_migration =
            Self { writer: writer.clone(), reader: writer.clone(), hash_reader: None, path: None };
        if options.migrate {
            store_for_migration.migrate().await?;
        }
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.readers.max(1))
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.read_only(true))
            .await
            .store()?;
        let readers = usize::try_from(options.readers).unwrap_or(usize::MAX);
        let hash_reader = HashReader::open(path, options.busy_timeout, readers)?;
        Ok(Self { writer, reader, hash_reader: Some(Arc::new(hash_reader)), path: Some(path.to_owned()) })
    }

    /// An in-memory database (one connection for reads and writes), for tests and experiments.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str("sqlite::memory:").store()?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect)
            .await
            .store()?;
        let store = Self { writer: pool.clone(), reader: pool, hash_reader: None, path: None };
        store.migrate().await?;
        Ok(store)
    }

    /// The database file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The migrations recorded in the database and whether each is unchanged.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StoreError> {
        migrate::applied(&self.writer).await
    }

    /// Closes both pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction that takes the write lock at once.
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.store()
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn migrate(&self) -> Result<usize, StoreError> {
        migrate::run(&self.writer, SystemClock.now().unix_micros()).await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(migrate::applied(&self.writer).await?.iter().map(|migration| migration.version).max().unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await.store().map(drop)
    }
}

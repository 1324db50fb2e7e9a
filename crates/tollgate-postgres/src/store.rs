//! Connecting to PostgreSQL: pool settings, the transaction every write runs in, retries of
//! transactions the server aborted to break a deadlock, and `StoreAdmin`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres, Transaction};
use tollgate_store::{Result, StoreAdmin, StoreError};
use tollgate_types::{AuditEntry, AuditEvent};

use crate::error::{PgResultExt, is_retryable};
use crate::migrate;

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The most connections the pool opens (each transaction holds one until it commits).
    pub max_connections: u32,
    /// How long a call waits for a free connection before it fails as unavailable.
    pub acquire_timeout: Duration,
    /// Apply pending migrations on connect.
    pub migrate: bool,
    /// The schema tollgate's tables live in (`search_path`, which must exist); `None` uses the
    /// server's default (`public`). Lowercase letters, digits and `_` only.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(30), migrate: true, schema: None }
    }
}

/// The PostgreSQL store: implements every `tollgate-store` trait over a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Who is woken when the audit log grows (LISTEN/NOTIFY).
    pub(crate) audit_watch: std::sync::Arc<crate::notify::AuditWatch>,
}

/// Why a URL or option was refused (never the URL itself: it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("postgres configuration: {0}")]
struct ConfigError(String);

/// How often a transaction the server aborted to break a deadlock (or a serialization failure) is
/// run again before the failure is reported as unavailable.
const ATTEMPTS: u32 = 5;

impl PgStore {
    /// Connects to the database `url` names (`postgres://user@host:port/db`; no TLS) and, with
    /// `options.migrate`, applies pending migrations. Errors never repeat the URL.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<Self> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::backend(ConfigError("the database URL does not parse".to_owned())))?
            // Statements are logged by our own spans; sqlx would log every one at debug.
            .disable_statement_logging();
        if let Some(schema) = &options.schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
            if !valid {
                return Err(StoreError::backend(ConfigError("schema must be 1 to 63 of a-z, 0-9 and _".to_owned())));
            }
            connect = connect.options([("search_path", schema.as_str())]);
        }
        // One attempt first, so a server that is not there fails the start at once (the pool would
        // retry until its acquire timeout); the pool then opens connections as they are needed.
        let probe = PgConnection::connect_with(&connect).await.store()?;
        probe.close().await.store()?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        let store = Self { pool, audit_watch: std::sync::Arc::default() };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// The newest schema version this build knows (its last migration).
    pub const LATEST_SCHEMA_VERSION: i64 = crate::migrate::MIGRATIONS[crate::migrate::MIGRATIONS.len() - 1].version;

    /// Closes every connection; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for reads outside a transaction.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a read-committed transaction.
    pub(crate) async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx { inner: self.pool.begin().await.store()?, audit: Vec::new() })
    }
}

/// A write transaction and the audit events it will append. The events go into the chain at
/// commit, under the chain's lock (see `audit`), so the lock is held only for the last statements
/// and never while the transaction waits for another lock.
pub(crate) struct PgTx {
    inner: Transaction<'static, Postgres>,
    audit: Vec<AuditEvent>,
}

impl PgTx {
    /// The connection, inside the transaction.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.inner
    }

    /// Queues `event` to be appended at commit, after the ones queued before it.
    pub(crate) fn audit(&mut self, event: AuditEvent) {
        self.audit.push(event);
    }

    /// Appends the queued events to the chain and commits; returns the entries appended.
    pub(crate) async fn commit(mut self) -> Result<Vec<AuditEntry>> {
        let entries = crate::audit::append_all(&mut self.inner, &self.audit).await?;
        self.inner.commit().await.store()?;
        Ok(entries)
    }

    /// Rolls back now (rather than when the connection is next used), releasing its locks.
    pub(crate) async fn rollback(self) -> Result<()> {
        self.inner.rollback().await.store()
    }
}

/// Runs `attempt` (one whole transaction) again while it fails with a deadlock or a serialization
/// failure, a few times; each attempt starts from scratch, so nothing of a failed one remains.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(tries, "transaction aborted by the server; running it again");
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

#[async_trait]
impl StoreAdmin for PgStore {
    async fn migrate(&self) -> Result<usize> {
        let mut connection = self.pool.acquire().await.store()?;
        migrate::run(&mut connection).await
    }

    async fn schema_version(&self) -> Result<i64> {
        let mut connection = self.pool.acquire().await.store()?;
        let applied = migrate::applied(&mut connection).await?;
        Ok(applied.iter().map(|migration| migration.version).max().unwrap_or(0))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.store().map(drop)
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }
}

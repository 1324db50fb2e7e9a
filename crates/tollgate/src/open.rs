//! Opening a store from a URL: `sqlite://path/to/file.db`, `sqlite:path`, or `sqlite::memory:`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tollgate_store::Store;

use crate::{Error, Result};

/// How to open a store, whatever the backend (each maps what applies to it).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How long a group commit waits for more writes after its first (default zero: a group is
    /// what queued while the previous commit was being flushed, which is enough under load).
    pub group_commit_window: Duration,
}

/// Opens the store a URL names and applies pending migrations.
///
/// Supported: `sqlite://<path>` (created when missing), `sqlite::memory:`. PostgreSQL URLs are
/// refused with a clear error until that backend lands.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, &StoreOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    #[cfg(feature = "sqlite")]
    {
        use tollgate_sqlite::{SqliteOptions, SqliteStore};
        if url == "sqlite::memory:" {
            return Ok(Arc::new(SqliteStore::open_in_memory().await?));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(Error::Config("database url: sqlite URL has no path".to_owned()));
            }
            let sqlite = SqliteOptions { group_commit_window: options.group_commit_window, ..SqliteOptions::default() };
            return Ok(Arc::new(SqliteStore::open(Path::new(path), &sqlite).await?));
        }
    }
    let _ = options;
    let scheme = url.split(':').next().unwrap_or_default();
    Err(Error::Config(format!("database url: unsupported scheme {scheme:?} (expected sqlite://PATH)")))
}

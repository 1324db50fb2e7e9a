//! Opening a store from a URL: `sqlite://path/to/file.db`, `sqlite:path`, or `sqlite::memory:`.

use std::path::Path;
use std::sync::Arc;

use tollgate_store::Store;

use crate::{Error, Result};

/// Opens the store a URL names and applies pending migrations.
///
/// Supported: `sqlite://<path>` (created when missing), `sqlite::memory:`. PostgreSQL URLs are
/// refused with a clear error until that backend lands.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
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
            return Ok(Arc::new(SqliteStore::open(Path::new(path), &SqliteOptions::default()).await?));
        }
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(Error::Config(format!("database url: unsupported scheme {scheme:?} (expected sqlite://PATH)")))
}

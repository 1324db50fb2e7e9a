//! Opening a store from a URL: `sqlite://path/to/file.db`, `sqlite:path`, `sqlite::memory:`, or
//! `postgres://user@host:port/database` (also `postgresql://`).

#[cfg(feature = "sqlite")]
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
    /// SQLite only: PostgreSQL commits each transaction itself.
    pub group_commit_window: Duration,
    /// PostgreSQL: the most connections the pool opens (`None`: 10).
    pub max_connections: Option<u32>,
    /// PostgreSQL: how long a call waits for a connection before it fails as unavailable (`None`:
    /// 30 s). While the server is away, calls fail after this.
    pub acquire_timeout: Option<Duration>,
    /// When the schema is created or upgraded on open (default: only a new, empty database).
    pub migrate: MigratePolicy,
}

/// When [`open_with`] applies migrations. Whatever the policy, a database whose schema is newer
/// than this build knows is refused, naming both versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MigratePolicy {
    /// Create the schema in a new, empty database; refuse an older schema (upgrading is an explicit
    /// step: `tollgate migrate`, or `serve --migrate`), so a newer CLI never migrates a database under
    /// a running older server.
    #[default]
    NewDatabaseOnly,
    /// Apply every pending migration.
    Always,
}

/// Opens the store a URL names and applies pending migrations.
///
/// Supported: `sqlite://<path>` (created when missing), `sqlite::memory:`, and (with the `postgres`
/// feature) `postgres://…` or `postgresql://…` (the database must exist; no TLS). Errors never
/// show the URL's credentials; log a URL with [`redact_database_url`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, &StoreOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    let (store, latest) = open_unmigrated(url, options).await?;
    let version = store.schema_version().await?;
    if version > latest {
        return Err(Error::Config(format!(
            "the database is at schema version {version}, newer than this tollgate knows ({latest}): use a newer tollgate"
        )));
    }
    match options.migrate {
        _ if version == latest => {}
        MigratePolicy::Always => {
            store.migrate().await?;
        }
        MigratePolicy::NewDatabaseOnly if version == 0 => {
            store.migrate().await?;
        }
        MigratePolicy::NewDatabaseOnly => {
            return Err(Error::Config(format!(
                "the database is at schema version {version} and this tollgate needs {latest}: back it up, then \
                 run `tollgate migrate` (or `tollgate serve --migrate`)"
            )));
        }
    }
    Ok(store)
}

/// Opens the store a URL names without migrating it; also returns the newest schema version the
/// backend knows.
async fn open_unmigrated(url: &str, options: &StoreOptions) -> Result<(Arc<dyn Store>, i64)> {
    #[cfg(feature = "sqlite")]
    {
        use tollgate_sqlite::{SqliteOptions, SqliteStore};
        if url == "sqlite::memory:" {
            return Ok((Arc::new(SqliteStore::open_in_memory().await?), SqliteStore::LATEST_SCHEMA_VERSION));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(Error::Config("database url: sqlite URL has no path".to_owned()));
            }
            let sqlite = SqliteOptions {
                group_commit_window: options.group_commit_window,
                migrate: false,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(Path::new(path), &sqlite).await?;
            return Ok((Arc::new(store), SqliteStore::LATEST_SCHEMA_VERSION));
        }
    }
    #[cfg(feature = "postgres")]
    {
        use tollgate_postgres::{PgOptions, PgStore};
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let defaults = PgOptions::default();
            let pg = PgOptions {
                max_connections: options.max_connections.unwrap_or(defaults.max_connections),
                acquire_timeout: options.acquire_timeout.unwrap_or(defaults.acquire_timeout),
                migrate: false,
                ..defaults
            };
            return Ok((Arc::new(PgStore::connect(url, &pg).await?), PgStore::LATEST_SCHEMA_VERSION));
        }
    }
    let _ = options;
    let scheme = url.split(':').next().unwrap_or_default();
    let expected = if cfg!(feature = "postgres") { "sqlite://PATH or postgres://…" } else { "sqlite://PATH" };
    Err(Error::Config(format!("database url: unsupported scheme {scheme:?} (expected {expected})")))
}

/// `url` fit for a log line or an error: the credentials of `scheme://user:password@host/…` (and a
/// `password=` query parameter) replaced by `***`. Anything that is not such a URL comes back as
/// it is (a SQLite path holds no secret).
///
/// ```
/// assert_eq!(
///     tollgate::redact_database_url("postgres://app:s3cret@db:5432/tollgate?sslmode=disable"),
///     "postgres://***@db:5432/tollgate?sslmode=disable"
/// );
/// ```
pub fn redact_database_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => parameter.to_owned(),
                })
                .collect();
            format!("{path}?{}", parameters.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_store_from_open_can_be_closed() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("t.db").display());
        let store = open(&url).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
        assert!(store.ping().await.is_err(), "a closed store answers nothing");
    }

    #[test]
    fn credentials_never_survive_redaction() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://***@127.0.0.1:5432/postgres"),
            ("postgresql://app:p%40ss@db/tollgate", "postgresql://***@db/tollgate"),
            ("postgres://a:b@c@db", "postgres://***@db"),
            ("postgres://db/tollgate?user=app&password=hunter2", "postgres://db/tollgate?user=app&password=***"),
            ("postgres://db:5432", "postgres://db:5432"),
            ("sqlite://./tollgate.db", "sqlite://./tollgate.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_database_url(url), redacted, "{url}");
        }
        for secret in ["hunter2", "p%40ss", ":b@"] {
            assert!(cases.iter().all(|(url, _)| !redact_database_url(url).contains(secret)), "{secret}");
        }
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_its_password_stays_out_of_the_error() {
        // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
        let url = "postgres://tollgate:hunter2@127.0.0.1:1/tollgate";
        let error = open(url).await.expect_err("nothing listens on port 1");
        let Error::Storage(store_error) = &error else { panic!("{error:?}") };
        assert!(store_error.is_unavailable(), "{store_error:?}");
        let shown = format!("{error} {error:?} {store_error} {store_error:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

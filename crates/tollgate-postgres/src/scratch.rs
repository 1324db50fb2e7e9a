//! Test support (feature `scratch`): stores on scratch schemas of a PostgreSQL server, one per test,
//! so tests run in parallel and leave nothing behind. A scratch schema is dropped when the runtime
//! of the test that made it shuts down (passed or failed), on a thread and connection of its own,
//! after ending that store's sessions (found by their `application_name`, the schema's name).
//! Schemas of earlier runs that were killed before they could clean up are dropped when the next
//! run of the same prefix starts.
//!
//! ```no_run
//! # async fn example() {
//! let url = "postgres://postgres@127.0.0.1:5432/postgres";
//! let store = tollgate_postgres::scratch::store(url, "tollgate_test_").await;
//! # drop(store); }
//! ```

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

use crate::{PgOptions, PgStore};

/// `url` with `application_name` set, so the sessions of one store can be found and ended.
fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// Runs `work` on a connection of its own, on a thread and runtime of its own (it is called from
/// `Drop`, inside a test's runtime, which must not be blocked on itself).
fn on_own_connection(
    url: String,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<(), sqlx::Error> + Send + 'static,
) {
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let mut connection = PgConnection::connect(&url).await?;
            work(&mut connection).await?;
            connection.close().await
        })
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("scratch schema cleanup failed: {error}"),
        Err(_) => eprintln!("scratch schema cleanup panicked"),
    }
}

/// Ends the sessions of `schema`'s store and drops the schema with everything in it.
fn drop_schema(url: String, schema: String) {
    on_own_connection(url, async move |connection: &mut PgConnection| {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&schema)
        .execute(&mut *connection)
        .await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut *connection).await?;
        Ok(())
    });
}

/// Drops the schemas of `prefix` whose process is gone (killed before their tests cleaned up).
fn drop_leftovers(url: String, prefix: String) {
    if !std::path::Path::new("/proc/self").exists() {
        return; // no way to tell a dead run from a live one here
    }
    on_own_connection(url, async move |connection: &mut PgConnection| {
        let schemas: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(format!("{}%", prefix.replace('_', "\\_")))
            .fetch_all(&mut *connection)
            .await?;
        for schema in schemas {
            let pid = schema.strip_prefix(&prefix).and_then(|rest| rest.split('_').next()).unwrap_or_default();
            if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut *connection).await?;
            }
        }
        Ok(())
    });
}

/// Drops its schema when dropped.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        drop_schema(std::mem::take(&mut self.url), std::mem::take(&mut self.schema));
    }
}

/// A migrated store on a fresh schema `<prefix><pid>_<n>` of the server at `url` (`prefix`: lowercase
/// letters, digits and `_`). Call it inside the test's runtime: a task of that runtime holds the
/// schema's guard, and a runtime drops its tasks when it shuts down.
///
/// # Panics
///
/// When the server cannot be reached or the schema cannot be made: test support fails loudly.
pub async fn store(url: &str, prefix: &str) -> PgStore {
    static SWEPT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    static SCHEMAS: AtomicU32 = AtomicU32::new(0);
    let first_of_prefix = SWEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(prefix.to_owned());
    if first_of_prefix {
        drop_leftovers(url.to_owned(), prefix.to_owned());
    }
    let schema = format!("{prefix}{}_{}", std::process::id(), SCHEMAS.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::connect(url).await.expect("connect to the test server");
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\"")).execute(&mut admin).await.expect("create a schema");
    admin.close().await.expect("close the admin connection");
    let guard = SchemaGuard { url: url.to_owned(), schema: schema.clone() };
    tokio::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    let options = PgOptions { schema: Some(schema.clone()), ..PgOptions::default() };
    PgStore::connect(&with_application_name(url, &schema), &options).await.expect("connect and migrate a fresh schema")
}

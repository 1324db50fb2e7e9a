//! Runs the backend conformance suite on PostgreSQL, each case in a fresh schema of its own on the
//! server `TOLLGATE_TEST_PG_URL` names (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Nothing is left behind: a case's schema is dropped when the case ends (passed or failed), on a
//! thread and connection of its own, after ending that store's sessions (found by their
//! `application_name`, the schema's name). Schemas of earlier runs that were
//! killed before they could clean up are dropped when the next run starts.
//!
//! Without `TOLLGATE_TEST_PG_URL` the suite is not compiled (see `build.rs`): one test says so
//! loudly, and fails when `CI=true`.

#[cfg(tollgate_pg_tests)]
mod postgres {
    use std::sync::Once;
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::{Connection, PgConnection};
    use tollgate_postgres::{PgOptions, PgStore};

    /// Every schema a run makes starts with this, then the process id and a counter.
    const PREFIX: &str = "tollgate_test_";

    fn server_url() -> String {
        std::env::var("TOLLGATE_TEST_PG_URL")
            .expect("TOLLGATE_TEST_PG_URL names the test server (it did at build time)")
    }

    /// `url` with `application_name` set, so the sessions of one case can be found and ended.
    fn with_application_name(url: &str, name: &str) -> String {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    }

    /// Runs `work` on a connection of its own, on a thread and runtime of its own (it is called
    /// from `Drop`, inside a test's runtime, which must not be blocked on itself).
    fn on_own_connection(work: impl AsyncFnOnce(&mut PgConnection) -> Result<(), sqlx::Error> + Send + 'static) {
        let url = server_url();
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
            Ok(Err(error)) => eprintln!("postgres conformance cleanup failed: {error}"),
            Err(_) => eprintln!("postgres conformance cleanup panicked"),
        }
    }

    /// Ends the sessions of `schema`'s store and drops the schema with everything in it.
    fn drop_schema(schema: String) {
        on_own_connection(async move |connection: &mut PgConnection| {
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

    /// Drops the schemas of runs whose process is gone (killed before their cases cleaned up).
    fn drop_leftovers() {
        if !std::path::Path::new("/proc/self").exists() {
            return; // no way to tell a dead run from a live one here
        }
        on_own_connection(async |connection: &mut PgConnection| {
            let schemas: Vec<String> =
                sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
                    .bind(format!("{}%", PREFIX.replace('_', "\\_")))
                    .fetch_all(&mut *connection)
                    .await?;
            for schema in schemas {
                let pid = schema.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next()).unwrap_or_default();
                if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut *connection)
                        .await?;
                }
            }
            Ok(())
        });
    }

    /// Drops its schema when dropped.
    struct SchemaGuard(String);

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            drop_schema(std::mem::take(&mut self.0));
        }
    }

    /// A store on a schema of its own. The schema is dropped when the case's runtime shuts down (at
    /// the end of the case, passed or failed, after the store itself is gone): a task of that
    /// runtime holds the guard, and a runtime drops its tasks when it shuts down.
    pub(super) async fn fresh_store() -> PgStore {
        static LEFTOVERS: Once = Once::new();
        static CASES: AtomicU32 = AtomicU32::new(0);
        LEFTOVERS.call_once(drop_leftovers);
        let url = server_url();
        let schema = format!("{PREFIX}{}_{}", std::process::id(), CASES.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect(&url).await.expect("connect to TOLLGATE_TEST_PG_URL");
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\"")).execute(&mut admin).await.expect("create a schema");
        admin.close().await.expect("close the admin connection");
        let guard = SchemaGuard(schema.clone());
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let options = PgOptions { schema: Some(schema.clone()), ..PgOptions::default() };
        PgStore::connect(&with_application_name(&url, &schema), &options)
            .await
            .expect("connect and migrate a fresh schema")
    }
}

#[cfg(tollgate_pg_tests)]
use postgres::fresh_store;

#[cfg(tollgate_pg_tests)]
tollgate_store::conformance_tests!(fresh_store);

#[cfg(not(tollgate_pg_tests))]
#[test]
fn postgres_conformance_suite_needs_a_server() {
    use std::io::Write as _;
    // Straight to the process's stderr: libtest captures `eprintln!` of a passing test, and this
    // must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ******************************************************************************\n\
         *  SKIPPED: the PostgreSQL conformance suite (~100 cases) did not run.       *\n\
         *  TOLLGATE_TEST_PG_URL is not set, so there is no server to run it against. *\n\
         *  Run: TOLLGATE_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \\    *\n\
         *         cargo test -p tollgate-postgres                                    *\n\
         ******************************************************************************\n"
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but TOLLGATE_TEST_PG_URL is not set: the PostgreSQL conformance suite must run in CI"
    );
}

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

/// A store on a fresh schema of its own, dropped when the case ends (see `tollgate_postgres::scratch`).
#[cfg(tollgate_pg_tests)]
async fn fresh_store() -> tollgate_postgres::PgStore {
    let url = std::env::var("TOLLGATE_TEST_PG_URL").expect("TOLLGATE_TEST_PG_URL names the test server");
    tollgate_postgres::scratch::store(&url, "tollgate_test_").await
}

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

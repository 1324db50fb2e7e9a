//! Compiles the PostgreSQL conformance suite into this crate's tests only when
//! `TOLLGATE_TEST_PG_URL` names a server (cfg `tollgate_pg_tests`): without one, the test binary
//! holds a single test that says loudly the suite was skipped (and fails under `CI=true`).
//! libtest cannot skip a test at run time, hence a build-time switch; cargo rebuilds when the
//! variable changes.

fn main() {
    println!("cargo::rerun-if-env-changed=TOLLGATE_TEST_PG_URL");
    println!("cargo::rustc-check-cfg=cfg(tollgate_pg_tests)");
    if std::env::var_os("TOLLGATE_TEST_PG_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=tollgate_pg_tests");
    }
}

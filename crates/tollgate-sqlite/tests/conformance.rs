//! Runs the backend conformance suite on a real SQLite file per case.

use tollgate_sqlite::{SqliteOptions, SqliteStore};

async fn fresh_store() -> SqliteStore {
    let directory = tempfile::tempdir().expect("temporary directory");
    // Keep the directory alive for the whole test: leak it, the OS cleans /tmp.
    let path = directory.keep().join("conformance.db");
    SqliteStore::open(&path, &SqliteOptions::default()).await.expect("open a fresh database")
}

tollgate_store::conformance_tests!(fresh_store);

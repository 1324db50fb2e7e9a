//! The files a SQLite store creates: who may read them.

/// A new database, its WAL and shared-memory files are readable by their owner only.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("private.db");
    let store = tollgate_sqlite::SqliteStore::open(&path, &tollgate_sqlite::SqliteOptions::default()).await.unwrap();
    tollgate_store::StoreAdmin::ping(&store).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(metadata) = std::fs::metadata(&file) {
            assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    assert!(std::fs::metadata(format!("{}-wal", path.display())).is_ok(), "the WAL exists to be checked");
}

//! Login by email is one probe of the unique email index, not a scan of users: SQLite's own query
//! plan for the lookup `user_by_email` runs says so (the conformance suite checks what it finds).

use tollgate_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn email_lookups_search_the_unique_index() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("plan.db");
    SqliteStore::open(&path, &SqliteOptions::default()).await.unwrap();
    let reader = rusqlite::Connection::open(&path).unwrap();
    let mut statement =
        reader.prepare("EXPLAIN QUERY PLAN SELECT id, password_hash FROM users WHERE email = ?").unwrap();
    let details: Vec<String> = statement
        .query_map(["alice@example.com"], |row| row.get::<_, String>("detail"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0].starts_with("SEARCH users USING INDEX"), "a scan would say SCAN: {details:?}");
    assert!(details[0].contains("(email=?)"), "{details:?}");
}

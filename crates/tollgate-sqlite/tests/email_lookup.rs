//! Login by email is one probe of the unique email index, not a scan of users: SQLite's own query
//! plan for the lookup `user_by_email` runs says so (the conformance suite checks what it finds).

use sqlx::Row;
use tollgate_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn email_lookups_search_the_unique_index() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("plan.db");
    SqliteStore::open(&path, &SqliteOptions::default()).await.unwrap();
    let reader = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let plan = sqlx::query("EXPLAIN QUERY PLAN SELECT id, password_hash FROM users WHERE email = ?")
        .bind("alice@example.com")
        .fetch_all(&reader)
        .await
        .unwrap();
    let details: Vec<String> = plan.iter().map(|row| row.get::<String, _>("detail")).collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0].starts_with("SEARCH users USING INDEX"), "a scan would say SCAN: {details:?}");
    assert!(details[0].contains("(email=?)"), "{details:?}");
}

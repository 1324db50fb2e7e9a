//! The SQLite backend from its docs alone: a database file (created 0600, WAL, migrated), limits put
//! in one transaction with their audit events, read back, the file closed. The facade
//! (`tollgate::open("sqlite://…")`) does the same for you. Run:
//! `cargo run -p tollgate-sqlite --example sqlite_store`.

use tollgate_sqlite::{SqliteOptions, SqliteStore};
use tollgate_store::{LimitStore, StoreAdmin, StoreError};
use tollgate_types::{Actor, AuditEvent, LimitKey, LimitSpec, LimitSubject, Metric, ProjectId, Timestamp, Window};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), StoreError> {
    let directory = tempfile::tempdir().map_err(StoreError::backend)?;
    let path = directory.path().join("tollgate.db");
    let store = SqliteStore::open(&path, &SqliteOptions::default()).await?;
    println!("{} opened and migrated: schema version {}", path.display(), store.schema_version().await?);

    let project = LimitSubject::Project(ProjectId::generate());
    let now = Timestamp::from_unix_micros(1_893_456_000_000_000);
    let changes: Vec<(LimitSpec, AuditEvent)> = [(Metric::Requests, 10_000), (Metric::Cost, 50_000_000)]
        .into_iter()
        .map(|(metric, max)| {
            let spec = LimitSpec::new(LimitKey { subject: project.clone(), metric, window: Window::Month }, max, false)
                .expect("a positive maximum");
            (spec, AuditEvent::new(Actor::cli(), "limit.set", &project, now))
        })
        .collect();
    // One transaction, one fsync: both limits and both audit events, or none.
    store.put_limits(&changes, now).await?;
    for record in store.limits(Some(&project)).await? {
        println!("limit {} = {}", record.spec.key(), record.spec.max());
    }
    StoreAdmin::close(&store).await;
    Ok(())
}

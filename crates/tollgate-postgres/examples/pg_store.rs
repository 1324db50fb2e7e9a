//! The PostgreSQL backend from its docs alone: connect (migrations run under an advisory lock, so
//! nodes may start together), set and remove a limit, read the audit events both wrote in their
//! transactions. It works on a scratch schema it drops when it ends. Run with a server:
//! `TOLLGATE_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p tollgate-postgres --example pg_store`.

use tollgate_postgres::scratch;
use tollgate_store::{AuditFilter, AuditStore, LimitStore, PageRequest, StoreAdmin};
use tollgate_types::{Actor, AuditEvent, LimitKey, LimitSpec, LimitSubject, Metric, ProjectId, Timestamp, Window};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tollgate_store::StoreError> {
    let Ok(url) = std::env::var("TOLLGATE_TEST_PG_URL") else {
        println!("set TOLLGATE_TEST_PG_URL to a PostgreSQL server to run this example; skipped");
        return Ok(());
    };
    // A real deployment: `PgStore::connect(&url, &PgOptions::default())`.
    let store = scratch::store(&url, "tollgate_example_").await;
    println!("connected: schema version {}", store.schema_version().await?);

    let key =
        LimitKey { subject: LimitSubject::Project(ProjectId::generate()), metric: Metric::Tokens, window: Window::Day };
    let now = Timestamp::from_unix_micros(1_893_456_000_000_000);
    let spec = LimitSpec::new(key.clone(), 2_000_000, false).expect("a positive maximum");
    store.put_limit(&spec, now, &AuditEvent::new(Actor::cli(), "limit.set", &key, now)).await?;
    store.delete_limit(&key, &AuditEvent::new(Actor::cli(), "limit.remove", &key, now)).await?;

    let page = store.list_audit(&AuditFilter::default(), &PageRequest::first(10)).await?;
    for entry in page.items.iter().rev() {
        println!("audit #{}: {} {}", entry.sequence, entry.event.action, entry.event.target);
    }
    StoreAdmin::close(&store).await;
    Ok(())
}

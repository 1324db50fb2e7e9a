//! Operating a store: schema migrations and health.

use async_trait::async_trait;

use crate::Result;

/// Housekeeping every backend offers.
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// Applies pending schema migrations; returns how many ran. Refuses a schema whose applied
    /// migrations were edited or that is newer than this build.
    async fn migrate(&self) -> Result<usize>;

    /// The highest applied migration version (0 for an empty database).
    async fn schema_version(&self) -> Result<i64>;

    /// Checks that the backend answers a trivial query (health checks).
    async fn ping(&self) -> Result<()>;

    /// Finishes what is queued and closes the backend's connections; later calls fail as
    /// unavailable. For a store held as `Arc<dyn Store>` (from `tollgate::open`).
    async fn close(&self);
}

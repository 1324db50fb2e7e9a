//! The append-only, hash-chained audit log.

use async_trait::async_trait;
use tollgate_types::{AuditEntry, AuditEvent, Timestamp};

use crate::{Page, PageRequest, Result};

/// Audit filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Actor equals.
    pub actor: Option<String>,
    /// Target equals.
    pub target: Option<String>,
    /// At or after.
    pub since: Option<Timestamp>,
}

/// Reading and appending the audit log. Mutations of other stores append their own events in
/// their transactions; `append_audit` is for events that accompany no stored change (a failed login).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event at the end of the chain.
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry>;

    /// Entries matching `filter`, newest first. The cursor is a sequence number.
    async fn list_audit(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditEntry>>;

    /// Entries in chain order from `after_sequence` (exclusive), at most `limit`, for verification.
    async fn audit_chain(&self, after_sequence: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Calls `wake` whenever another process or node may have appended to the log (PostgreSQL:
    /// LISTEN/NOTIFY), so a follower can read at once instead of at its next poll. Returns false when
    /// this backend sends no such hint. A hint can be lost (while a connection is down), so readers
    /// poll as well; `wake` must return quickly.
    fn watch_audit(&self, wake: AuditWaker) -> bool {
        let _ = wake;
        false
    }
}

/// What [`AuditStore::watch_audit`] calls on a hint.
pub type AuditWaker = std::sync::Arc<dyn Fn() + Send + Sync>;

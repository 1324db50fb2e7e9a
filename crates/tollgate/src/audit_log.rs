//! Reading the audit log and verifying its hash chain.
//!
//! Verification walks the whole chain in pages and recomputes every hash, so an entry edited, deleted
//! or moved (with the append-only triggers dropped) is found and named. What it cannot see on its own
//! is a rewrite of the chain's tail from some entry on with freshly computed hashes, or the loss of the
//! newest entries: for that, keep the `head_hash` of a report somewhere else and compare later.

use std::sync::Arc;

use serde::Serialize;
use tollgate_store::{AuditFilter, AuditStore, Page, PageRequest, Store, StoreError};
use tollgate_types::{AUDIT_GENESIS_HASH, AuditEntry, Principal};

use crate::Result;
use crate::authz::{Operation, authorize};

/// The first entry that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenEntry {
    /// Its sequence number (for an unreadable row: the first sequence that could not be read).
    pub sequence: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// The result of walking the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Whether every entry checked is intact.
    pub intact: bool,
    /// How many entries were checked (up to the first broken one).
    pub entries_checked: u64,
    /// The first broken entry, if any.
    pub first_broken: Option<BrokenEntry>,
    /// The sequence of the last intact entry (0 for an empty log).
    pub last_sequence: i64,
    /// The hash of the last intact entry, in hex: record it elsewhere to detect a later rewrite.
    pub head_hash: String,
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What is wrong with `entry` when it should be number `expected` after an entry hashed `previous`.
fn problem(entry: &AuditEntry, expected: i64, previous: &[u8; 32]) -> Option<String> {
    if entry.sequence != expected {
        return Some(format!("expected entry {expected} here: an entry was deleted or the order changed"));
    }
    if entry.previous_hash != *previous {
        return Some("does not link to the entry before it: an earlier entry was deleted, moved or rewritten".into());
    }
    if !entry.is_intact_after(previous) {
        return Some("its content does not match its hash: the entry was edited".into());
    }
    None
}

/// Walks the audit chain from the first entry, `page_size` entries at a time, and reports the first
/// entry that is missing, out of order, edited or unreadable.
pub async fn verify_audit_chain(store: &dyn AuditStore, page_size: u32) -> Result<AuditReport> {
    let page_size = page_size.clamp(1, PageRequest::MAX_LIMIT);
    let mut previous = AUDIT_GENESIS_HASH;
    let mut last_sequence = 0;
    let mut entries_checked = 0;
    let report = |first_broken: Option<BrokenEntry>, last_sequence, entries_checked, previous: &[u8; 32]| AuditReport {
        intact: first_broken.is_none(),
        entries_checked,
        first_broken,
        last_sequence,
        head_hash: hex(previous),
    };
    loop {
        let page = match store.audit_chain(last_sequence, page_size).await {
            Ok(page) => page,
            // One row that no longer parses fails the whole page: find it one row at a time.
            Err(StoreError::Corrupt(_)) if page_size > 1 => match store.audit_chain(last_sequence, 1).await {
                Ok(single) => single,
                Err(StoreError::Corrupt(detail)) => {
                    let broken = BrokenEntry { sequence: last_sequence + 1, problem: format!("unreadable: {detail}") };
                    return Ok(report(Some(broken), last_sequence, entries_checked, &previous));
                }
                Err(other) => return Err(other.into()),
            },
            Err(StoreError::Corrupt(detail)) => {
                let broken = BrokenEntry { sequence: last_sequence + 1, problem: format!("unreadable: {detail}") };
                return Ok(report(Some(broken), last_sequence, entries_checked, &previous));
            }
            Err(other) => return Err(other.into()),
        };
        if page.is_empty() {
            return Ok(report(None, last_sequence, entries_checked, &previous));
        }
        for entry in &page {
            if let Some(problem) = problem(entry, last_sequence + 1, &previous) {
                let broken = BrokenEntry { sequence: entry.sequence, problem };
                return Ok(report(Some(broken), last_sequence, entries_checked, &previous));
            }
            previous = entry.hash;
            last_sequence = entry.sequence;
            entries_checked += 1;
        }
    }
}

/// The audit log, for principals allowed to read it (admins).
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
}

impl AuditLog {
    /// The audit log of `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Entries matching `filter`, newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        authorize(principal, Operation::ReadAudit)?;
        Ok(self.store.list_audit(filter, page).await?)
    }

    /// Walks the whole chain (see [`verify_audit_chain`]).
    pub async fn verify(&self, principal: &Principal) -> Result<AuditReport> {
        authorize(principal, Operation::VerifyAudit)?;
        verify_audit_chain(self.store.as_ref(), PageRequest::MAX_LIMIT).await
    }
}

#[cfg(test)]
mod tests {
    use tollgate_types::{Actor, AuditEvent, Timestamp};

    use super::*;

    fn chain(length: i64) -> Vec<AuditEntry> {
        let mut previous = AUDIT_GENESIS_HASH;
        (1..=length)
            .map(|sequence| {
                let event =
                    AuditEvent::new(Actor::cli(), "user.update", "usr_x", Timestamp::from_unix_micros(sequence));
                let hash = event.chain_hash(sequence, &previous);
                let entry = AuditEntry { sequence, event, previous_hash: previous, hash };
                previous = hash;
                entry
            })
            .collect()
    }

    #[test]
    fn each_kind_of_tampering_has_its_problem() {
        let entries = chain(3);
        assert_eq!(problem(&entries[1], 2, &entries[0].hash), None);
        assert!(problem(&entries[2], 2, &entries[0].hash).unwrap().contains("deleted or the order changed"));
        assert!(problem(&entries[1], 2, &[9; 32]).unwrap().contains("does not link"));
        let mut edited = entries[1].clone();
        edited.event.reason = Some("nothing to see".into());
        assert!(problem(&edited, 2, &entries[0].hash).unwrap().contains("edited"));
    }
}

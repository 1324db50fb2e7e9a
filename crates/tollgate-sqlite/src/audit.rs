//! The audit log on SQLite: append inside any write job, read, walk the chain.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tollgate_store::{AuditFilter, AuditStore, Page, PageRequest, Result, StoreError};
use tollgate_types::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent, Timestamp};

use crate::SqliteStore;
use crate::columns::{collect, execute};
use crate::error::{SqliteResultExt, corrupt};
use crate::writer::Tx;

/// The end of the chain as the writer last saw it, so a group of appends reads it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuditHead {
    /// Not known: read it from the table before the next append.
    Unknown,
    /// The last entry's sequence and hash (sequence 0 and the genesis hash for an empty log).
    Known { sequence: i64, hash: [u8; 32] },
}

impl AuditHead {
    fn current(&mut self, connection: &Connection) -> Result<(i64, [u8; 32])> {
        if let Self::Known { sequence, hash } = self {
            return Ok((*sequence, *hash));
        }
        let last: Option<(i64, Vec<u8>)> = connection
            .prepare_cached("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
            .store()?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .store()?;
        let head = match last {
            Some((sequence, hash)) => (
                sequence,
                <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| corrupt("audit_log.hash", "not 32 bytes"))?,
            ),
            None => (0, AUDIT_GENESIS_HASH),
        };
        *self = Self::Known { sequence: head.0, hash: head.1 };
        Ok(head)
    }
}

/// Appends `event` at the end of the chain, inside the caller's write job.
pub(crate) fn append(tx: &mut Tx<'_>, event: &AuditEvent) -> Result<AuditEntry> {
    let (last, previous_hash) = tx.audit_head.current(tx.connection)?;
    let sequence = last + 1;
    let hash = event.chain_hash(sequence, &previous_hash);
    tx.connection
        .prepare_cached(
            "INSERT INTO audit_log (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .store()?
        .execute(params![
            sequence,
            event.actor.as_str(),
            &event.action,
            &event.target,
            event.before.as_ref().map(ToString::to_string),
            event.after.as_ref().map(ToString::to_string),
            event.reason.as_deref(),
            event.ip.map(|ip| ip.to_string()),
            event.at.unix_micros(),
            previous_hash.as_slice(),
            hash.as_slice(),
        ])
        .store()?;
    *tx.audit_head = AuditHead::Known { sequence, hash };
    Ok(AuditEntry { sequence, event: event.clone(), previous_hash, hash })
}

/// Runs a cleanup `DELETE` whose only parameter `?1` is `cutoff`, and appends `audit` (with the count
/// and the cutoff as its `after` state) when anything was deleted — all in one write job.
pub(crate) async fn delete_before_with_audit(
    store: &SqliteStore,
    delete_sql: &'static str,
    cutoff: Timestamp,
    audit: &AuditEvent,
) -> Result<u64> {
    let audit = audit.clone();
    store
        .write(move |tx| {
            let deleted = execute(tx.connection, delete_sql, [cutoff.unix_micros()])?;
            if deleted > 0 {
                let mut event = audit;
                event.after = Some(serde_json::json!({ "deleted": deleted, "cutoff": cutoff }));
                append(tx, &event)?;
            }
            Ok(deleted)
        })
        .await
}

fn json_column(row: &Row<'_>, index: usize, name: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(index).store()?;
    text.map(|text| serde_json::from_str(&text).map_err(|error| corrupt(name, error))).transpose()
}

fn hash_column(row: &Row<'_>, index: usize, name: &str) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(index).store()?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt(name, "not 32 bytes"))
}

const COLUMNS: &str = "sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash";

fn entry_from_row(row: &Row<'_>) -> Result<AuditEntry> {
    let ip: Option<String> = row.get(7).store()?;
    let event = AuditEvent {
        actor: Actor::from_stored(row.get(1).store()?),
        action: row.get(2).store()?,
        target: row.get(3).store()?,
        before: json_column(row, 4, "audit_log.before")?,
        after: json_column(row, 5, "audit_log.after")?,
        reason: row.get(6).store()?,
        ip: ip.map(|ip| ip.parse().map_err(|error| corrupt("audit_log.ip", error))).transpose()?,
        at: Timestamp::from_unix_micros(row.get(8).store()?),
    };
    Ok(AuditEntry {
        sequence: row.get(0).store()?,
        event,
        previous_hash: hash_column(row, 9, "audit_log.previous_hash")?,
        hash: hash_column(row, 10, "audit_log.hash")?,
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        let event = event.clone();
        self.write(move |tx| append(tx, &event)).await
    }

    async fn list_audit(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditEntry>> {
        let before: i64 = match &page.cursor {
            Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let filter = filter.clone();
        let limit = page.limit;
        let items = self
            .scan(move |connection| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM audit_log
                     WHERE sequence < ?1 AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR target = ?3)
                       AND (?4 IS NULL OR at >= ?4)
                     ORDER BY sequence DESC LIMIT ?5"
                );
                collect(
                    connection,
                    &sql,
                    params![
                        before,
                        filter.actor.as_deref(),
                        filter.target.as_deref(),
                        filter.since.map(Timestamp::unix_micros),
                        i64::from(limit) + 1
                    ],
                    entry_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, page.limit, |entry| entry.sequence.to_string()))
    }

    async fn audit_chain(&self, after_sequence: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.scan(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE sequence > ? ORDER BY sequence LIMIT ?");
            collect(connection, &sql, params![after_sequence, i64::from(limit)], entry_from_row)
        })
        .await
    }
}

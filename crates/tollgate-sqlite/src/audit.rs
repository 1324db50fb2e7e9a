//! The audit log on SQLite: append inside any write transaction, read, walk the chain.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use tollgate_store::{AuditFilter, AuditStore, Page, PageRequest, Result, StoreError};
use tollgate_types::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent, Timestamp};

use crate::SqliteStore;
use crate::error::{SqlxResultExt, corrupt};

/// Appends `event` at the end of the chain, inside the caller's transaction.
pub(crate) async fn append(connection: &mut SqliteConnection, event: &AuditEvent) -> Result<AuditEntry> {
    let last = sqlx::query("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
        .fetch_optional(&mut *connection)
        .await
        .store()?;
    let (sequence, previous_hash) = match last {
        Some(row) => {
            let sequence: i64 = row.get("sequence");
            let hash: Vec<u8> = row.get("hash");
            let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| corrupt("audit_log.hash", "not 32 bytes"))?;
            (sequence + 1, hash)
        }
        None => (1, AUDIT_GENESIS_HASH),
    };
    let hash = event.chain_hash(sequence, &previous_hash);
    sqlx::query(
        "INSERT INTO audit_log (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(sequence)
    .bind(event.actor.as_str())
    .bind(&event.action)
    .bind(&event.target)
    .bind(event.before.as_ref().map(ToString::to_string))
    .bind(event.after.as_ref().map(ToString::to_string))
    .bind(event.reason.as_deref())
    .bind(event.ip.map(|ip| ip.to_string()))
    .bind(event.at.unix_micros())
    .bind(previous_hash.as_slice())
    .bind(hash.as_slice())
    .execute(&mut *connection)
    .await
    .store()?;
    Ok(AuditEntry { sequence, event: event.clone(), previous_hash, hash })
}

/// Runs a cleanup `DELETE` whose only parameter `?1` is `cutoff`, and appends `audit` (with the count
/// and the cutoff as its `after` state) when anything was deleted — all in one write transaction.
pub(crate) async fn delete_before_with_audit(
    store: &SqliteStore,
    delete_sql: &str,
    cutoff: Timestamp,
    audit: &AuditEvent,
) -> Result<u64> {
    let mut transaction = store.write().await?;
    let deleted =
        sqlx::query(delete_sql).bind(cutoff.unix_micros()).execute(&mut *transaction).await.store()?.rows_affected();
    if deleted > 0 {
        let mut event = audit.clone();
        event.after = Some(serde_json::json!({ "deleted": deleted, "cutoff": cutoff }));
        append(&mut transaction, &event).await?;
    }
    transaction.commit().await.store()?;
    Ok(deleted)
}

fn json_column(row: &SqliteRow, column: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(column);
    text.map(|text| serde_json::from_str(&text).map_err(|error| corrupt(column, error))).transpose()
}

fn hash_column(row: &SqliteRow, column: &str) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(column);
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt(column, "not 32 bytes"))
}

fn entry_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let ip: Option<String> = row.get("ip");
    let event = AuditEvent {
        actor: Actor::from_stored(row.get("actor")),
        action: row.get("action"),
        target: row.get("target"),
        before: json_column(row, "before")?,
        after: json_column(row, "after")?,
        reason: row.get("reason"),
        ip: ip.map(|ip| ip.parse().map_err(|error| corrupt("audit_log.ip", error))).transpose()?,
        at: Timestamp::from_unix_micros(row.get("at")),
    };
    Ok(AuditEntry {
        sequence: row.get("sequence"),
        event,
        previous_hash: hash_column(row, "previous_hash")?,
        hash: hash_column(row, "hash")?,
    })
}

const COLUMNS: &str = "sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash";

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        let mut transaction = self.write().await?;
        let entry = append(&mut transaction, event).await?;
        transaction.commit().await.store()?;
        Ok(entry)
    }

    async fn list_audit(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditEntry>> {
        let before: i64 = match &page.cursor {
            Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE sequence < ?1 AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR target = ?3) AND (?4 IS NULL OR at >= ?4)
             ORDER BY sequence DESC LIMIT ?5"
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.actor.as_deref())
            .bind(filter.target.as_deref())
            .bind(filter.since.map(Timestamp::unix_micros))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.reader)
            .await
            .store()?;
        let items = rows.iter().map(entry_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |entry| entry.sequence.to_string()))
    }

    async fn audit_chain(&self, after_sequence: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE sequence > ? ORDER BY sequence LIMIT ?");
        let rows =
            sqlx::query(&sql).bind(after_sequence).bind(i64::from(limit)).fetch_all(&self.reader).await.store()?;
        rows.iter().map(entry_from_row).collect()
    }
}

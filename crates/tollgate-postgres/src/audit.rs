//! The audit log on PostgreSQL: appended at the commit of the transaction that writes the change,
//! read, walked in chain order.
//!
//! Appending takes `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE` (the weakest mode that
//! conflicts with itself and with inserts; plain reads go on) and reads the head of the chain under
//! it, so transactions append one after another and their sequence numbers follow commit order
//! without gaps. Every transaction appends last, right before `COMMIT`, so it never waits for
//! another lock while holding this one.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{AuditFilter, AuditStore, AuditWaker, Page, PageRequest, Result, StoreError};
use tollgate_types::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent, Timestamp};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::{get, hash, parsed, time};
use crate::store::retrying;

/// Appends `events` in order at the end of the chain, inside the caller's transaction.
pub(crate) async fn append_all(connection: &mut PgConnection, events: &[AuditEvent]) -> Result<Vec<AuditEntry>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *connection).await.store()?;
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
            .fetch_optional(&mut *connection)
            .await
            .store()?;
    let (mut sequence, mut previous) = match head {
        Some((sequence, bytes)) => (
            sequence,
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| StoreError::Corrupt("audit_log.hash: not 32 bytes".to_owned()))?,
        ),
        None => (0, AUDIT_GENESIS_HASH),
    };
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        sequence += 1;
        let hash = event.chain_hash(sequence, &previous);
        entries.push(AuditEntry { sequence, event: event.clone(), previous_hash: previous, hash });
        previous = hash;
    }
    // One statement for the lot: columns as arrays, unnested in order.
    let text = |value: &Option<serde_json::Value>| value.as_ref().map(ToString::to_string);
    sqlx::query(
        "INSERT INTO audit_log (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)
         SELECT sequence, actor, action, target, before::json, after::json, reason, ip, at, previous_hash, hash
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::bigint[], $10::bytea[], $11::bytea[])
              AS appended (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)",
    )
    .bind(entries.iter().map(|entry| entry.sequence).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.actor.as_str().to_owned()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.action.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.target.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| text(&entry.event.before)).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| text(&entry.event.after)).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.reason.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.ip.map(|ip| ip.to_string())).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.event.at.unix_micros()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.previous_hash.to_vec()).collect::<Vec<_>>())
    .bind(entries.iter().map(|entry| entry.hash.to_vec()).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await
    .store()?;
    sqlx::query("SELECT pg_notify($1, '')").bind(crate::notify::CHANNEL).execute(&mut *connection).await.store()?;
    Ok(entries)
}

/// Runs a cleanup `DELETE` whose only parameter `$1` is `cutoff`, and appends `audit` (with the count
/// and the cutoff as its `after` state) when anything was deleted, in one transaction.
pub(crate) async fn delete_before_with_audit(
    store: &PgStore,
    delete_sql: &'static str,
    cutoff: Timestamp,
    audit: &AuditEvent,
) -> Result<u64> {
    retrying(move || async move {
        let mut tx = store.begin().await?;
        let deleted =
            sqlx::query(delete_sql).bind(cutoff.unix_micros()).execute(tx.conn()).await.store()?.rows_affected();
        if deleted > 0 {
            let mut event = audit.clone();
            event.after = Some(serde_json::json!({ "deleted": deleted, "cutoff": cutoff }));
            tx.audit(event);
        }
        tx.commit().await?;
        Ok(deleted)
    })
    .await
}

const COLUMNS: &str = "sequence, actor, action, target, before::text AS before, after::text AS after, reason, ip, at, \
     previous_hash, hash";

fn json_column(row: &PgRow, column: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = get(row, "audit_log", column)?;
    text.map(|text| parsed("audit_log", column, serde_json::from_str(&text))).transpose()
}

fn entry_from_row(row: &PgRow) -> Result<AuditEntry> {
    let ip: Option<String> = get(row, "audit_log", "ip")?;
    let event = AuditEvent {
        actor: Actor::from_stored(get(row, "audit_log", "actor")?),
        action: get(row, "audit_log", "action")?,
        target: get(row, "audit_log", "target")?,
        before: json_column(row, "before")?,
        after: json_column(row, "after")?,
        reason: get(row, "audit_log", "reason")?,
        ip: parsed("audit_log", "ip", ip.map(|ip| ip.parse()).transpose())?,
        at: time(row, "audit_log", "at")?,
    };
    Ok(AuditEntry {
        sequence: get(row, "audit_log", "sequence")?,
        event,
        previous_hash: hash(row, "audit_log", "previous_hash")?,
        hash: hash(row, "audit_log", "hash")?,
    })
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            tx.audit(event.clone());
            let entries = tx.commit().await?;
            entries.into_iter().next().ok_or_else(|| StoreError::Corrupt("audit append wrote nothing".to_owned()))
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditEntry>> {
        let before: i64 = match &page.cursor {
            Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE sequence < $1 AND ($2::text IS NULL OR actor = $2) AND ($3::text IS NULL OR target = $3)
               AND ($4::bigint IS NULL OR at >= $4)
             ORDER BY sequence DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.actor.as_deref())
            .bind(filter.target.as_deref())
            .bind(filter.since.map(Timestamp::unix_micros))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(self.pool())
            .await
            .store()?;
        let items = rows.iter().map(entry_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |entry| entry.sequence.to_string()))
    }

    async fn audit_chain(&self, after_sequence: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE sequence > $1 ORDER BY sequence LIMIT $2");
        let rows =
            sqlx::query(&sql).bind(after_sequence).bind(i64::from(limit)).fetch_all(self.pool()).await.store()?;
        rows.iter().map(entry_from_row).collect()
    }

    fn watch_audit(&self, wake: AuditWaker) -> bool {
        self.audit_watch.add(self.pool(), wake)
    }
}

//! Quota limits and per-token rate limits on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tollgate_store::{LimitStore, RateLimitRecord, Result, StoreError};
use tollgate_types::{
    AuditEvent, LimitKey, LimitRecord, LimitSpec, LimitSubject, Metric, RateLimitSpec, Timestamp, TokenId, Window,
};

use crate::PgStore;
use crate::error::{PgResultExt, corrupt};
use crate::rows::{count, get, optional_time, parsed, time};
use crate::store::retrying;

const LIMIT_COLUMNS: &str =
    "subject_kind, subject, metric, period, maximum, shadow, shadow_hits, last_shadow_hit_at, created_at, updated_at";
const TABLE: &str = "quota_limits";

fn limit_from_row(row: &PgRow) -> Result<LimitRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, column) };
    let subject = parsed(TABLE, "subject", LimitSubject::parse(&text("subject_kind")?, &text("subject")?))?;
    let metric = parsed(TABLE, "metric", text("metric")?.parse::<Metric>())?;
    let window = parsed(TABLE, "period", text("period")?.parse::<Window>())?;
    let max = parsed(TABLE, "maximum", u64::try_from(get::<i64>(row, TABLE, "maximum")?))?;
    let spec = parsed(
        TABLE,
        "maximum",
        LimitSpec::new(LimitKey { subject, metric, window }, max, get(row, TABLE, "shadow")?),
    )?;
    Ok(LimitRecord {
        spec,
        shadow_hits: count(row, TABLE, "shadow_hits")?,
        last_shadow_hit_at: optional_time(row, TABLE, "last_shadow_hit_at")?,
        created_at: time(row, TABLE, "created_at")?,
        updated_at: time(row, TABLE, "updated_at")?,
    })
}

const RATE_COLUMNS: &str = "token_id, requests_per_minute, burst, updated_at";

fn rate_from_row(row: &PgRow) -> Result<RateLimitRecord> {
    let table = "token_rate_limits";
    let number = |column: &str| -> Result<u32> {
        u32::try_from(get::<i64>(row, table, column)?).map_err(|error| corrupt(&format!("{table}.{column}"), error))
    };
    Ok(RateLimitRecord {
        token_id: parsed(table, "token_id", TokenId::parse(&get::<String>(row, table, "token_id")?))?,
        spec: parsed(table, "spec", RateLimitSpec::new(number("requests_per_minute")?, number("burst")?))?,
        updated_at: time(row, table, "updated_at")?,
    })
}

async fn put_limits(store: &PgStore, changes: &[(LimitSpec, AuditEvent)], at: Timestamp) -> Result<Vec<LimitRecord>> {
    let mut tx = store.begin().await?;
    let mut records = Vec::with_capacity(changes.len());
    for (spec, audit) in changes {
        let key = spec.key();
        let row = sqlx::query(&format!(
            "INSERT INTO quota_limits (subject_kind, subject, metric, period, maximum, shadow, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (subject_kind, subject, metric, period)
             DO UPDATE SET maximum = excluded.maximum, shadow = excluded.shadow,
                updated_at = greatest(quota_limits.updated_at, excluded.updated_at)
             RETURNING {LIMIT_COLUMNS}"
        ))
        .bind(key.subject.kind())
        .bind(key.subject.id())
        .bind(key.metric.as_str())
        .bind(key.window.as_str())
        .bind(i64::try_from(spec.max()).unwrap_or(i64::MAX))
        .bind(spec.shadow())
        .bind(at.unix_micros())
        .fetch_one(tx.conn())
        .await
        .store()?;
        records.push(limit_from_row(&row)?);
        tx.audit(audit.clone());
    }
    tx.commit().await?;
    Ok(records)
}

async fn delete_limit(store: &PgStore, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord> {
    let mut tx = store.begin().await?;
    // Counters stay: setting the limit again mid-window continues from what was used.
    let row = sqlx::query(&format!(
        "DELETE FROM quota_limits WHERE subject_kind = $1 AND subject = $2 AND metric = $3 AND period = $4
         RETURNING {LIMIT_COLUMNS}"
    ))
    .bind(key.subject.kind())
    .bind(key.subject.id())
    .bind(key.metric.as_str())
    .bind(key.window.as_str())
    .fetch_optional(tx.conn())
    .await
    .store()?
    .ok_or(StoreError::NotFound { entity: "limit" })?;
    let record = limit_from_row(&row)?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn put_rate_limit(
    store: &PgStore,
    token_id: &TokenId,
    spec: &RateLimitSpec,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<RateLimitRecord> {
    let mut tx = store.begin().await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = $1 FOR SHARE")
        .bind(token_id.to_string())
        .fetch_optional(tx.conn())
        .await
        .store()?;
    if exists.is_none() {
        return Err(StoreError::NotFound { entity: "token" });
    }
    let row = sqlx::query(&format!(
        "INSERT INTO token_rate_limits ({RATE_COLUMNS}) VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
            burst = excluded.burst, updated_at = excluded.updated_at
         RETURNING {RATE_COLUMNS}"
    ))
    .bind(token_id.to_string())
    .bind(i64::from(spec.requests_per_minute()))
    .bind(i64::from(spec.burst()))
    .bind(at.unix_micros())
    .fetch_one(tx.conn())
    .await
    .store()?;
    let record = rate_from_row(&row)?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn delete_rate_limit(store: &PgStore, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!("DELETE FROM token_rate_limits WHERE token_id = $1 RETURNING {RATE_COLUMNS}"))
        .bind(token_id.to_string())
        .fetch_optional(tx.conn())
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "rate limit" })?;
    let record = rate_from_row(&row)?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

#[async_trait]
impl LimitStore for PgStore {
    async fn put_limit(&self, spec: &LimitSpec, at: Timestamp, audit: &AuditEvent) -> Result<LimitRecord> {
        let changes = [(spec.clone(), audit.clone())];
        let changes = &changes;
        let mut records = retrying(move || put_limits(self, changes, at)).await?;
        records.pop().ok_or(StoreError::NotFound { entity: "limit" })
    }

    async fn put_limits(&self, changes: &[(LimitSpec, AuditEvent)], at: Timestamp) -> Result<Vec<LimitRecord>> {
        retrying(move || put_limits(self, changes, at)).await
    }

    async fn delete_limit(&self, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord> {
        retrying(move || delete_limit(self, key, audit)).await
    }

    async fn limits(&self, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {LIMIT_COLUMNS} FROM quota_limits
             WHERE ($1::text IS NULL OR (subject_kind = $1 AND subject = $2))
             ORDER BY subject_kind, subject,
                CASE metric WHEN 'requests' THEN 0 WHEN 'tokens' THEN 1 ELSE 2 END,
                CASE period WHEN 'minute' THEN 0 WHEN 'hour' THEN 1 WHEN 'day' THEN 2 ELSE 3 END"
        ))
        .bind(subject.map(LimitSubject::kind))
        .bind(subject.map(LimitSubject::id))
        .fetch_all(self.pool())
        .await
        .store()?;
        rows.iter().map(limit_from_row).collect()
    }

    async fn purge_counters(&self, before: Timestamp) -> Result<u64> {
        let result = sqlx::query("DELETE FROM quota_counters WHERE window_end < $1")
            .bind(before.unix_micros())
            .execute(self.pool())
            .await
            .store()?;
        Ok(result.rows_affected())
    }

    async fn put_rate_limit(
        &self,
        token_id: &TokenId,
        spec: &RateLimitSpec,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<RateLimitRecord> {
        retrying(move || put_rate_limit(self, token_id, spec, at, audit)).await
    }

    async fn delete_rate_limit(&self, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord> {
        retrying(move || delete_rate_limit(self, token_id, audit)).await
    }

    async fn rate_limits(&self) -> Result<Vec<RateLimitRecord>> {
        let rows = sqlx::query(&format!("SELECT {RATE_COLUMNS} FROM token_rate_limits ORDER BY token_id"))
            .fetch_all(self.pool())
            .await
            .store()?;
        rows.iter().map(rate_from_row).collect()
    }
}

//! Quota limits, counters and per-token rate limits on SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use tollgate_store::{ConsumeOutcome, CounterIncrement, LimitStore, RateLimitRecord, Result, ShadowHit, StoreError};
use tollgate_types::{
    AuditEvent, CounterKey, LimitKey, LimitRecord, LimitSpec, LimitSubject, Metric, RateLimitSpec, Timestamp, TokenId,
    Window,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::error::{SqlxResultExt, corrupt};

const LIMIT_COLUMNS: &str =
    "subject_kind, subject, metric, period, maximum, shadow, shadow_hits, last_shadow_hit_at, created_at, updated_at";

fn limit_from_row(row: &SqliteRow) -> Result<LimitRecord> {
    let column = |name: &str, error: tollgate_types::ValidationError| corrupt(&format!("quota_limits.{name}"), error);
    let subject = LimitSubject::parse(row.get("subject_kind"), row.get("subject")).map_err(|e| column("subject", e))?;
    let metric = row.get::<String, _>("metric").parse::<Metric>().map_err(|e| column("metric", e))?;
    let window = row.get::<String, _>("period").parse::<Window>().map_err(|e| column("period", e))?;
    let max = u64::try_from(row.get::<i64, _>("maximum")).map_err(|e| corrupt("quota_limits.maximum", e))?;
    let spec = LimitSpec::new(LimitKey { subject, metric, window }, max, row.get::<i64, _>("shadow") == 1)
        .map_err(|e| column("maximum", e))?;
    Ok(LimitRecord {
        spec,
        created_at: Timestamp::from_unix_micros(row.get("created_at")),
        updated_at: Timestamp::from_unix_micros(row.get("updated_at")),
        shadow_hits: u64::try_from(row.get::<i64, _>("shadow_hits")).unwrap_or(0),
        last_shadow_hit_at: row.get::<Option<i64>, _>("last_shadow_hit_at").map(Timestamp::from_unix_micros),
    })
}

async fn fetch_limit(connection: &mut SqliteConnection, key: &LimitKey) -> Result<Option<LimitRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM quota_limits WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ?"
    ))
    .bind(key.subject.kind())
    .bind(key.subject.id())
    .bind(key.metric.as_str())
    .bind(key.window.as_str())
    .fetch_optional(&mut *connection)
    .await
    .store()?;
    row.as_ref().map(limit_from_row).transpose()
}

/// The usage already rolled up in a new counter's window: tokens or cost over whole hours.
/// Requests are counted at admission, not from usage, and minute windows are finer than rollups.
async fn seed(connection: &mut SqliteConnection, key: &CounterKey) -> Result<i64> {
    let sum = match key.limit.metric {
        Metric::Requests => return Ok(0),
        Metric::Tokens => "input_tokens + output_tokens",
        Metric::Cost => "cost_micros",
    };
    if key.limit.window == Window::Minute {
        return Ok(0);
    }
    let column = match key.limit.subject {
        LimitSubject::Token(_) => "token_id",
        LimitSubject::User(_) => "user_id",
        LimitSubject::Owner(_) => "owner",
        LimitSubject::Project(_) => "project",
    };
    sqlx::query_scalar(&format!(
        "SELECT coalesce(sum({sum}), 0) FROM usage_rollups WHERE {column} = ?1 AND hour >= ?2 AND hour < ?3"
    ))
    .bind(key.limit.subject.id())
    .bind(key.window_start.unix_micros())
    .bind(key.window_end().unix_micros())
    .fetch_one(&mut *connection)
    .await
    .store()
}

/// The counter's value, creating (and seeding) it when missing. Call inside a write transaction.
pub(crate) async fn ensure_counter(connection: &mut SqliteConnection, key: &CounterKey) -> Result<i64> {
    let select = "SELECT used FROM quota_counters
                  WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ? AND window_start = ?";
    let subject = key.limit.subject.id();
    let existing: Option<i64> = sqlx::query_scalar(select)
        .bind(key.limit.subject.kind())
        .bind(&subject)
        .bind(key.limit.metric.as_str())
        .bind(key.limit.window.as_str())
        .bind(key.window_start.unix_micros())
        .fetch_optional(&mut *connection)
        .await
        .store()?;
    if let Some(used) = existing {
        return Ok(used);
    }
    let used = seed(connection, key).await?;
    sqlx::query(
        "INSERT INTO quota_counters (subject_kind, subject, metric, period, window_start, window_end, used)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.limit.subject.kind())
    .bind(&subject)
    .bind(key.limit.metric.as_str())
    .bind(key.limit.window.as_str())
    .bind(key.window_start.unix_micros())
    .bind(key.window_end().unix_micros())
    .bind(used)
    .execute(&mut *connection)
    .await
    .store()?;
    Ok(used)
}

/// Adds `delta` to a counter (creating it first when missing); returns the new value.
pub(crate) async fn add_to_counter(connection: &mut SqliteConnection, key: &CounterKey, delta: i64) -> Result<i64> {
    let used = ensure_counter(connection, key).await?;
    if delta == 0 {
        return Ok(used);
    }
    sqlx::query_scalar(
        "UPDATE quota_counters SET used = used + ?6
         WHERE subject_kind = ?1 AND subject = ?2 AND metric = ?3 AND period = ?4 AND window_start = ?5
         RETURNING used",
    )
    .bind(key.limit.subject.kind())
    .bind(key.limit.subject.id())
    .bind(key.limit.metric.as_str())
    .bind(key.limit.window.as_str())
    .bind(key.window_start.unix_micros())
    .bind(delta)
    .fetch_one(&mut *connection)
    .await
    .store()
}

/// Adds shadow-mode refusals to their limits' tallies; limits deleted meanwhile are skipped.
pub(crate) async fn record_shadow_hits(connection: &mut SqliteConnection, hits: &[ShadowHit]) -> Result<()> {
    for hit in hits {
        sqlx::query(
            "UPDATE quota_limits SET shadow_hits = shadow_hits + ?5,
                last_shadow_hit_at = max(coalesce(last_shadow_hit_at, ?6), ?6)
             WHERE subject_kind = ?1 AND subject = ?2 AND metric = ?3 AND period = ?4",
        )
        .bind(hit.limit.subject.kind())
        .bind(hit.limit.subject.id())
        .bind(hit.limit.metric.as_str())
        .bind(hit.limit.window.as_str())
        .bind(i64::try_from(hit.hits).unwrap_or(i64::MAX))
        .bind(hit.last_at.unix_micros())
        .execute(&mut *connection)
        .await
        .store()?;
    }
    Ok(())
}

/// Whether adding `amount` to `used` stays within `max`. A zero amount asks whether anything is left.
fn fits(used: i64, amount: i64, max: u64) -> bool {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if amount == 0 { used < max } else { used.checked_add(amount).is_some_and(|total| total <= max) }
}

fn rate_from_row(row: &SqliteRow) -> Result<RateLimitRecord> {
    let count = |name: &str| u32::try_from(row.get::<i64, _>(name)).map_err(|e| corrupt(name, e));
    Ok(RateLimitRecord {
        token_id: TokenId::parse(row.get("token_id")).map_err(|e| corrupt("token_rate_limits.token_id", e))?,
        spec: RateLimitSpec::new(count("requests_per_minute")?, count("burst")?)
            .map_err(|e| corrupt("token_rate_limits", e))?,
        updated_at: Timestamp::from_unix_micros(row.get("updated_at")),
    })
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn put_limit(&self, spec: &LimitSpec, at: Timestamp, audit: &AuditEvent) -> Result<LimitRecord> {
        let key = spec.key();
        let mut transaction = self.write().await?;
        sqlx::query(
            "INSERT INTO quota_limits (subject_kind, subject, metric, period, maximum, shadow, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (subject_kind, subject, metric, period)
             DO UPDATE SET maximum = excluded.maximum, shadow = excluded.shadow, updated_at = max(updated_at, excluded.updated_at)",
        )
        .bind(key.subject.kind())
        .bind(key.subject.id())
        .bind(key.metric.as_str())
        .bind(key.window.as_str())
        .bind(i64::try_from(spec.max()).unwrap_or(i64::MAX))
        .bind(i64::from(spec.shadow()))
        .bind(at.unix_micros())
        .execute(&mut *transaction)
        .await
        .store()?;
        let record = fetch_limit(&mut transaction, key).await?.ok_or(StoreError::NotFound { entity: "limit" })?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn delete_limit(&self, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord> {
        let mut transaction = self.write().await?;
        let record = fetch_limit(&mut transaction, key).await?.ok_or(StoreError::NotFound { entity: "limit" })?;
        for table in ["quota_limits", "quota_counters"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ?"
            ))
            .bind(key.subject.kind())
            .bind(key.subject.id())
            .bind(key.metric.as_str())
            .bind(key.window.as_str())
            .execute(&mut *transaction)
            .await
            .store()?;
        }
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn limits(&self, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {LIMIT_COLUMNS} FROM quota_limits
             WHERE (?1 IS NULL OR (subject_kind = ?1 AND subject = ?2))
             ORDER BY subject_kind, subject,
                CASE metric WHEN 'requests' THEN 0 WHEN 'tokens' THEN 1 ELSE 2 END,
                CASE period WHEN 'minute' THEN 0 WHEN 'hour' THEN 1 WHEN 'day' THEN 2 ELSE 3 END"
        ))
        .bind(subject.map(LimitSubject::kind))
        .bind(subject.map(LimitSubject::id))
        .fetch_all(&self.reader)
        .await
        .store()?;
        rows.iter().map(limit_from_row).collect()
    }

    async fn load_counter(&self, key: &CounterKey) -> Result<i64> {
        let mut transaction = self.write().await?;
        let used = ensure_counter(&mut transaction, key).await?;
        transaction.commit().await.store()?;
        Ok(used)
    }

    async fn try_consume(&self, increments: &[CounterIncrement]) -> Result<ConsumeOutcome> {
        let mut transaction = self.write().await?;
        let mut totals = Vec::with_capacity(increments.len());
        for (index, increment) in increments.iter().enumerate() {
            let used = ensure_counter(&mut transaction, &increment.key).await?;
            if let Some(max) = increment.max
                && !fits(used, increment.amount, max)
            {
                // Dropping the transaction rolls back every increment made so far.
                drop(transaction);
                return Ok(ConsumeOutcome::Refused { index, used });
            }
            totals.push(add_to_counter(&mut transaction, &increment.key, increment.amount).await?);
        }
        transaction.commit().await.store()?;
        Ok(ConsumeOutcome::Applied(totals))
    }

    async fn purge_counters(&self, before: Timestamp) -> Result<u64> {
        let mut transaction = self.write().await?;
        let deleted = sqlx::query("DELETE FROM quota_counters WHERE window_end < ?")
            .bind(before.unix_micros())
            .execute(&mut *transaction)
            .await
            .store()?
            .rows_affected();
        transaction.commit().await.store()?;
        Ok(deleted)
    }

    async fn put_rate_limit(
        &self,
        token_id: &TokenId,
        spec: &RateLimitSpec,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<RateLimitRecord> {
        let mut transaction = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = ?")
            .bind(token_id.to_string())
            .fetch_optional(&mut *transaction)
            .await
            .store()?;
        if exists.is_none() {
            return Err(StoreError::NotFound { entity: "token" });
        }
        let row = sqlx::query(
            "INSERT INTO token_rate_limits (token_id, requests_per_minute, burst, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (token_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
                burst = excluded.burst, updated_at = excluded.updated_at
             RETURNING token_id, requests_per_minute, burst, updated_at",
        )
        .bind(token_id.to_string())
        .bind(i64::from(spec.requests_per_minute()))
        .bind(i64::from(spec.burst()))
        .bind(at.unix_micros())
        .fetch_one(&mut *transaction)
        .await
        .store()?;
        let record = rate_from_row(&row)?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn delete_rate_limit(&self, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(
            "DELETE FROM token_rate_limits WHERE token_id = ? RETURNING token_id, requests_per_minute, burst, updated_at",
        )
        .bind(token_id.to_string())
        .fetch_optional(&mut *transaction)
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "rate limit" })?;
        let record = rate_from_row(&row)?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn rate_limits(&self) -> Result<Vec<RateLimitRecord>> {
        let rows = sqlx::query(
            "SELECT token_id, requests_per_minute, burst, updated_at FROM token_rate_limits ORDER BY token_id",
        )
        .fetch_all(&self.reader)
        .await
        .store()?;
        rows.iter().map(rate_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_amounts_ask_whether_anything_is_left() {
        assert!(fits(9, 0, 10));
        assert!(!fits(10, 0, 10));
        assert!(fits(9, 1, 10));
        assert!(!fits(10, 1, 10));
        assert!(fits(0, 10, 10));
        assert!(!fits(0, 11, 10));
        assert!(!fits(i64::MAX, 1, u64::MAX));
    }
}

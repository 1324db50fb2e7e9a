//! Quota limits, counters and per-token rate limits on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{LimitStore, RateLimitRecord, Result, ShadowHit, StoreError};
use tollgate_types::{
    AuditEvent, CounterKey, LimitKey, LimitRecord, LimitSpec, LimitSubject, Metric, RateLimitSpec, Timestamp, TokenId,
    Window,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one, scalar};
use crate::error::corrupt;

const LIMIT_COLUMNS: &str =
    "subject_kind, subject, metric, period, maximum, shadow, shadow_hits, last_shadow_hit_at, created_at, updated_at";

const LIMIT_NAMES: [&str; 10] = [
    "subject_kind",
    "subject",
    "metric",
    "period",
    "maximum",
    "shadow",
    "shadow_hits",
    "last_shadow_hit_at",
    "created_at",
    "updated_at",
];

fn at(index: usize) -> Column {
    Column { index, name: LIMIT_NAMES[index] }
}

fn limit_from_row(row: &Row<'_>) -> Result<LimitRecord> {
    let column = |name: &str, error: tollgate_types::ValidationError| corrupt(&format!("quota_limits.{name}"), error);
    let subject = LimitSubject::parse(&row.text(at(0))?, &row.text(at(1))?).map_err(|e| column("subject", e))?;
    let metric = row.text(at(2))?.parse::<Metric>().map_err(|e| column("metric", e))?;
    let window = row.text(at(3))?.parse::<Window>().map_err(|e| column("period", e))?;
    let max = u64::try_from(row.integer(at(4))?).map_err(|e| corrupt("quota_limits.maximum", e))?;
    let spec = LimitSpec::new(LimitKey { subject, metric, window }, max, row.integer(at(5))? == 1)
        .map_err(|e| column("maximum", e))?;
    Ok(LimitRecord {
        spec,
        shadow_hits: u64::try_from(row.integer(at(6))?).unwrap_or(0),
        last_shadow_hit_at: row.optional_integer(at(7))?.map(Timestamp::from_unix_micros),
        created_at: Timestamp::from_unix_micros(row.integer(at(8))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(9))?),
    })
}

fn fetch_limit(connection: &Connection, key: &LimitKey) -> Result<Option<LimitRecord>> {
    first(
        connection,
        &format!(
            "SELECT {LIMIT_COLUMNS} FROM quota_limits
             WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ?"
        ),
        params![key.subject.kind(), key.subject.id(), key.metric.as_str(), key.window.as_str()],
        limit_from_row,
    )
}

/// The usage already rolled up in a new counter's window: tokens or cost over whole hours.
/// Requests are counted at admission, not from usage, and minute windows are finer than rollups.
fn seed(connection: &Connection, key: &CounterKey) -> Result<i64> {
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
        LimitSubject::Owner(_) => "owner_id",
        LimitSubject::Project(_) => "project_id",
    };
    scalar(
        connection,
        &format!("SELECT coalesce(sum({sum}), 0) FROM usage_rollups WHERE {column} = ?1 AND hour >= ?2 AND hour < ?3"),
        params![key.limit.subject.id(), key.window_start.unix_micros(), key.window_end().unix_micros()],
    )
}

fn counter_params(key: &CounterKey) -> [rusqlite::types::Value; 5] {
    use rusqlite::types::Value;
    [
        Value::Text(key.limit.subject.kind().to_owned()),
        Value::Text(key.limit.subject.id()),
        Value::Text(key.limit.metric.as_str().to_owned()),
        Value::Text(key.limit.window.as_str().to_owned()),
        Value::Integer(key.window_start.unix_micros()),
    ]
}

/// The counter's stored value, `None` when it has no row yet.
fn stored_counter(connection: &Connection, key: &CounterKey) -> Result<Option<i64>> {
    first(
        connection,
        "SELECT used FROM quota_counters
         WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ? AND window_start = ?",
        rusqlite::params_from_iter(counter_params(key)),
        |row| row.integer(Column { index: 0, name: "quota_counters.used" }),
    )
}

/// The counter's value, read only: what [`ensure_counter`] would find or create.
pub(crate) fn counter_value(connection: &Connection, key: &CounterKey) -> Result<i64> {
    match stored_counter(connection, key)? {
        Some(used) => Ok(used),
        None => seed(connection, key),
    }
}

/// The counter's value, creating (and seeding) it when missing. Call inside a write job.
pub(crate) fn ensure_counter(connection: &Connection, key: &CounterKey) -> Result<i64> {
    if let Some(used) = stored_counter(connection, key)? {
        return Ok(used);
    }
    let used = seed(connection, key)?;
    execute(
        connection,
        "INSERT INTO quota_counters (subject_kind, subject, metric, period, window_start, window_end, used)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            key.limit.subject.kind(),
            key.limit.subject.id(),
            key.limit.metric.as_str(),
            key.limit.window.as_str(),
            key.window_start.unix_micros(),
            key.window_end().unix_micros(),
            used,
        ],
    )?;
    Ok(used)
}

/// Adds `delta` to a counter (creating it first when missing); returns the new value.
pub(crate) fn add_to_counter(connection: &Connection, key: &CounterKey, delta: i64) -> Result<i64> {
    let used = ensure_counter(connection, key)?;
    if delta == 0 {
        return Ok(used);
    }
    // Saturating at both ends: a counter neither overflows into a REAL nor goes below zero.
    scalar(
        connection,
        "UPDATE quota_counters SET used = CASE
            WHEN ?6 > 0 AND used > 9223372036854775807 - ?6 THEN 9223372036854775807
            WHEN ?6 < 0 AND used + ?6 < 0 THEN 0
            ELSE used + ?6 END
         WHERE subject_kind = ?1 AND subject = ?2 AND metric = ?3 AND period = ?4 AND window_start = ?5
         RETURNING used",
        params![
            key.limit.subject.kind(),
            key.limit.subject.id(),
            key.limit.metric.as_str(),
            key.limit.window.as_str(),
            key.window_start.unix_micros(),
            delta,
        ],
    )
}

/// Adds shadow-mode refusals to their limits' tallies; limits deleted meanwhile are skipped.
pub(crate) fn record_shadow_hits(connection: &Connection, hits: &[ShadowHit]) -> Result<()> {
    for hit in hits {
        execute(
            connection,
            "UPDATE quota_limits SET shadow_hits = shadow_hits + ?5,
                last_shadow_hit_at = max(coalesce(last_shadow_hit_at, ?6), ?6)
             WHERE subject_kind = ?1 AND subject = ?2 AND metric = ?3 AND period = ?4",
            params![
                hit.limit.subject.kind(),
                hit.limit.subject.id(),
                hit.limit.metric.as_str(),
                hit.limit.window.as_str(),
                i64::try_from(hit.hits).unwrap_or(i64::MAX),
                hit.last_at.unix_micros(),
            ],
        )?;
    }
    Ok(())
}

/// Whether adding `amount` to `used` stays within `max`. A zero amount asks whether anything is left.
pub(crate) fn fits(used: i64, amount: i64, max: u64) -> bool {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if amount == 0 { used < max } else { used.checked_add(amount).is_some_and(|total| total <= max) }
}

const RATE_COLUMNS: &str = "token_id, requests_per_minute, burst, updated_at";

fn rate_from_row(row: &Row<'_>) -> Result<RateLimitRecord> {
    let count = |index: usize, name: &'static str| -> Result<u32> {
        u32::try_from(row.integer(Column { index, name })?).map_err(|e| corrupt(name, e))
    };
    let token_id = row.text(Column { index: 0, name: "token_rate_limits.token_id" })?;
    Ok(RateLimitRecord {
        token_id: TokenId::parse(&token_id).map_err(|e| corrupt("token_rate_limits.token_id", e))?,
        spec: RateLimitSpec::new(count(1, "requests_per_minute")?, count(2, "burst")?)
            .map_err(|e| corrupt("token_rate_limits", e))?,
        updated_at: Timestamp::from_unix_micros(row.integer(Column { index: 3, name: "updated_at" })?),
    })
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn put_limit(&self, spec: &LimitSpec, at: Timestamp, audit: &AuditEvent) -> Result<LimitRecord> {
        let mut records = self.put_limits(&[(spec.clone(), audit.clone())], at).await?;
        records.pop().ok_or(StoreError::NotFound { entity: "limit" })
    }

    async fn put_limits(&self, changes: &[(LimitSpec, AuditEvent)], at: Timestamp) -> Result<Vec<LimitRecord>> {
        let changes = changes.to_vec();
        self.write(move |tx| {
            let mut records = Vec::with_capacity(changes.len());
            for (spec, audit) in &changes {
                let key = spec.key();
                execute(
                    tx.connection,
                    "INSERT INTO quota_limits (subject_kind, subject, metric, period, maximum, shadow, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (subject_kind, subject, metric, period)
                     DO UPDATE SET maximum = excluded.maximum, shadow = excluded.shadow,
                        updated_at = max(updated_at, excluded.updated_at)",
                    params![
                        key.subject.kind(),
                        key.subject.id(),
                        key.metric.as_str(),
                        key.window.as_str(),
                        i64::try_from(spec.max()).unwrap_or(i64::MAX),
                        i64::from(spec.shadow()),
                        at.unix_micros(),
                    ],
                )?;
                records.push(fetch_limit(tx.connection, key)?.ok_or(StoreError::NotFound { entity: "limit" })?);
                append(tx, audit)?;
            }
            Ok(records)
        })
        .await
    }

    async fn delete_limit(&self, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord> {
        let (key, audit) = (key.clone(), audit.clone());
        self.write(move |tx| {
            let record = fetch_limit(tx.connection, &key)?.ok_or(StoreError::NotFound { entity: "limit" })?;
            // Counters stay: setting the limit again mid-window continues from what was used.
            execute(
                tx.connection,
                "DELETE FROM quota_limits WHERE subject_kind = ? AND subject = ? AND metric = ? AND period = ?",
                params![key.subject.kind(), key.subject.id(), key.metric.as_str(), key.window.as_str()],
            )?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn limits(&self, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>> {
        let subject = subject.cloned();
        self.scan(move |connection| {
            collect(
                connection,
                &format!(
                    "SELECT {LIMIT_COLUMNS} FROM quota_limits
                     WHERE (?1 IS NULL OR (subject_kind = ?1 AND subject = ?2))
                     ORDER BY subject_kind, subject,
                        CASE metric WHEN 'requests' THEN 0 WHEN 'tokens' THEN 1 ELSE 2 END,
                        CASE period WHEN 'minute' THEN 0 WHEN 'hour' THEN 1 WHEN 'day' THEN 2 ELSE 3 END"
                ),
                params![subject.as_ref().map(LimitSubject::kind), subject.as_ref().map(LimitSubject::id)],
                limit_from_row,
            )
        })
        .await
    }

    async fn purge_counters(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            execute(tx.connection, "DELETE FROM quota_counters WHERE window_end < ?", [before.unix_micros()])
        })
        .await
    }

    async fn put_rate_limit(
        &self,
        token_id: &TokenId,
        spec: &RateLimitSpec,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<RateLimitRecord> {
        let (token_id, spec, audit) = (*token_id, *spec, audit.clone());
        self.write(move |tx| {
            let exists = first(tx.connection, "SELECT 1 FROM tokens WHERE id = ?", [token_id.to_string()], |_| Ok(()))?;
            if exists.is_none() {
                return Err(StoreError::NotFound { entity: "token" });
            }
            let record = one(
                tx.connection,
                "rate limit",
                &format!(
                    "INSERT INTO token_rate_limits ({RATE_COLUMNS}) VALUES (?, ?, ?, ?)
                     ON CONFLICT (token_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
                        burst = excluded.burst, updated_at = excluded.updated_at
                     RETURNING {RATE_COLUMNS}"
                ),
                params![
                    token_id.to_string(),
                    i64::from(spec.requests_per_minute()),
                    i64::from(spec.burst()),
                    at.unix_micros()
                ],
                rate_from_row,
            )?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn delete_rate_limit(&self, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord> {
        let (token_id, audit) = (*token_id, audit.clone());
        self.write(move |tx| {
            let record = one(
                tx.connection,
                "rate limit",
                &format!("DELETE FROM token_rate_limits WHERE token_id = ? RETURNING {RATE_COLUMNS}"),
                [token_id.to_string()],
                rate_from_row,
            )?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn rate_limits(&self) -> Result<Vec<RateLimitRecord>> {
        self.scan(|connection| {
            collect(
                connection,
                &format!("SELECT {RATE_COLUMNS} FROM token_rate_limits ORDER BY token_id"),
                [],
                rate_from_row,
            )
        })
        .await
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

//! Quota counters on PostgreSQL: seeded from the rollups when created, locked while a transaction
//! changes them, and saturating at both ends.
//!
//! A transaction that changes several counters locks them in [`CounterKey`] order (callers sort),
//! so two transactions touching the same counters never wait for each other in a cycle. A counter
//! is created with `INSERT … ON CONFLICT DO NOTHING` and then read `FOR UPDATE`: of two
//! transactions creating one counter, the second waits for the first and then works on its row.

use sqlx::PgConnection;
use tollgate_store::{Result, ShadowHit};
use tollgate_types::{CounterKey, LimitSubject, Metric, Window};

use crate::error::PgResultExt;

/// The largest BIGINT, where sums stop.
pub(crate) const MAX: &str = "9223372036854775807";

const KEY: &str = "subject_kind = $1 AND subject = $2 AND metric = $3 AND period = $4 AND window_start = $5";

/// Binds a counter's key as `$1` … `$5`.
fn bind_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    key: &CounterKey,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(key.limit.subject.kind())
        .bind(key.limit.subject.id())
        .bind(key.limit.metric.as_str())
        .bind(key.limit.window.as_str())
        .bind(key.window_start.unix_micros())
}

/// Binds a counter's key as `$1` … `$5` to a scalar query.
fn bind_key_scalar<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    key: &CounterKey,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(key.limit.subject.kind())
        .bind(key.limit.subject.id())
        .bind(key.limit.metric.as_str())
        .bind(key.limit.window.as_str())
        .bind(key.window_start.unix_micros())
}

/// The usage already rolled up in a new counter's window: tokens or cost over whole hours.
/// Requests are counted at admission, not from usage, and minute windows are finer than rollups.
async fn seed(connection: &mut PgConnection, key: &CounterKey) -> Result<i64> {
    let sum = match key.limit.metric {
        Metric::Requests => return Ok(0),
        Metric::Tokens => "input_tokens::numeric + output_tokens",
        Metric::Cost => "cost_micros::numeric",
    };
    if key.limit.window == Window::Minute {
        return Ok(0);
    }
    let column = match key.limit.subject {
        LimitSubject::Token(_) => "token_id",
        LimitSubject::Owner(_) => "owner_id",
        LimitSubject::Project(_) => "project_id",
    };
    sqlx::query_scalar(&format!(
        "SELECT least(coalesce(sum({sum}), 0), {MAX})::bigint FROM usage_rollups
         WHERE {column} = $1 AND hour >= $2 AND hour < $3"
    ))
    .bind(key.limit.subject.id())
    .bind(key.window_start.unix_micros())
    .bind(key.window_end().unix_micros())
    .fetch_one(connection)
    .await
    .store()
}

/// The counter's stored value (locked with `lock`), `None` when it has no row yet.
async fn stored(connection: &mut PgConnection, key: &CounterKey, lock: bool) -> Result<Option<i64>> {
    let sql = format!("SELECT used FROM quota_counters WHERE {KEY}{}", if lock { " FOR UPDATE" } else { "" });
    bind_key_scalar(sqlx::query_scalar(&sql), key).fetch_optional(connection).await.store()
}

/// The counter's value, read only: what [`ensure`] would find or create.
pub(crate) async fn value(connection: &mut PgConnection, key: &CounterKey) -> Result<i64> {
    match stored(connection, key, false).await? {
        Some(used) => Ok(used),
        None => seed(connection, key).await,
    }
}

/// The counter's value, creating (and seeding) it when missing, locked for the rest of the transaction.
pub(crate) async fn ensure(connection: &mut PgConnection, key: &CounterKey) -> Result<i64> {
    if let Some(used) = stored(connection, key, true).await? {
        return Ok(used);
    }
    let used = seed(connection, key).await?;
    bind_key(
        sqlx::query(
            "INSERT INTO quota_counters (subject_kind, subject, metric, period, window_start, window_end, used)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        ),
        key,
    )
    .bind(key.window_end().unix_micros())
    .bind(used)
    .execute(&mut *connection)
    .await
    .store()?;
    // Ours, or the row of a transaction that created it first (its seed then counts).
    Ok(stored(connection, key, true).await?.unwrap_or(used))
}

/// Adds `delta` to a counter (creating it first when missing), saturating at zero and at the
/// largest BIGINT; returns the new value.
pub(crate) async fn add(connection: &mut PgConnection, key: &CounterKey, delta: i64) -> Result<i64> {
    let used = ensure(connection, key).await?;
    if delta == 0 {
        return Ok(used);
    }
    bind_key_scalar(
        sqlx::query_scalar(&format!(
            "UPDATE quota_counters SET used = least(greatest(used::numeric + $6, 0), {MAX})::bigint
             WHERE {KEY} RETURNING used"
        )),
        key,
    )
    .bind(delta)
    .fetch_one(connection)
    .await
    .store()
}

/// Adds shadow-mode refusals to their limits' tallies (in key order); limits deleted meanwhile are skipped.
pub(crate) async fn record_shadow_hits(connection: &mut PgConnection, hits: &[ShadowHit]) -> Result<()> {
    let mut hits: Vec<&ShadowHit> = hits.iter().collect();
    hits.sort_by(|a, b| a.limit.cmp(&b.limit));
    for hit in hits {
        sqlx::query(&format!(
            "UPDATE quota_limits SET shadow_hits = least(shadow_hits::numeric + $5, {MAX})::bigint,
                last_shadow_hit_at = greatest(coalesce(last_shadow_hit_at, $6), $6)
             WHERE subject_kind = $1 AND subject = $2 AND metric = $3 AND period = $4"
        ))
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
pub(crate) fn fits(used: i64, amount: i64, max: u64) -> bool {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if amount == 0 { used < max } else { used.checked_add(amount).is_some_and(|total| total <= max) }
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

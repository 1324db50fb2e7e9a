//! Usage on SQLite: raw events appended with multi-row inserts, hourly rollups upserted in the same
//! transaction, summaries summed from rollups in SQL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use tollgate_store::{
    Result, UsageBatch, UsageFilter, UsageGroup, UsageGroupBy, UsageStore, UsageTotals, hourly_rollups,
};
use tollgate_types::{
    Endpoint, LATENCY_BUCKETS, LatencyHistogram, Microdollars, ModelName, Outcome, OwnerName, ProjectName,
    ProviderName, Timestamp, UsageEvent, Window,
};

use crate::SqliteStore;
use crate::error::SqlxResultExt;
use crate::limits::{add_to_counter, record_shadow_hits};

const EVENT_COLUMNS: &str =
    "token_id, at, series, input_tokens, output_tokens, requests, cost_micros, failed, latency_ms, ip";
const EVENT_PARAMETERS: usize = 10;
/// Rows per insert statement: the largest of the power-of-two statement sizes (512 × 10 parameters
/// stays far below SQLite's limit of 32,766).
const MAX_ROWS_PER_INSERT: usize = 512;
/// Raw events deleted per purge transaction, so recording is never blocked for long.
const PURGE_CHUNK: i64 = 10_000;

/// `INSERT` statements for 1, 2, 4, … 512 rows. A batch is written with the largest that fit, so
/// at most ten distinct statements exist and every one stays in the prepared-statement cache.
fn insert_statement(rows: usize) -> &'static str {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        let row = format!("({})", ["?"; EVENT_PARAMETERS].join(", "));
        (0..=MAX_ROWS_PER_INSERT.trailing_zeros())
            .map(|power| {
                let values = vec![row.as_str(); 1 << power].join(", ");
                format!("INSERT INTO usage_events ({EVENT_COLUMNS}) VALUES {values}")
            })
            .collect()
    });
    &statements[rows.trailing_zeros() as usize]
}

fn latency_columns(prefix: &str) -> String {
    (0..LATENCY_BUCKETS).map(|bucket| format!("{prefix}lat_{bucket}")).collect::<Vec<_>>().join(", ")
}

/// Adds one batch of rollup sums to a row, creating it with the token's owner, user and project.
fn rollup_statement() -> &'static str {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    STATEMENT.get_or_init(|| {
        let buckets: Vec<String> = (0..LATENCY_BUCKETS).map(|bucket| format!("?{}", 11 + bucket)).collect();
        let sums: Vec<String> = ["events", "requests", "input_tokens", "output_tokens", "cost_micros", "errors"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..LATENCY_BUCKETS).map(|bucket| format!("lat_{bucket}")))
            .map(|column| format!("{column} = {column} + excluded.{column}"))
            .collect();
        // `WHERE true` keeps SQLite from reading ON CONFLICT as part of the join.
        format!(
            "INSERT INTO usage_rollups (hour, token_id, provider, model, owner, user_id, project, events, requests,
                input_tokens, output_tokens, cost_micros, errors, {latency})
             SELECT ?1, ?2, ?3, ?4, t.owner, t.user_id, t.project, ?5, ?6, ?7, ?8, ?9, ?10, {buckets}
             FROM (SELECT 1) LEFT JOIN tokens t ON t.id = ?2 WHERE true
             ON CONFLICT (hour, token_id, provider, model) DO UPDATE SET
                owner = coalesce(owner, excluded.owner), user_id = coalesce(user_id, excluded.user_id),
                project = coalesce(project, excluded.project), {sums}",
            latency = latency_columns(""),
            buckets = buckets.join(", "),
            sums = sums.join(", "),
        )
    })
}

/// A sum that fits SQLite's INTEGER (sums are bounded far below this by the per-event limits).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The series (provider, model, endpoint) of a batch's events, by id: created when new.
type SeriesIds<'a> = HashMap<(&'a str, &'a str, &'a str), i64>;

async fn series_ids<'a>(connection: &mut SqliteConnection, events: &'a [UsageEvent]) -> Result<SeriesIds<'a>> {
    let mut ids = SeriesIds::new();
    for event in events {
        let endpoint = event.endpoint.as_ref().map_or("", Endpoint::as_str);
        let key = (event.provider.as_str(), event.model.as_str(), endpoint);
        if ids.contains_key(&key) {
            continue;
        }
        // The no-op update makes RETURNING answer for an existing row too.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO usage_series (provider, model, endpoint) VALUES (?, ?, ?)
             ON CONFLICT (provider, model, endpoint) DO UPDATE SET provider = excluded.provider
             RETURNING id",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(key.2)
        .fetch_one(&mut *connection)
        .await
        .store()?;
        ids.insert(key, id);
    }
    Ok(ids)
}

fn ip_bytes(ip: Option<IpAddr>) -> Option<Vec<u8>> {
    ip.map(|ip| match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    })
}

async fn insert_events(connection: &mut SqliteConnection, events: &[UsageEvent]) -> Result<()> {
    let series = series_ids(connection, events).await?;
    let mut rest = events;
    while !rest.is_empty() {
        let rows = MAX_ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(rows);
        let mut query = sqlx::query(insert_statement(rows));
        for event in chunk {
            let endpoint = event.endpoint.as_ref().map_or("", Endpoint::as_str);
            let series_id = series[&(event.provider.as_str(), event.model.as_str(), endpoint)];
            query = query
                .bind(event.token_id.as_bytes().as_slice())
                .bind(event.at.unix_micros())
                .bind(series_id)
                .bind(i64::from(event.input_tokens))
                .bind(i64::from(event.output_tokens))
                .bind(i64::from(event.requests))
                .bind(event.cost.unwrap_or(Microdollars::ZERO).micros())
                .bind(i64::from(event.outcome == Outcome::Error))
                .bind(event.latency_ms.map(i64::from))
                .bind(ip_bytes(event.ip));
        }
        query.execute(&mut *connection).await.store()?;
        rest = tail;
    }
    Ok(())
}

async fn upsert_rollups(connection: &mut SqliteConnection, events: &[UsageEvent]) -> Result<()> {
    for (key, totals) in hourly_rollups(events) {
        let mut query = sqlx::query(rollup_statement())
            .bind(key.hour.unix_micros())
            .bind(key.token_id.to_string())
            .bind(key.provider.as_str())
            .bind(key.model.as_str())
            .bind(int(totals.events))
            .bind(int(totals.requests))
            .bind(int(totals.input_tokens))
            .bind(int(totals.output_tokens))
            .bind(totals.cost.micros())
            .bind(int(totals.errors));
        for count in totals.latency.counts() {
            query = query.bind(int(*count));
        }
        query.execute(&mut *connection).await.store()?;
    }
    Ok(())
}

fn totals_from_row(row: &SqliteRow) -> UsageTotals {
    let count = |column: &str| u64::try_from(row.get::<i64, _>(column)).unwrap_or(0);
    let mut buckets = [0u64; LATENCY_BUCKETS];
    for (bucket, slot) in buckets.iter_mut().enumerate() {
        *slot = count(&format!("lat_{bucket}"));
    }
    UsageTotals {
        events: count("events"),
        requests: count("requests"),
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cost: Microdollars::from_micros(row.get("cost_micros")),
        errors: count("errors"),
        latency: LatencyHistogram::from_counts(buckets),
    }
}

/// The hours a filter covers: `since` rounded down, `until` rounded up.
fn hour_range(filter: &UsageFilter) -> (i64, i64) {
    let since = Window::Hour.start_of(filter.since);
    let until_start = Window::Hour.start_of(filter.until);
    let until = if until_start == filter.until { until_start } else { Window::Hour.end_of(filter.until) };
    (since.unix_micros(), until.unix_micros())
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<Vec<i64>> {
        if batch.events.is_empty() && batch.counters.is_empty() && batch.shadow_hits.is_empty() {
            return Ok(Vec::new());
        }
        let mut transaction = self.write().await?;
        // Counters first: a counter created here is seeded from the rollups as they were before
        // this batch, and the batch's own contribution arrives as the delta.
        let mut totals = Vec::with_capacity(batch.counters.len());
        for delta in batch.counters {
            totals.push(add_to_counter(&mut transaction, &delta.key, delta.delta).await?);
        }
        record_shadow_hits(&mut transaction, batch.shadow_hits).await?;
        insert_events(&mut transaction, batch.events).await?;
        upsert_rollups(&mut transaction, batch.events).await?;
        transaction.commit().await.store()?;
        Ok(totals)
    }

    async fn usage_summary(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        limit: u32,
    ) -> Result<Vec<UsageGroup>> {
        let key = match group_by {
            None => "NULL",
            Some(UsageGroupBy::Token) => "token_id",
            Some(UsageGroupBy::Owner) => "owner",
            Some(UsageGroupBy::User) => "user_id",
            Some(UsageGroupBy::Project) => "project",
            Some(UsageGroupBy::Provider) => "provider",
            Some(UsageGroupBy::Model) => "provider || '/' || model",
            Some(UsageGroupBy::Hour) => "CAST(hour AS TEXT)",
        };
        let group = if group_by.is_some() { "GROUP BY group_key" } else { "" };
        let sums: Vec<String> = ["events", "requests", "input_tokens", "output_tokens", "cost_micros", "errors"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..LATENCY_BUCKETS).map(|bucket| format!("lat_{bucket}")))
            .map(|column| format!("coalesce(sum({column}), 0) AS {column}"))
            .collect();
        let sql = format!(
            "SELECT {key} AS group_key, {sums} FROM usage_rollups
             WHERE hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR token_id = ?3) AND (?4 IS NULL OR owner = ?4)
               AND (?5 IS NULL OR user_id = ?5) AND (?6 IS NULL OR project = ?6)
               AND (?7 IS NULL OR provider = ?7) AND (?8 IS NULL OR model = ?8)
             {group} ORDER BY cost_micros DESC, group_key LIMIT ?9",
            sums = sums.join(", "),
        );
        let (since, until) = hour_range(filter);
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(until)
            .bind(filter.token_id.map(|id| id.to_string()))
            .bind(filter.owner.as_ref().map(OwnerName::as_str))
            .bind(filter.user_id.map(|id| id.to_string()))
            .bind(filter.project.as_ref().map(ProjectName::as_str))
            .bind(filter.provider.as_ref().map(ProviderName::as_str))
            .bind(filter.model.as_ref().map(ModelName::as_str))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.reader)
            .await
            .store()?;
        Ok(rows
            .iter()
            .map(|row| {
                let key: Option<String> = row.get("group_key");
                let key = match group_by {
                    Some(UsageGroupBy::Hour) => key
                        .and_then(|micros| micros.parse::<i64>().ok())
                        .map(|micros| Timestamp::from_unix_micros(micros).to_rfc3339()),
                    _ => key,
                };
                UsageGroup { key, totals: totals_from_row(row) }
            })
            .collect())
    }

    async fn count_usage_events(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM usage_events").fetch_one(&self.reader).await.store()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        let mut purged = 0u64;
        loop {
            // One chunk per transaction: the oldest rows come first in rowid order, so each chunk
            // is found near the start of the table, and batches from the recorder interleave.
            let mut transaction = self.write().await?;
            let deleted = sqlx::query(
                "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE at < ?1 LIMIT ?2)",
            )
            .bind(before.unix_micros())
            .bind(PURGE_CHUNK)
            .execute(&mut *transaction)
            .await
            .store()?
            .rows_affected();
            transaction.commit().await.store()?;
            purged += deleted;
            if deleted < PURGE_CHUNK.unsigned_abs() {
                return Ok(purged);
            }
        }
    }
}

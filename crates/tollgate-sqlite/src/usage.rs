//! Usage on SQLite: raw events appended in blocks (see `events`), hourly rollups upserted in the
//! same transaction, summaries summed from rollups in SQL.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use tollgate_store::{
    Result, UsageBatch, UsageFilter, UsageGroup, UsageGroupBy, UsageStore, UsageTotals, hourly_rollups,
};
use tollgate_types::{
    LATENCY_BUCKETS, LatencyHistogram, Microdollars, ModelName, OwnerName, ProjectName, ProviderName, Timestamp,
    UsageEvent, Window,
};

use crate::SqliteStore;
use crate::batch::{Statements, chunk_sizes, placeholders};
use crate::error::SqlxResultExt;
use crate::events::{self, insert_blocks};
use crate::limits::{add_to_counter, record_shadow_hits};

fn latency_columns(prefix: &str) -> String {
    (0..LATENCY_BUCKETS).map(|bucket| format!("{prefix}lat_{bucket}")).collect::<Vec<_>>().join(", ")
}

/// Columns bound per rollup row: the key (4), the sums (6) and the latency buckets.
const ROLLUP_PARAMETERS: usize = 10 + LATENCY_BUCKETS;

/// Adds rollup sums to rows, creating each with its token's owner, user and project.
fn rollup_statement(rows: usize) -> String {
    let bound: Vec<String> = (1..=ROLLUP_PARAMETERS).map(|column| format!("v.column{column}")).collect();
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
         SELECT {key}, t.owner, t.user_id, t.project, {values}
         FROM (VALUES {placeholders}) AS v LEFT JOIN tokens t ON t.id = v.column2 WHERE true
         ON CONFLICT (hour, token_id, provider, model) DO UPDATE SET
            owner = coalesce(owner, excluded.owner), user_id = coalesce(user_id, excluded.user_id),
            project = coalesce(project, excluded.project), {sums}",
        latency = latency_columns(""),
        key = bound[..4].join(", "),
        values = bound[4..].join(", "),
        placeholders = placeholders(rows, ROLLUP_PARAMETERS),
        sums = sums.join(", "),
    )
}

/// Rollup rows per statement at most (64 × 27 parameters).
static ROLLUP_STATEMENTS: Statements = Statements::new(64, rollup_statement);

/// A sum that fits SQLite's INTEGER (sums are bounded far below this by the per-event limits).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn upsert_rollups(connection: &mut SqliteConnection, events: &[UsageEvent]) -> Result<()> {
    let rollups = hourly_rollups(events);
    let mut rest = rollups.as_slice();
    for rows in chunk_sizes(rest.len(), ROLLUP_STATEMENTS.max()) {
        let (chunk, tail) = rest.split_at(rows);
        let mut query = sqlx::query(ROLLUP_STATEMENTS.get(rows));
        for (key, totals) in chunk {
            query = query
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
        }
        query.execute(&mut *connection).await.store()?;
        rest = tail;
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
        insert_blocks(&mut transaction, batch.events).await?;
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
        events::count(&self.reader).await
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        let mut purged = 0u64;
        // Whole blocks first, a chunk per transaction so batches from the recorder interleave.
        loop {
            let mut transaction = self.write().await?;
            let (blocks, events) = events::purge_whole_blocks(&mut transaction, before).await?;
            transaction.commit().await.store()?;
            purged += events;
            if blocks == 0 {
                break;
            }
        }
        let mut transaction = self.write().await?;
        purged += events::purge_straddling_blocks(&mut transaction, before).await?;
        transaction.commit().await.store()?;
        Ok(purged)
    }
}

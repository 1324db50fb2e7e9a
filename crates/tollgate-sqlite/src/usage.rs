//! Usage on SQLite: raw events appended in blocks (see `events`), hourly rollups upserted in the
//! same transaction (summaries of the rollups are in `summaries`).

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::types::Value;
use tollgate_store::{
    BatchWritten, DeadLetter, DeadLetterRecord, Page, PageRequest, Result, UsageBatch, UsageFilter, UsageGroup,
    UsageGroupBy, UsageStore, UsageTotals, hourly_rollups,
};
use tollgate_types::{LATENCY_BUCKETS, Timestamp, UsageEvent};

use crate::SqliteStore;
use crate::batch::{Statements, chunk_sizes, placeholders};
use crate::error::SqliteResultExt;
use crate::events;
use crate::record::{Encoded, record_in};
use crate::summaries::{Sums, summed_columns};

/// Columns bound per rollup row: the key (4), the sums (6) and the latency buckets.
const ROLLUP_PARAMETERS: usize = 10 + LATENCY_BUCKETS;

/// Adds rollup sums to rows, creating each with its token's owner and project.
fn rollup_statement(rows: usize) -> String {
    let bound: Vec<String> = (1..=ROLLUP_PARAMETERS).map(|column| format!("v.column{column}")).collect();
    let sums: Vec<String> = summed_columns(Sums::WithLatency)
        // Saturating: a sum that would pass i64::MAX stays there instead of turning into a REAL
        // that the STRICT table refuses (which would fail the batch for every tenant in it).
        .map(|column| {
            format!(
                "{column} = CASE WHEN {column} > 9223372036854775807 - excluded.{column} \
                 THEN 9223372036854775807 ELSE {column} + excluded.{column} END"
            )
        })
        .collect();
    // `WHERE true` keeps SQLite from reading ON CONFLICT as part of the join.
    format!(
        "INSERT INTO usage_rollups (hour, token_id, provider, model, owner_id, project_id, agent_id, {columns})
         SELECT {key}, t.owner_id, t.project_id, t.agent_id, {values}
         FROM (VALUES {placeholders}) AS v LEFT JOIN tokens t ON t.id = v.column2 WHERE true
         ON CONFLICT (hour, token_id, provider, model) DO UPDATE SET
            owner_id = coalesce(owner_id, excluded.owner_id), project_id = coalesce(project_id, excluded.project_id),
            agent_id = coalesce(agent_id, excluded.agent_id), {sums}",
        columns = summed_columns(Sums::WithLatency).collect::<Vec<_>>().join(", "),
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

/// One rollup row's key and sums, owned so it can travel to the writer thread.
#[derive(Debug)]
pub(crate) struct RollupRow {
    hour: i64,
    token_id: String,
    provider: String,
    model: String,
    totals: UsageTotals,
}

pub(crate) fn rollup_rows<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<RollupRow> {
    hourly_rollups(events)
        .into_iter()
        .map(|(key, totals)| RollupRow {
            hour: key.hour.unix_micros(),
            token_id: key.token_id.to_string(),
            provider: key.provider.as_str().to_owned(),
            model: key.model.as_str().to_owned(),
            totals,
        })
        .collect()
}

pub(crate) fn upsert_rollups(connection: &Connection, rollups: Vec<RollupRow>) -> Result<()> {
    let total = rollups.len();
    let mut rollups = rollups.into_iter();
    for rows in chunk_sizes(total, ROLLUP_STATEMENTS.max()) {
        let mut statement = connection.prepare_cached(ROLLUP_STATEMENTS.get(rows)).store()?;
        let mut values: Vec<Value> = Vec::with_capacity(rows * ROLLUP_PARAMETERS);
        for row in rollups.by_ref().take(rows) {
            let totals = &row.totals;
            values.extend([
                Value::Integer(row.hour),
                Value::Text(row.token_id),
                Value::Text(row.provider),
                Value::Text(row.model),
                Value::Integer(int(totals.events)),
                Value::Integer(int(totals.requests)),
                Value::Integer(int(totals.input_tokens)),
                Value::Integer(int(totals.output_tokens)),
                Value::Integer(totals.cost.micros()),
                Value::Integer(int(totals.errors)),
            ]);
            values.extend(totals.latency.counts().iter().map(|count| Value::Integer(int(*count))));
        }
        statement.execute(rusqlite::params_from_iter(values)).store()?;
    }
    Ok(())
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<BatchWritten> {
        if batch.events.is_empty() && batch.counters.is_empty() && batch.shadow_hits.is_empty() {
            return Ok(BatchWritten::default());
        }
        // Encoded here, on the caller's task: the writer thread only writes.
        let encoded = Encoded::of(batch.events);
        let (items, counters, shadow_hits) =
            (batch.events.to_vec(), batch.counters.to_vec(), batch.shadow_hits.to_vec());
        self.write(move |tx| record_in(tx, &items, encoded, &counters, &shadow_hits)).await
    }

    async fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        crate::dead_letters::add(self, letters).await
    }

    async fn dead_letters(&self, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
        crate::dead_letters::list(self, page).await
    }

    async fn count_dead_letters(&self) -> Result<u64> {
        self.scan(|connection| {
            let count: i64 = crate::columns::scalar(connection, "SELECT count(*) FROM usage_dead_letters", [])?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn usage_groups(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<Page<UsageGroup>> {
        self.summarize(filter, group_by, page, Sums::WithLatency).await
    }

    async fn usage_groups_without_latency(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<Page<UsageGroup>> {
        self.summarize(filter, group_by, page, Sums::Totals).await
    }

    async fn count_usage_events(&self) -> Result<u64> {
        self.scan(events::count).await
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        let mut purged = 0u64;
        // Whole blocks first, a chunk per write so batches from the recorder interleave.
        loop {
            let (blocks, events) = self.write(move |tx| events::purge_whole_blocks(tx.connection, before)).await?;
            purged += events;
            if blocks == 0 {
                break;
            }
        }
        purged += self.write(move |tx| events::purge_straddling_blocks(tx.connection, before)).await?;
        // Idempotency keys have no index on time (one would double the cost of recording every
        // event): the table is walked in key order, a range per write so recording interleaves.
        let mut after: (Vec<u8>, String) = (Vec::new(), String::new());
        loop {
            let from = after.clone();
            match self.write(move |tx| purge_key_range(tx.connection, before, &from)).await? {
                Some(last) => after = last,
                None => break,
            }
        }
        Ok(purged)
    }
}

/// Keys looked at per write job when purging idempotency keys.
const KEY_RANGE: i64 = 20_000;

/// Deletes the idempotency keys older than `before` among the next `KEY_RANGE` keys after `after`;
/// returns the last key of the range, or `None` when the table is done.
fn purge_key_range(
    connection: &rusqlite::Connection,
    before: Timestamp,
    after: &(Vec<u8>, String),
) -> Result<Option<(Vec<u8>, String)>> {
    let last: Option<(Vec<u8>, String)> = crate::columns::first(
        connection,
        "SELECT token_id, event_id FROM usage_event_ids WHERE (token_id, event_id) > (?1, ?2)
         ORDER BY token_id, event_id LIMIT 1 OFFSET ?3",
        rusqlite::params![after.0, after.1, KEY_RANGE - 1],
        |row| Ok((row.get(0).store()?, row.get(1).store()?)),
    )?;
    match &last {
        Some(last) => crate::columns::execute(
            connection,
            "DELETE FROM usage_event_ids WHERE (token_id, event_id) > (?1, ?2) AND (token_id, event_id) <= (?3, ?4)
               AND at < ?5",
            rusqlite::params![after.0, after.1, last.0, last.1, before.unix_micros()],
        )?,
        None => crate::columns::execute(
            connection,
            "DELETE FROM usage_event_ids WHERE (token_id, event_id) > (?1, ?2) AND at < ?3",
            rusqlite::params![after.0, after.1, before.unix_micros()],
        )?,
    };
    Ok(last)
}

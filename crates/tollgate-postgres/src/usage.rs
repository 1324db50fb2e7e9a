//! Usage on PostgreSQL: batches recorded in one transaction (see `record`), dead letters,
//! summaries summed from rollups in SQL, and the purge of raw events and their keys.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tollgate_store::{
    AgentScope, BatchWritten, DeadLetter, DeadLetterRecord, GroupCursor, Page, PageRequest, Result, UsageBatch,
    UsageFilter, UsageGroup, UsageGroupBy, UsageStore, UsageTotals, group_page,
};
use tollgate_types::{LATENCY_BUCKETS, LatencyHistogram, Microdollars, ModelName, ProviderName, Timestamp};

use crate::PgStore;
use crate::counters::MAX;
use crate::error::PgResultExt;
use crate::events;
use crate::record::record_in;
use crate::rows::{count, get};
use crate::store::retrying;

const TOTAL_COLUMNS: [&str; 6] = ["events", "requests", "input_tokens", "output_tokens", "cost_micros", "errors"];

/// Every summed column: the totals, then the latency buckets.
fn summed_columns(sums: Sums) -> impl Iterator<Item = String> {
    let buckets = if sums == Sums::WithLatency { LATENCY_BUCKETS } else { 0 };
    TOTAL_COLUMNS.into_iter().map(str::to_owned).chain((0..buckets).map(|bucket| format!("lat_{bucket}")))
}

/// What a summary sums: the totals and every latency bucket, or the totals only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sums {
    WithLatency,
    Totals,
}

/// Reads the sums of a summary row (each summed as NUMERIC, which cannot overflow, then capped at
/// the largest BIGINT).
fn totals_from_row(row: &PgRow, sums: Sums) -> Result<UsageTotals> {
    let table = "usage_rollups";
    let mut buckets = [0u64; LATENCY_BUCKETS];
    if sums == Sums::WithLatency {
        for (bucket, slot) in buckets.iter_mut().enumerate() {
            *slot = count(row, table, &format!("lat_{bucket}"))?;
        }
    }
    Ok(UsageTotals {
        events: count(row, table, "events")?,
        requests: count(row, table, "requests")?,
        input_tokens: count(row, table, "input_tokens")?,
        output_tokens: count(row, table, "output_tokens")?,
        cost: Microdollars::from_micros(get(row, table, "cost_micros")?),
        errors: count(row, table, "errors")?,
        latency: LatencyHistogram::from_counts(buckets),
    })
}

impl PgStore {
    /// The groups of [`UsageStore::usage_groups`], summing what `sums` says.
    async fn summarize(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
        sums: Sums,
    ) -> Result<Page<UsageGroup>> {
        let key = match group_by {
            None => "NULL::text",
            Some(UsageGroupBy::Token) => "token_id",
            Some(UsageGroupBy::Owner) => "owner_id",
            Some(UsageGroupBy::Project) => "project_id",
            Some(UsageGroupBy::Provider) => "provider",
            Some(UsageGroupBy::Model) => "provider || '/' || model",
            Some(UsageGroupBy::Hour) => "hour::text",
            Some(UsageGroupBy::Agent) => "agent_id",
        };
        let group = if group_by.is_some() { "GROUP BY group_key" } else { "" };
        let sum_sql: Vec<String> = summed_columns(sums)
            .map(|column| format!("least(coalesce(sum({column}), 0), {MAX})::bigint AS {column}"))
            .collect();
        // Highest cost first (as capped), then by key bytewise with the keyless group first, as on
        // SQLite; the page starts after the cursor's (cost, key).
        let sql = format!(
            "SELECT * FROM (
                SELECT ({key}) COLLATE \"C\" AS group_key, {sums} FROM usage_rollups
                WHERE hour >= $1 AND hour < $2 AND ($3::text IS NULL OR token_id = $3)
                  AND ($4::text IS NULL OR owner_id = $4) AND ($5::text IS NULL OR project_id = $5)
                  AND ($6::text IS NULL OR provider = $6) AND ($7::text IS NULL OR model = $7)
                  AND (NOT $9 OR agent_id IS NOT NULL) AND ($10::text IS NULL OR agent_id = $10)
                {group}
             ) AS g
             WHERE $11::bigint IS NULL OR cost_micros < $11
                OR (cost_micros = $11 AND coalesce(group_key, '') > $12 COLLATE \"C\")
             ORDER BY cost_micros DESC, coalesce(group_key, '')
             LIMIT $8",
            sums = sum_sql.join(", "),
        );
        let after = page.cursor.as_deref().map(GroupCursor::decode).transpose()?;
        let (since, until) = filter.rollup_hours();
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(until)
            .bind(filter.token_id.map(|id| id.to_string()))
            .bind(filter.owner.map(|id| id.to_string()))
            .bind(filter.project.map(|id| id.to_string()))
            .bind(filter.provider.as_ref().map(ProviderName::as_str))
            .bind(filter.model.as_ref().map(ModelName::as_str))
            .bind(i64::from(limit) + 1)
            .bind(filter.agent.is_some())
            .bind(filter.agent.and_then(AgentScope::agent).map(|id| id.to_string()))
            .bind(after.as_ref().map(|after| after.cost))
            .bind(after.as_ref().and_then(|after| after.key.clone()).unwrap_or_default())
            .fetch_all(self.pool())
            .await
            .store()?;
        let rows = rows
            .iter()
            .map(|row| Ok((get::<Option<String>>(row, "usage_rollups", "group_key")?, totals_from_row(row, sums)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(group_page(rows, group_by, limit))
    }
}

/// Keys looked at per transaction when purging idempotency keys.
const KEY_RANGE: i64 = 20_000;

/// Deletes the idempotency keys older than `before` among the next `KEY_RANGE` keys after `after`;
/// returns the last key of the range, or `None` when the table is done. (No index on time: one
/// would double what recording each event costs, so the table is walked in key order.)
async fn purge_key_range(
    store: &PgStore,
    before: Timestamp,
    after: &(Vec<u8>, String),
) -> Result<Option<(Vec<u8>, String)>> {
    let mut tx = store.begin().await?;
    let last: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT token_id, event_id FROM usage_event_ids WHERE (token_id, event_id) > ($1, $2)
         ORDER BY token_id, event_id OFFSET $3 LIMIT 1",
    )
    .bind(&after.0)
    .bind(&after.1)
    .bind(KEY_RANGE - 1)
    .fetch_optional(tx.conn())
    .await
    .store()?;
    let (upto_token, upto_id) = match &last {
        Some((token, id)) => (Some(token.clone()), Some(id.clone())),
        None => (None, None),
    };
    sqlx::query(
        "DELETE FROM usage_event_ids WHERE (token_id, event_id) > ($1, $2)
           AND ($3::bytea IS NULL OR (token_id, event_id) <= ($3, $4)) AND at < $5",
    )
    .bind(&after.0)
    .bind(&after.1)
    .bind(upto_token)
    .bind(upto_id)
    .bind(before.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    tx.commit().await?;
    Ok(last)
}

#[async_trait]
impl UsageStore for PgStore {
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<BatchWritten> {
        if batch.events.is_empty() && batch.counters.is_empty() && batch.shadow_hits.is_empty() {
            return Ok(BatchWritten::default());
        }
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let written = record_in(tx.conn(), batch.events, batch.counters, batch.shadow_hits).await?;
            tx.commit().await?;
            Ok(written)
        })
        .await
    }

    async fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        crate::dead_letters::add(self, letters).await
    }

    async fn dead_letters(&self, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
        crate::dead_letters::list(self, page).await
    }

    async fn count_dead_letters(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM usage_dead_letters").fetch_one(self.pool()).await.store()?;
        Ok(u64::try_from(count).unwrap_or(0))
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
        let mut connection = self.pool().acquire().await.store()?;
        events::count(&mut connection).await
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        let mut purged = 0u64;
        // Whole blocks first, a chunk per transaction so batches from the recorder interleave.
        loop {
            let (blocks, events) = retrying(move || async move {
                let mut tx = self.begin().await?;
                let deleted = events::purge_whole_blocks(tx.conn(), before).await?;
                tx.commit().await?;
                Ok(deleted)
            })
            .await?;
            purged += events;
            if blocks == 0 {
                break;
            }
        }
        purged += retrying(move || async move {
            let mut tx = self.begin().await?;
            let rewritten = events::purge_straddling_blocks(tx.conn(), before).await?;
            tx.commit().await?;
            Ok(rewritten)
        })
        .await?;
        let mut after: (Vec<u8>, String) = (Vec::new(), String::new());
        loop {
            let from = &after;
            let next = retrying(move || purge_key_range(self, before, from)).await?;
            match next {
                Some(last) => after = last,
                None => break,
            }
        }
        Ok(purged)
    }
}

//! Recording usage inside one transaction: idempotency keys first (a repeat is skipped), then the
//! counter deltas of the new events, the shadow hits, the raw blocks and the hourly rollups. Shared
//! by batch writes and by settling a reservation, so both count an event exactly once.
//!
//! Every kind of row is written in key order (keys, counters, limits, series, rollups), so
//! concurrent batches that touch the same rows wait for each other in one order and never deadlock;
//! a repeat of a key another batch is writing waits for that batch and then counts as a duplicate.

use std::collections::{BTreeMap, HashSet};

use sqlx::PgConnection;
use tollgate_store::{BatchWritten, CounterDelta, EventToRecord, RecordOutcome, Result, ShadowHit, hourly_rollups};
use tollgate_types::{CounterKey, LATENCY_BUCKETS, UsageEvent};

use crate::counters::{self, MAX};
use crate::error::PgResultExt;
use crate::events::{encode_blocks, insert_blocks};
use crate::rows::int;

/// Stores the idempotency keys of `items` and says which events are new: an event without a key
/// always is; an event whose key was stored before (or earlier in this batch) is a duplicate.
async fn outcomes_of(connection: &mut PgConnection, items: &[EventToRecord]) -> Result<Vec<RecordOutcome>> {
    // The first occurrence of each key in the batch, in key order.
    let mut firsts: BTreeMap<(&[u8], &str), usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        if let Some(event_id) = &item.event.event_id {
            firsts.entry((item.idempotency_scope().as_slice(), event_id.as_str())).or_insert(index);
        }
    }
    let mut outcomes: Vec<RecordOutcome> = items
        .iter()
        .map(|item| if item.event.event_id.is_none() { RecordOutcome::Recorded } else { RecordOutcome::Duplicate })
        .collect();
    if firsts.is_empty() {
        return Ok(outcomes);
    }
    let tokens: Vec<Vec<u8>> = firsts.keys().map(|(token, _)| token.to_vec()).collect();
    let ids: Vec<&str> = firsts.keys().map(|(_, id)| *id).collect();
    let times: Vec<i64> = firsts.values().map(|index| items[*index].event.at.unix_micros()).collect();
    let stored: Vec<(Vec<u8>, String)> = sqlx::query_as(
        "INSERT INTO usage_event_ids (token_id, event_id, at)
         SELECT token_id, event_id, at FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS key (token_id, event_id, at)
         ORDER BY token_id, event_id
         ON CONFLICT DO NOTHING
         RETURNING token_id, event_id",
    )
    .bind(tokens)
    .bind(ids)
    .bind(times)
    .fetch_all(connection)
    .await
    .store()?;
    let stored: HashSet<(&[u8], &str)> = stored.iter().map(|(token, id)| (token.as_slice(), id.as_str())).collect();
    for (key, index) in &firsts {
        if stored.contains(key) {
            outcomes[*index] = RecordOutcome::Recorded;
        }
    }
    Ok(outcomes)
}

/// Adds the rollups of `events` to their rows (creating each with its token's owner and project),
/// in key order, every sum saturating.
async fn upsert_rollups(connection: &mut PgConnection, events: &[&UsageEvent]) -> Result<()> {
    let rollups = hourly_rollups(events.iter().copied());
    if rollups.is_empty() {
        return Ok(());
    }
    let sums = ["events", "requests", "input_tokens", "output_tokens", "cost_micros", "errors"];
    let latency: Vec<String> = (0..LATENCY_BUCKETS).map(|bucket| format!("lat_{bucket}")).collect();
    let summed: Vec<&str> = sums.iter().copied().chain(latency.iter().map(String::as_str)).collect();
    let arrays: Vec<String> = (0..summed.len()).map(|index| format!("${}::bigint[]", index + 5)).collect();
    let updates: Vec<String> = summed
        .iter()
        .map(|column| format!("{column} = least(usage_rollups.{column}::numeric + excluded.{column}, {MAX})::bigint"))
        .collect();
    let sql = format!(
        "INSERT INTO usage_rollups (hour, token_id, provider, model, owner_id, project_id, agent_id, {columns})
         SELECT v.hour, v.token_id, v.provider, v.model, t.owner_id, t.project_id, t.agent_id, {values}
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], {arrays})
              AS v (hour, token_id, provider, model, {columns})
         LEFT JOIN tokens t ON t.id = v.token_id
         ORDER BY v.hour, v.token_id, v.provider, v.model
         ON CONFLICT (hour, token_id, provider, model) DO UPDATE SET
            owner_id = coalesce(usage_rollups.owner_id, excluded.owner_id),
            project_id = coalesce(usage_rollups.project_id, excluded.project_id),
            agent_id = coalesce(usage_rollups.agent_id, excluded.agent_id),
            {updates}",
        columns = summed.join(", "),
        values = summed.iter().map(|column| format!("v.{column}")).collect::<Vec<_>>().join(", "),
        arrays = arrays.join(", "),
        updates = updates.join(", "),
    );
    let mut query = sqlx::query(&sql)
        .bind(rollups.iter().map(|(key, _)| key.hour.unix_micros()).collect::<Vec<_>>())
        .bind(rollups.iter().map(|(key, _)| key.token_id.to_string()).collect::<Vec<_>>())
        .bind(rollups.iter().map(|(key, _)| key.provider.as_str().to_owned()).collect::<Vec<_>>())
        .bind(rollups.iter().map(|(key, _)| key.model.as_str().to_owned()).collect::<Vec<_>>());
    let columns: [fn(&tollgate_store::UsageTotals) -> i64; 6] = [
        |totals| int(totals.events),
        |totals| int(totals.requests),
        |totals| int(totals.input_tokens),
        |totals| int(totals.output_tokens),
        |totals| totals.cost.micros(),
        |totals| int(totals.errors),
    ];
    for column in columns {
        query = query.bind(rollups.iter().map(|(_, totals)| column(totals)).collect::<Vec<_>>());
    }
    for bucket in 0..LATENCY_BUCKETS {
        query = query.bind(rollups.iter().map(|(_, totals)| int(totals.latency.counts()[bucket])).collect::<Vec<_>>());
    }
    query.execute(connection).await.store().map(drop)
}

/// Records `items` and applies `counters` and `shadow_hits`, in the caller's transaction.
pub(crate) async fn record_in(
    connection: &mut PgConnection,
    items: &[EventToRecord],
    counters: &[CounterDelta],
    shadow_hits: &[ShadowHit],
) -> Result<BatchWritten> {
    let outcomes = outcomes_of(connection, items).await?;
    let fresh: Vec<&EventToRecord> = items
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == RecordOutcome::Recorded)
        .map(|(item, _)| item)
        .collect();
    // Counters before rollups: a counter created now is seeded from the rollups as they were before
    // this batch, and the batch's own contribution arrives as the delta. In key order (locks).
    let mut deltas: BTreeMap<&CounterKey, i64> = BTreeMap::new();
    for delta in fresh.iter().flat_map(|item| &item.counters).chain(counters) {
        let sum = deltas.entry(&delta.key).or_insert(0);
        *sum = sum.saturating_add(delta.delta);
    }
    let mut totals = Vec::with_capacity(deltas.len());
    for (key, delta) in deltas {
        totals.push((key.clone(), counters::add(connection, key, delta).await?));
    }
    counters::record_shadow_hits(connection, shadow_hits).await?;
    let events: Vec<&UsageEvent> = fresh.iter().map(|item| &item.event).collect();
    insert_blocks(connection, encode_blocks(events.iter().copied())).await?;
    upsert_rollups(connection, &events).await?;
    Ok(BatchWritten { outcomes, totals })
}

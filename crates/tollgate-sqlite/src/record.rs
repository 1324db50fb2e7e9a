//! Recording usage inside one write job: idempotency keys first (a repeat is skipped), then the
//! counter deltas of the new events, then their raw blocks and hourly rollups. Shared by batch
//! writes and by settling a reservation, so both count an event exactly once.

use std::collections::HashMap;

use rusqlite::params_from_iter;
use rusqlite::types::Value;
use tollgate_store::{BatchWritten, CounterDelta, EventToRecord, RecordOutcome, Result, ShadowHit};
use tollgate_types::CounterKey;

use crate::columns::collect;
use crate::error::{SqliteResultExt, corrupt};
use crate::events::{Block, encode_blocks, insert_blocks};
use crate::limits::{add_to_counter, record_shadow_hits};
use crate::usage::{RollupRow, rollup_rows, upsert_rollups};
use crate::writer::Tx;

/// The blocks and rollups of a batch, encoded off the writer's thread on the assumption that every
/// event is new (the writer re-encodes only when it finds repeats).
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    blocks: Vec<Block>,
    rollups: Vec<RollupRow>,
}

impl Encoded {
    pub(crate) fn of(items: &[EventToRecord]) -> Self {
        let events = || items.iter().map(|item| &item.event);
        Self { blocks: encode_blocks(events()), rollups: rollup_rows(events()) }
    }
}

/// Idempotency keys stored per statement (three parameters each).
const KEYS_PER_STATEMENT: usize = 200;

/// Stores the idempotency keys of `items` and says which events are new: an event without a key
/// always is; an event whose key was stored before (or earlier in this batch) is a duplicate. One
/// multi-row `INSERT OR IGNORE … RETURNING` per chunk: a statement per event cost more than the
/// B-tree insert itself.
fn outcomes_of(tx: &Tx<'_>, items: &[EventToRecord]) -> Result<Vec<RecordOutcome>> {
    let keyed: Vec<(usize, &[u8], &str)> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            Some((index, item.idempotency_scope().as_slice(), item.event.event_id.as_ref()?.as_str()))
        })
        .collect();
    let mut stored_now = vec![false; items.len()];
    for chunk in keyed.chunks(KEYS_PER_STATEMENT) {
        let sql = format!(
            "INSERT OR IGNORE INTO usage_event_ids (token_id, event_id, at) VALUES {} RETURNING token_id, event_id",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut parameters: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
        for (index, token, event_id) in chunk {
            parameters.push(Value::Blob(token.to_vec()));
            parameters.push(Value::Text((*event_id).to_owned()));
            parameters.push(Value::Integer(items[*index].event.at.unix_micros()));
        }
        let stored = collect(tx.connection, &sql, params_from_iter(parameters), |row| {
            Ok((row.get::<_, Vec<u8>>(0).store()?, row.get::<_, String>(1).store()?))
        })?;
        // Each stored key was taken by its first occurrence in the chunk (SQLite inserts in order).
        let mut sorted: Vec<&(usize, &[u8], &str)> = chunk.iter().collect();
        sorted.sort_by(|a, b| (a.1, a.2, a.0).cmp(&(b.1, b.2, b.0)));
        for (token, event_id) in &stored {
            let key = (token.as_slice(), event_id.as_str());
            let first = sorted.partition_point(|candidate| (candidate.1, candidate.2) < key);
            match sorted.get(first) {
                Some(candidate) if (candidate.1, candidate.2) == key => stored_now[candidate.0] = true,
                _ => return Err(corrupt("usage_event_ids", "a stored key that was not asked for")),
            }
        }
    }
    Ok(items
        .iter()
        .zip(stored_now)
        .map(|(item, stored_now)| match (&item.event.event_id, stored_now) {
            (None, _) | (Some(_), true) => RecordOutcome::Recorded,
            (Some(_), false) => RecordOutcome::Duplicate,
        })
        .collect())
}

/// Records `items` and applies `counters` and `shadow_hits`, in the caller's write job.
pub(crate) fn record_in(
    tx: &mut Tx<'_>,
    items: &[EventToRecord],
    encoded: Encoded,
    counters: &[CounterDelta],
    shadow_hits: &[ShadowHit],
) -> Result<BatchWritten> {
    let outcomes = outcomes_of(tx, items)?;
    // Counters before rollups: a counter created now is seeded from the rollups as they were before
    // this batch, and the batch's own contribution arrives as the delta.
    let mut deltas: HashMap<&CounterKey, i64> = HashMap::new();
    let mut order: Vec<&CounterKey> = Vec::new();
    let new_items = items.iter().zip(&outcomes).filter(|(_, outcome)| **outcome == RecordOutcome::Recorded);
    for delta in new_items.clone().flat_map(|(item, _)| &item.counters).chain(counters) {
        let sum = deltas.entry(&delta.key).or_insert_with(|| {
            order.push(&delta.key);
            0
        });
        *sum = sum.saturating_add(delta.delta);
    }
    let mut totals = Vec::with_capacity(order.len());
    for key in order {
        totals.push((key.clone(), add_to_counter(tx.connection, key, deltas[key])?));
    }
    record_shadow_hits(tx.connection, shadow_hits)?;
    let encoded = if outcomes.iter().all(|outcome| *outcome == RecordOutcome::Recorded) {
        encoded
    } else {
        let fresh: Vec<EventToRecord> = new_items.map(|(item, _)| item.clone()).collect();
        Encoded::of(&fresh)
    };
    insert_blocks(tx.connection, encoded.blocks)?;
    upsert_rollups(tx.connection, encoded.rollups)?;
    Ok(BatchWritten { outcomes, totals })
}

//! Recording usage inside one write job: idempotency keys first (a repeat is skipped), then the
//! counter deltas of the new events, then their raw blocks and hourly rollups. Shared by batch
//! writes and by settling a reservation, so both count an event exactly once.

use std::collections::HashMap;

use rusqlite::params;
use tollgate_store::{BatchWritten, CounterDelta, EventToRecord, RecordOutcome, Result, ShadowHit};
use tollgate_types::{CounterKey, UsageEvent};

use crate::columns::execute;
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

/// Whether `event` is new: stores its idempotency key, or finds it stored. Events without a key
/// are always new.
fn is_new(tx: &Tx<'_>, event: &UsageEvent) -> Result<bool> {
    let Some(event_id) = &event.event_id else { return Ok(true) };
    let inserted = execute(
        tx.connection,
        "INSERT OR IGNORE INTO usage_event_ids (token_id, event_id, at) VALUES (?, ?, ?)",
        params![event.token_id.as_bytes().as_slice(), event_id.as_str(), event.at.unix_micros()],
    )?;
    Ok(inserted == 1)
}

/// Records `items` and applies `counters` and `shadow_hits`, in the caller's write job.
pub(crate) fn record_in(
    tx: &mut Tx<'_>,
    items: &[EventToRecord],
    encoded: Encoded,
    counters: &[CounterDelta],
    shadow_hits: &[ShadowHit],
) -> Result<BatchWritten> {
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        outcomes.push(if is_new(tx, &item.event)? { RecordOutcome::Recorded } else { RecordOutcome::Duplicate });
    }
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

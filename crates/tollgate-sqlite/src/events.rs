//! Raw usage events on SQLite, in blocks: the events of one token and series (provider, model,
//! endpoint) in one batch share a row, as a JSON array. One row write per block instead of per
//! event is what lets a single SQLite writer take hundreds of thousands of events a second; the
//! `usage_events` view expands blocks back into one row per event.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, params};
use tollgate_store::Result;
pub(crate) use tollgate_store::event_blocks::{Block, SeriesKey, encode_blocks};
use tollgate_types::Timestamp;

use crate::batch::{Statements, chunk_sizes, placeholders};
use crate::columns::{Column, Columns, collect, scalar};
use crate::error::SqliteResultExt;

/// Whole blocks deleted per purge statement.
const PURGE_CHUNK: i64 = 1_000;

/// The series of a batch's events by (provider, model, endpoint), created when new.
type SeriesIds = HashMap<SeriesKey, i64>;

fn series_ids(connection: &Connection, blocks: &[Block]) -> Result<SeriesIds> {
    let mut ids = SeriesIds::new();
    for block in blocks {
        if ids.contains_key(&block.series) {
            continue;
        }
        // The no-op update makes RETURNING answer for an existing row too.
        let id: i64 = scalar(
            connection,
            "INSERT INTO usage_series (provider, model, endpoint) VALUES (?, ?, ?)
             ON CONFLICT (provider, model, endpoint) DO UPDATE SET provider = excluded.provider
             RETURNING id",
            params![block.series.0, block.series.1, block.series.2],
        )?;
        ids.insert(block.series.clone(), id);
    }
    Ok(ids)
}

/// Writes encoded blocks.
pub(crate) fn insert_blocks(connection: &Connection, blocks: Vec<Block>) -> Result<()> {
    let series = series_ids(connection, &blocks)?;
    let total = blocks.len();
    let mut blocks = blocks.into_iter();
    for rows in chunk_sizes(total, BLOCK_STATEMENTS.max()) {
        let mut statement = connection.prepare_cached(BLOCK_STATEMENTS.get(rows)).store()?;
        let mut values: Vec<Value> = Vec::with_capacity(rows * 6);
        for block in blocks.by_ref().take(rows) {
            values.push(Value::Blob(block.token_id.as_bytes().to_vec()));
            values.push(Value::Integer(series[&block.series]));
            values.push(Value::Integer(block.first_at.unix_micros()));
            values.push(Value::Integer(block.last_at.unix_micros()));
            values.push(Value::Integer(i64::try_from(block.events).unwrap_or(i64::MAX)));
            values.push(Value::Text(block.data));
        }
        statement.execute(rusqlite::params_from_iter(values)).store()?;
    }
    Ok(())
}

fn block_statement(rows: usize) -> String {
    format!(
        "INSERT INTO usage_event_blocks (token_id, series, first_at, last_at, events, data) VALUES {}",
        placeholders(rows, 6)
    )
}

/// Blocks per insert statement at most.
static BLOCK_STATEMENTS: Statements = Statements::new(64, block_statement);

/// How many raw events are stored.
pub(crate) fn count(connection: &Connection) -> Result<u64> {
    let count: i64 = scalar(connection, "SELECT coalesce(sum(events), 0) FROM usage_event_blocks", [])?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Deletes up to [`PURGE_CHUNK`] blocks whose events are all older than `before`; returns how many
/// blocks and events went.
pub(crate) fn purge_whole_blocks(connection: &Connection, before: Timestamp) -> Result<(i64, u64)> {
    let deleted = collect(
        connection,
        "DELETE FROM usage_event_blocks
         WHERE id IN (SELECT id FROM usage_event_blocks WHERE last_at < ?1 LIMIT ?2)
         RETURNING events",
        params![before.unix_micros(), PURGE_CHUNK],
        |row| row.integer(Column { index: 0, name: "usage_event_blocks.events" }),
    )?;
    let events = deleted.iter().map(|events| u64::try_from(*events).unwrap_or(0)).sum();
    Ok((i64::try_from(deleted.len()).unwrap_or(i64::MAX), events))
}

/// Rewrites the blocks that straddle `before` without their older events; returns how many went.
pub(crate) fn purge_straddling_blocks(connection: &Connection, before: Timestamp) -> Result<u64> {
    let held: i64 = scalar(
        connection,
        "SELECT coalesce(sum(events), 0) FROM usage_event_blocks WHERE first_at < ?1 AND last_at >= ?1",
        [before.unix_micros()],
    )?;
    if held == 0 {
        return Ok(0);
    }
    let kept = collect(
        connection,
        "UPDATE usage_event_blocks SET
            data = (SELECT json_group_array(json(e.value)) FROM json_each(usage_event_blocks.data) e
                    WHERE e.value ->> 0 >= ?1),
            events = (SELECT count(*) FROM json_each(usage_event_blocks.data) e WHERE e.value ->> 0 >= ?1),
            first_at = (SELECT min(e.value ->> 0) FROM json_each(usage_event_blocks.data) e WHERE e.value ->> 0 >= ?1)
         WHERE first_at < ?1 AND last_at >= ?1
         RETURNING events",
        [before.unix_micros()],
        |row| row.integer(Column { index: 0, name: "usage_event_blocks.events" }),
    )?;
    Ok(u64::try_from(held - kept.iter().sum::<i64>()).unwrap_or(0))
}

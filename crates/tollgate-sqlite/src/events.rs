//! Raw usage events on SQLite, in blocks: the events of one token and series (provider, model,
//! endpoint) in one batch share a row, as a JSON array. One row write per block instead of per
//! event is what lets a single SQLite writer take hundreds of thousands of events a second; the
//! `usage_events` view expands blocks back into one row per event.

use std::collections::HashMap;
use std::fmt::Write as _;

use rusqlite::types::Value;
use rusqlite::{Connection, params};
use tollgate_store::Result;
use tollgate_types::{Endpoint, Microdollars, Outcome, Timestamp, TokenId, UsageEvent};

use crate::batch::{Statements, chunk_sizes, placeholders};
use crate::columns::{Column, Columns, collect, scalar};
use crate::error::SqliteResultExt;

/// The most events in one block (keeps a row around 50 KB).
const MAX_EVENTS_PER_BLOCK: usize = 1_024;
/// Whole blocks deleted per purge statement.
const PURGE_CHUNK: i64 = 1_000;

/// The series of a batch's events by (provider, model, endpoint), created when new.
type SeriesIds = HashMap<SeriesKey, i64>;

/// What an event was for: provider, model and endpoint (`""` for none).
pub(crate) type SeriesKey = (String, String, String);

fn series_key(event: &UsageEvent) -> SeriesKey {
    (
        event.provider.as_str().to_owned(),
        event.model.as_str().to_owned(),
        event.endpoint.as_ref().map_or("", Endpoint::as_str).to_owned(),
    )
}

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

/// Appends one event as `[at,input,output,requests,cost,failed,latency|null,ip|null]`.
fn encode(event: &UsageEvent, data: &mut String) {
    let cost = event.cost.unwrap_or(Microdollars::ZERO).micros();
    let failed = u8::from(event.outcome == Outcome::Error);
    // Writing to a String cannot fail.
    let _ = write!(
        data,
        "[{},{},{},{},{},{},",
        event.at.unix_micros(),
        event.input_tokens,
        event.output_tokens,
        event.requests,
        cost,
        failed
    );
    let _ = match event.latency_ms {
        Some(latency) => write!(data, "{latency},"),
        None => write!(data, "null,"),
    };
    // An IP address's text form has no characters that JSON would need to escape.
    let _ = match event.ip {
        Some(ip) => write!(data, "\"{ip}\"]"),
        None => write!(data, "null]"),
    };
}

/// One block row, encoded before it reaches the writer (so the writer thread only writes).
#[derive(Debug)]
pub(crate) struct Block {
    token_id: TokenId,
    series: SeriesKey,
    first_at: Timestamp,
    last_at: Timestamp,
    events: usize,
    data: String,
}

impl Block {
    fn encode(token_id: TokenId, series: SeriesKey, events: &[&UsageEvent]) -> Self {
        let mut data = String::with_capacity(events.len() * 48 + 2);
        data.push('[');
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                data.push(',');
            }
            encode(event, &mut data);
        }
        data.push(']');
        let first_at = events.iter().map(|event| event.at).min().unwrap_or(Timestamp::from_unix_micros(0));
        let last_at = events.iter().map(|event| event.at).max().unwrap_or(first_at);
        Self { token_id, series, first_at, last_at, events: events.len(), data }
    }
}

/// Groups `events` into blocks per token and series, in the order each group first appears.
pub(crate) fn encode_blocks<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<Block> {
    let mut order: Vec<(TokenId, SeriesKey)> = Vec::new();
    let mut groups: HashMap<(TokenId, SeriesKey), Vec<&UsageEvent>> = HashMap::new();
    for event in events {
        let key = (event.token_id, series_key(event));
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(event);
    }
    order
        .into_iter()
        .flat_map(|key| {
            let grouped = groups.remove(&key).unwrap_or_default();
            grouped
                .chunks(MAX_EVENTS_PER_BLOCK)
                .map(|events| Block::encode(key.0, key.1.clone(), events))
                .collect::<Vec<_>>()
        })
        .collect()
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

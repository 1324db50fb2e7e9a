//! Raw usage events on SQLite, in blocks: the events of one token and series (provider, model,
//! endpoint) in one batch share a row, as a JSON array. One row write per block instead of per
//! event is what lets a single SQLite writer take hundreds of thousands of events a second; the
//! `usage_events` view expands blocks back into one row per event.

use std::collections::HashMap;
use std::fmt::Write as _;

use sqlx::{Row, SqliteConnection};
use tollgate_store::Result;
use tollgate_types::{Endpoint, Microdollars, Outcome, Timestamp, TokenId, UsageEvent};

use crate::batch::{Statements, chunk_sizes, placeholders};
use crate::error::SqlxResultExt;

/// The most events in one block (keeps a row around 50 KB).
const MAX_EVENTS_PER_BLOCK: usize = 1_024;
/// Whole blocks deleted per purge statement.
const PURGE_CHUNK: i64 = 1_000;

/// The series of a batch's events by (provider, model, endpoint), created when new.
type SeriesIds<'a> = HashMap<(&'a str, &'a str, &'a str), i64>;

fn series_key(event: &UsageEvent) -> (&str, &str, &str) {
    (event.provider.as_str(), event.model.as_str(), event.endpoint.as_ref().map_or("", Endpoint::as_str))
}

async fn series_ids<'a>(connection: &mut SqliteConnection, events: &'a [UsageEvent]) -> Result<SeriesIds<'a>> {
    let mut ids = SeriesIds::new();
    for event in events {
        let key = series_key(event);
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

/// Writes `events` as blocks per token and series, in the order each group first appears.
pub(crate) async fn insert_blocks(connection: &mut SqliteConnection, events: &[UsageEvent]) -> Result<()> {
    let series = series_ids(connection, events).await?;
    let mut order: Vec<(TokenId, i64)> = Vec::new();
    let mut groups: HashMap<(TokenId, i64), Vec<&UsageEvent>> = HashMap::new();
    for event in events {
        let key = (event.token_id, series[&series_key(event)]);
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(event);
    }
    let blocks: Vec<Block<'_>> = order
        .iter()
        .flat_map(|key| groups[key].chunks(MAX_EVENTS_PER_BLOCK).map(move |events| Block::encode(*key, events)))
        .collect();
    let mut rest = blocks.as_slice();
    for rows in chunk_sizes(rest.len(), BLOCK_STATEMENTS.max()) {
        let (chunk, tail) = rest.split_at(rows);
        let mut query = sqlx::query(BLOCK_STATEMENTS.get(rows));
        for block in chunk {
            query = query
                .bind(block.token_id.as_bytes().as_slice())
                .bind(block.series)
                .bind(block.first_at.unix_micros())
                .bind(block.last_at.unix_micros())
                .bind(i64::try_from(block.events).unwrap_or(i64::MAX))
                .bind(block.data.as_str());
        }
        query.execute(&mut *connection).await.store()?;
        rest = tail;
    }
    Ok(())
}

/// One block row, encoded.
struct Block<'a> {
    token_id: &'a TokenId,
    series: i64,
    first_at: Timestamp,
    last_at: Timestamp,
    events: usize,
    data: String,
}

impl<'a> Block<'a> {
    fn encode(key: (TokenId, i64), events: &[&'a UsageEvent]) -> Self {
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
        Self { token_id: &events[0].token_id, series: key.1, first_at, last_at, events: events.len(), data }
    }
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
pub(crate) async fn count(reader: &sqlx::SqlitePool) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT coalesce(sum(events), 0) FROM usage_event_blocks")
        .fetch_one(reader)
        .await
        .store()?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Deletes up to [`PURGE_CHUNK`] blocks whose events are all older than `before`; returns how many
/// blocks and events went.
pub(crate) async fn purge_whole_blocks(connection: &mut SqliteConnection, before: Timestamp) -> Result<(i64, u64)> {
    let rows = sqlx::query(
        "DELETE FROM usage_event_blocks
         WHERE id IN (SELECT id FROM usage_event_blocks WHERE last_at < ?1 LIMIT ?2)
         RETURNING events",
    )
    .bind(before.unix_micros())
    .bind(PURGE_CHUNK)
    .fetch_all(&mut *connection)
    .await
    .store()?;
    let events = rows.iter().map(|row| u64::try_from(row.get::<i64, _>("events")).unwrap_or(0)).sum();
    Ok((i64::try_from(rows.len()).unwrap_or(i64::MAX), events))
}

/// Rewrites the blocks that straddle `before` without their older events; returns how many went.
pub(crate) async fn purge_straddling_blocks(connection: &mut SqliteConnection, before: Timestamp) -> Result<u64> {
    let held: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events), 0) FROM usage_event_blocks WHERE first_at < ?1 AND last_at >= ?1",
    )
    .bind(before.unix_micros())
    .fetch_one(&mut *connection)
    .await
    .store()?;
    if held == 0 {
        return Ok(0);
    }
    let kept: Vec<i64> = sqlx::query_scalar(
        "UPDATE usage_event_blocks SET
            data = (SELECT json_group_array(json(e.value)) FROM json_each(usage_event_blocks.data) e
                    WHERE e.value ->> 0 >= ?1),
            events = (SELECT count(*) FROM json_each(usage_event_blocks.data) e WHERE e.value ->> 0 >= ?1),
            first_at = (SELECT min(e.value ->> 0) FROM json_each(usage_event_blocks.data) e WHERE e.value ->> 0 >= ?1)
         WHERE first_at < ?1 AND last_at >= ?1
         RETURNING events",
    )
    .bind(before.unix_micros())
    .fetch_all(&mut *connection)
    .await
    .store()?;
    Ok(u64::try_from(held - kept.iter().sum::<i64>()).unwrap_or(0))
}

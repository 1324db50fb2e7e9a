//! Raw usage events on PostgreSQL, in blocks as on SQLite: the events of one token and series
//! (provider, model, endpoint) in one batch share a row, as a JSON array, so a batch of a thousand
//! events is a handful of rows; the `usage_events` view expands blocks back into one row per event.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;
use tollgate_store::Result;
pub(crate) use tollgate_store::event_blocks::{Block, SeriesKey, encode_blocks};
use tollgate_types::Timestamp;

use crate::error::PgResultExt;
use crate::rows::int;

/// Whole blocks deleted per purge statement.
const PURGE_CHUNK: i64 = 1_000;

/// The id of each series, created when new. Series are looked up in key order, and created with
/// `ON CONFLICT DO NOTHING` (no row lock is held on a series, so batches of one model do not queue).
async fn series_ids(connection: &mut PgConnection, blocks: &[Block]) -> Result<HashMap<SeriesKey, i64>> {
    let keys: BTreeSet<&SeriesKey> = blocks.iter().map(|block| &block.series).collect();
    let mut ids = HashMap::with_capacity(keys.len());
    for key in keys {
        let select = "SELECT id FROM usage_series WHERE provider = $1 AND model = $2 AND endpoint = $3";
        let bind = |sql| sqlx::query_scalar::<_, i64>(sql).bind(&key.0).bind(&key.1).bind(&key.2);
        let mut id = bind(select).fetch_optional(&mut *connection).await.store()?;
        if id.is_none() {
            id = bind(
                "INSERT INTO usage_series (provider, model, endpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (provider, model, endpoint) DO NOTHING RETURNING id",
            )
            .fetch_optional(&mut *connection)
            .await
            .store()?;
        }
        if id.is_none() {
            // Created by a transaction that committed while this insert waited for it.
            id = Some(bind(select).fetch_one(&mut *connection).await.store()?);
        }
        ids.insert(key.clone(), id.unwrap_or_default());
    }
    Ok(ids)
}

/// Writes encoded blocks, all in one statement.
pub(crate) async fn insert_blocks(connection: &mut PgConnection, blocks: Vec<Block>) -> Result<()> {
    if blocks.is_empty() {
        return Ok(());
    }
    let series = series_ids(connection, &blocks).await?;
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for block in blocks {
        columns.0.push(block.token_id.as_bytes().to_vec());
        columns.1.push(series.get(&block.series).copied().unwrap_or_default());
        columns.2.push(block.first_at.unix_micros());
        columns.3.push(block.last_at.unix_micros());
        columns.4.push(int(block.events as u64));
        columns.5.push(block.data);
    }
    sqlx::query(
        "INSERT INTO usage_event_blocks (token_id, series, first_at, last_at, events, data)
         SELECT token_id, series, first_at, last_at, events, data::jsonb
         FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[])
              AS block (token_id, series, first_at, last_at, events, data)",
    )
    .bind(columns.0)
    .bind(columns.1)
    .bind(columns.2)
    .bind(columns.3)
    .bind(columns.4)
    .bind(columns.5)
    .execute(connection)
    .await
    .store()
    .map(drop)
}

/// How many raw events are stored.
pub(crate) async fn count(connection: &mut PgConnection) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT coalesce(sum(events), 0)::bigint FROM usage_event_blocks")
        .fetch_one(connection)
        .await
        .store()?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Deletes up to [`PURGE_CHUNK`] blocks whose events are all older than `before`; returns how many
/// blocks and events went.
pub(crate) async fn purge_whole_blocks(connection: &mut PgConnection, before: Timestamp) -> Result<(u64, u64)> {
    let deleted: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM usage_event_blocks
         WHERE id IN (SELECT id FROM usage_event_blocks WHERE last_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING events",
    )
    .bind(before.unix_micros())
    .bind(PURGE_CHUNK)
    .fetch_all(connection)
    .await
    .store()?;
    let events = deleted.iter().map(|events| u64::try_from(*events).unwrap_or(0)).sum();
    Ok((deleted.len() as u64, events))
}

/// Rewrites the blocks that straddle `before` without their older events; returns how many went.
pub(crate) async fn purge_straddling_blocks(connection: &mut PgConnection, before: Timestamp) -> Result<u64> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "WITH straddling AS (
             SELECT id, events AS held FROM usage_event_blocks WHERE first_at < $1 AND last_at >= $1 FOR UPDATE
         ), kept AS (
             SELECT s.id, s.held, jsonb_agg(e.value ORDER BY e.position) AS data, count(*) AS events,
                    min((e.value ->> 0)::bigint) AS first_at
             FROM straddling s
             JOIN usage_event_blocks b ON b.id = s.id
             CROSS JOIN LATERAL jsonb_array_elements(b.data) WITH ORDINALITY AS e (value, position)
             WHERE (e.value ->> 0)::bigint >= $1
             GROUP BY s.id, s.held
         )
         UPDATE usage_event_blocks b SET data = kept.data, events = kept.events, first_at = kept.first_at
         FROM kept WHERE b.id = kept.id
         RETURNING kept.held, b.events",
    )
    .bind(before.unix_micros())
    .fetch_all(connection)
    .await
    .store()?;
    Ok(rows.iter().map(|(held, kept)| u64::try_from(held - kept).unwrap_or(0)).sum())
}

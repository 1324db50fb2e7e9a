//! Dead letters on SQLite: events that could not be stored with their batch, kept with the reason.

use rusqlite::{Row, params};
use tollgate_store::{DeadLetter, DeadLetterRecord, Page, PageRequest, Result, StoreError};
use tollgate_types::Timestamp;

use crate::SqliteStore;
use crate::columns::{Column, Columns, collect, execute};
use crate::error::corrupt;

fn letter_from_row(row: &Row<'_>) -> Result<DeadLetterRecord> {
    let event = row.text(Column { index: 2, name: "usage_dead_letters.event" })?;
    Ok(DeadLetterRecord {
        id: row.integer(Column { index: 0, name: "usage_dead_letters.id" })?,
        token_id: row.text(Column { index: 1, name: "usage_dead_letters.token_id" })?,
        event: serde_json::from_str(&event).map_err(|error| corrupt("usage_dead_letters.event", error))?,
        reason: row.text(Column { index: 3, name: "usage_dead_letters.reason" })?,
        failed_at: Timestamp::from_unix_micros(row.integer(Column { index: 4, name: "usage_dead_letters.failed_at" })?),
    })
}

pub(crate) async fn add(store: &SqliteStore, letters: &[DeadLetter]) -> Result<()> {
    let rows: Vec<(String, String, String, i64)> = letters
        .iter()
        .map(|letter| {
            let event = serde_json::to_string(&letter.event).unwrap_or_else(|_| "null".to_owned());
            let reason: String = letter.reason.chars().take(1024).collect();
            let reason = if reason.is_empty() { "unknown".to_owned() } else { reason };
            (letter.event.token_id.to_string(), event, reason, letter.failed_at.unix_micros())
        })
        .collect();
    store
        .write(move |tx| {
            for (token_id, event, reason, failed_at) in &rows {
                execute(
                    tx.connection,
                    "INSERT INTO usage_dead_letters (token_id, event, reason, failed_at) VALUES (?, ?, ?, ?)",
                    params![token_id, event, reason, failed_at],
                )?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn list(store: &SqliteStore, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
    let before: i64 = match &page.cursor {
        Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor)?,
        None => i64::MAX,
    };
    let limit = page.limit;
    let items = store
        .scan(move |connection| {
            collect(
                connection,
                "SELECT id, token_id, event, reason, failed_at FROM usage_dead_letters WHERE id < ?
                 ORDER BY id DESC LIMIT ?",
                params![before, i64::from(limit) + 1],
                letter_from_row,
            )
        })
        .await?;
    Ok(Page::from_overfetch(items, page.limit, |letter| letter.id.to_string()))
}

//! Dead letters on PostgreSQL: events that could not be stored with their batch, kept with the reason.

use sqlx::postgres::PgRow;
use tollgate_store::{DeadLetter, DeadLetterRecord, Page, PageRequest, Result, StoreError};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::{get, json, time};
use crate::store::retrying;

const TABLE: &str = "usage_dead_letters";

fn letter_from_row(row: &PgRow) -> Result<DeadLetterRecord> {
    Ok(DeadLetterRecord {
        id: get(row, TABLE, "id")?,
        token_id: get(row, TABLE, "token_id")?,
        event: json(row, TABLE, "event")?,
        reason: get(row, TABLE, "reason")?,
        failed_at: time(row, TABLE, "failed_at")?,
    })
}

pub(crate) async fn add(store: &PgStore, letters: &[DeadLetter]) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for letter in letters {
        let reason: String = letter.reason.chars().take(1024).collect();
        columns.0.push(letter.event.token_id.to_string());
        columns.1.push(serde_json::to_string(&letter.event).unwrap_or_else(|_| "null".to_owned()));
        columns.2.push(if reason.is_empty() { "unknown".to_owned() } else { reason });
        columns.3.push(letter.failed_at.unix_micros());
    }
    let columns = &columns;
    retrying(move || async move {
        // In the order given, so ids follow it.
        sqlx::query(
            "INSERT INTO usage_dead_letters (token_id, event, reason, failed_at)
             SELECT token_id, event::json, reason, failed_at
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY
                  AS letter (token_id, event, reason, failed_at, position)
             ORDER BY position",
        )
        .bind(&columns.0)
        .bind(&columns.1)
        .bind(&columns.2)
        .bind(&columns.3)
        .execute(store.pool())
        .await
        .store()
        .map(drop)
    })
    .await
}

pub(crate) async fn list(store: &PgStore, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
    let before: i64 = match &page.cursor {
        Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor)?,
        None => i64::MAX,
    };
    let rows = sqlx::query(
        "SELECT id, token_id, event::text AS event, reason, failed_at FROM usage_dead_letters WHERE id < $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(store.pool())
    .await
    .store()?;
    let items = rows.iter().map(letter_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |letter| letter.id.to_string()))
}

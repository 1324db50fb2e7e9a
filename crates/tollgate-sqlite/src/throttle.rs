//! The login throttle's failure slots on SQLite: one conditional upsert per attempt on the writer,
//! which makes taking a slot atomic across every process on the file.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use tollgate_store::{LoginSlot, LoginThrottleStore, Result};
use tollgate_types::Timestamp;

use crate::SqliteStore;
use crate::columns::{execute, first, scalar};
use crate::error::corrupt;

/// Takes a slot: a new client or an ended window starts over at one; otherwise one more while
/// fewer than the limit are taken. No row comes back when the window is full.
const TAKE: &str = "INSERT INTO login_throttle (client, window_started, failures) VALUES (?1, ?2, 1)
     ON CONFLICT (client) DO UPDATE SET
       window_started = CASE WHEN login_throttle.window_started <= ?3 THEN excluded.window_started
                             ELSE login_throttle.window_started END,
       failures = CASE WHEN login_throttle.window_started <= ?3 THEN 1 ELSE login_throttle.failures + 1 END
     WHERE login_throttle.window_started <= ?3 OR login_throttle.failures < ?4
     RETURNING window_started";

#[async_trait]
impl LoginThrottleStore for SqliteStore {
    async fn take_login_slot(&self, client: &str, now: Timestamp, window: Duration, max: u32) -> Result<LoginSlot> {
        let client = client.to_owned();
        let ended_before = now.saturating_sub(window).unix_micros();
        self.write(move |tx| {
            let taken = first(tx.connection, TAKE, params![client, now.unix_micros(), ended_before, max], |row| {
                row.get::<_, i64>(0).map_err(|error| corrupt("login_throttle.window_started", error))
            })?;
            if let Some(started) = taken {
                return Ok(LoginSlot::Taken { window_started: Timestamp::from_unix_micros(started) });
            }
            let started: i64 =
                scalar(tx.connection, "SELECT window_started FROM login_throttle WHERE client = ?1", [&client])?;
            Ok(LoginSlot::Full { retry_at: Timestamp::from_unix_micros(started).saturating_add(window) })
        })
        .await
    }

    async fn return_login_slot(&self, client: &str, window_started: Timestamp) -> Result<()> {
        let client = client.to_owned();
        self.write(move |tx| {
            execute(
                tx.connection,
                "UPDATE login_throttle SET failures = failures - 1
                 WHERE client = ?1 AND window_started = ?2 AND failures > 0",
                params![client, window_started.unix_micros()],
            )
            .map(drop)
        })
        .await
    }

    async fn purge_login_slots(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            execute(tx.connection, "DELETE FROM login_throttle WHERE window_started < ?1", [before.unix_micros()])
        })
        .await
    }
}

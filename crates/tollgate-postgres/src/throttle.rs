//! The login throttle's failure slots on PostgreSQL: one conditional upsert per attempt, atomic
//! under the row's lock, so every node counts against one limit.

use std::time::Duration;

use async_trait::async_trait;
use tollgate_store::{LoginSlot, LoginThrottleStore, Result};
use tollgate_types::Timestamp;

use crate::PgStore;
use crate::error::PgResultExt;

/// Takes a slot: a new client or an ended window starts over at one; otherwise one more while
/// fewer than the limit are taken. No row comes back when the window is full.
const TAKE: &str = "INSERT INTO login_throttle (client, window_started, failures) VALUES ($1, $2, 1)
     ON CONFLICT (client) DO UPDATE SET
       window_started = CASE WHEN login_throttle.window_started <= $3 THEN excluded.window_started
                             ELSE login_throttle.window_started END,
       failures = CASE WHEN login_throttle.window_started <= $3 THEN 1 ELSE login_throttle.failures + 1 END
     WHERE login_throttle.window_started <= $3 OR login_throttle.failures < $4
     RETURNING window_started";

#[async_trait]
impl LoginThrottleStore for PgStore {
    async fn take_login_slot(&self, client: &str, now: Timestamp, window: Duration, max: u32) -> Result<LoginSlot> {
        let ended_before = now.saturating_sub(window).unix_micros();
        let taken: Option<i64> = sqlx::query_scalar(TAKE)
            .bind(client)
            .bind(now.unix_micros())
            .bind(ended_before)
            .bind(i64::from(max))
            .fetch_optional(self.pool())
            .await
            .store()?;
        if let Some(started) = taken {
            return Ok(LoginSlot::Taken { window_started: Timestamp::from_unix_micros(started) });
        }
        let started: i64 = sqlx::query_scalar("SELECT window_started FROM login_throttle WHERE client = $1")
            .bind(client)
            .fetch_one(self.pool())
            .await
            .store()?;
        Ok(LoginSlot::Full { retry_at: Timestamp::from_unix_micros(started).saturating_add(window) })
    }

    async fn return_login_slot(&self, client: &str, window_started: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE login_throttle SET failures = failures - 1
             WHERE client = $1 AND window_started = $2 AND failures > 0",
        )
        .bind(client)
        .bind(window_started.unix_micros())
        .execute(self.pool())
        .await
        .store()?;
        Ok(())
    }

    async fn purge_login_slots(&self, before: Timestamp) -> Result<u64> {
        let result = sqlx::query("DELETE FROM login_throttle WHERE window_started < $1")
            .bind(before.unix_micros())
            .execute(self.pool())
            .await
            .store()?;
        Ok(result.rows_affected())
    }
}

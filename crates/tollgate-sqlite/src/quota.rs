//! Leases of request quotas and reservations of tokens and cost, on SQLite. Each operation is one
//! write job: the counter and the lease or reservation row change together or not at all.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    CounterDelta, EventToRecord, LeaseGrant, LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, QuotaStore,
    RecordOutcome, ReservationInsert, ReservationRecord, ReservationState, ReserveOutcome, Result, Settled, StoreError,
};
use tollgate_types::{CounterKey, HolderId, ReservationId, Timestamp, TokenId};

use crate::SqliteStore;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::limits::{add_to_counter, counter_value, ensure_counter, fits};
use crate::record::{Encoded, record_in};
use crate::writer::Tx;

/// The key columns of a counter, in the order every statement here binds them.
fn key_params(key: &CounterKey) -> (String, String, &'static str, &'static str, i64) {
    (
        key.limit.subject.kind().to_owned(),
        key.limit.subject.id(),
        key.limit.metric.as_str(),
        key.limit.window.as_str(),
        key.window_start.unix_micros(),
    )
}

fn holds_json(holds: &[(CounterKey, i64)]) -> String {
    tollgate_store::encode_holds(holds)
}

fn holds_from_json(text: &str) -> Result<Vec<(CounterKey, i64)>> {
    tollgate_store::decode_holds(text).map_err(|error| corrupt("quota_reservations.holds", error))
}

fn state_from(text: &str) -> Result<ReservationState> {
    ReservationState::from_stored(text).ok_or_else(|| corrupt("quota_reservations.state", text))
}

const RESERVATION_COLUMNS: &str = "id, token_id, holds, state, created_at, expires_at, closed_at";

fn reservation_from_row(row: &Row<'_>) -> Result<ReservationRecord> {
    let column = |index, name| Column { index, name };
    let id = row.text(column(0, "quota_reservations.id"))?;
    let token_id = row.text(column(1, "quota_reservations.token_id"))?;
    Ok(ReservationRecord {
        id: ReservationId::parse(&id).map_err(|e| corrupt("quota_reservations.id", e))?,
        token_id: TokenId::parse(&token_id).map_err(|e| corrupt("quota_reservations.token_id", e))?,
        holds: holds_from_json(&row.text(column(2, "quota_reservations.holds"))?)?,
        state: state_from(&row.text(column(3, "quota_reservations.state"))?)?,
        created_at: Timestamp::from_unix_micros(row.integer(column(4, "quota_reservations.created_at"))?),
        expires_at: Timestamp::from_unix_micros(row.integer(column(5, "quota_reservations.expires_at"))?),
        closed_at: row.optional_integer(column(6, "quota_reservations.closed_at"))?.map(Timestamp::from_unix_micros),
    })
}

fn fetch_reservation(connection: &Connection, id: &ReservationId) -> Result<ReservationRecord> {
    one(
        connection,
        "reservation",
        &format!("SELECT {RESERVATION_COLUMNS} FROM quota_reservations WHERE id = ?"),
        [id.to_string()],
        reservation_from_row,
    )
}

/// Closes a held reservation in `state`, giving its holds back; returns the counters' totals.
fn close(
    tx: &mut Tx<'_>,
    reservation: &ReservationRecord,
    state: ReservationState,
    at: Timestamp,
) -> Result<Vec<(CounterKey, i64)>> {
    let mut totals = Vec::with_capacity(reservation.holds.len());
    for (key, amount) in &reservation.holds {
        totals.push((key.clone(), add_to_counter(tx.connection, key, amount.saturating_neg())?));
    }
    execute(
        tx.connection,
        "UPDATE quota_reservations SET state = ?, closed_at = ? WHERE id = ? AND state = 'held'",
        params![state.as_str(), at.unix_micros(), reservation.id.to_string()],
    )?;
    Ok(totals)
}

/// Reservations expired per write job (a long sweep leaves room for other writes between chunks).
const EXPIRE_CHUNK: u64 = 1_000;

/// Closes up to [`EXPIRE_CHUNK`] reservations held past their expiry at `now`; returns how many.
fn expire_in(tx: &mut Tx<'_>, now: Timestamp) -> Result<u64> {
    let expired = collect(
        tx.connection,
        &format!(
            "SELECT {RESERVATION_COLUMNS} FROM quota_reservations WHERE state = 'held' AND expires_at <= ? \
             ORDER BY expires_at LIMIT ?"
        ),
        params![now.unix_micros(), EXPIRE_CHUNK as i64],
        reservation_from_row,
    )?;
    for reservation in &expired {
        close(tx, reservation, ReservationState::Expired, now)?;
    }
    Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
}

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn register_holder(&self, holder: &HolderId, at: Timestamp) -> Result<()> {
        let holder = *holder;
        self.write(move |tx| {
            execute(
                tx.connection,
                "INSERT INTO quota_holders (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2)",
                params![holder.to_string(), at.unix_micros()],
            )
            .map(drop)
        })
        .await
    }

    async fn lease(&self, holder: &HolderId, request: &LeaseRequest, at: Timestamp) -> Result<LeaseGrant> {
        let (holder, request) = (*holder, request.clone());
        self.write(move |tx| {
            let used = ensure_counter(tx.connection, &request.key)?;
            let max = i64::try_from(request.max).unwrap_or(i64::MAX);
            let left = u64::try_from(max.saturating_sub(used)).unwrap_or(0);
            let granted = request.want.min(left);
            if granted == 0 {
                return Ok(LeaseGrant { granted, used });
            }
            let amount = i64::try_from(granted).unwrap_or(i64::MAX);
            let used = add_to_counter(tx.connection, &request.key, amount)?;
            let (kind, subject, metric, period, start) = key_params(&request.key);
            execute(
                tx.connection,
                "INSERT INTO quota_leases (holder, subject_kind, subject, metric, period, window_start, window_end,
                    granted, consumed, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)
                 ON CONFLICT (holder, subject_kind, subject, metric, period, window_start)
                 DO UPDATE SET granted = granted + excluded.granted, updated_at = excluded.updated_at",
                params![
                    holder.to_string(),
                    kind,
                    subject,
                    metric,
                    period,
                    start,
                    request.key.window_end().unix_micros(),
                    amount,
                    at.unix_micros()
                ],
            )?;
            Ok(LeaseGrant { granted, used })
        })
        .await
    }

    async fn report_leases(&self, holder: &HolderId, uses: &[LeaseUse], at: Timestamp) -> Result<()> {
        let (holder, uses) = (*holder, uses.to_vec());
        self.write(move |tx| {
            for lease in &uses {
                let (kind, subject, metric, period, start) = key_params(&lease.key);
                execute(
                    tx.connection,
                    "UPDATE quota_leases SET consumed = min(granted, max(consumed, ?7)), updated_at = ?8
                     WHERE holder = ?1 AND subject_kind = ?2 AND subject = ?3 AND metric = ?4 AND period = ?5
                       AND window_start = ?6",
                    params![
                        holder.to_string(),
                        kind,
                        subject,
                        metric,
                        period,
                        start,
                        i64::try_from(lease.consumed).unwrap_or(i64::MAX),
                        at.unix_micros()
                    ],
                )?;
            }
            execute(
                tx.connection,
                "UPDATE quota_holders SET heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1",
                params![holder.to_string(), at.unix_micros()],
            )
            .map(drop)
        })
        .await
    }

    async fn return_leases(&self, holder: &HolderId, returns: &[LeaseReturn], at: Timestamp) -> Result<()> {
        let (holder, returns) = (*holder, returns.to_vec());
        self.write(move |tx| {
            for lease in &returns {
                let (kind, subject, metric, period, start) = key_params(&lease.key);
                // Never more than the lease still holds unused.
                let unused: i64 = first(
                    tx.connection,
                    "SELECT min(?7, granted - consumed) FROM quota_leases
                     WHERE holder = ?1 AND subject_kind = ?2 AND subject = ?3 AND metric = ?4 AND period = ?5
                       AND window_start = ?6",
                    params![
                        holder.to_string(),
                        kind,
                        subject,
                        metric,
                        period,
                        start,
                        i64::try_from(lease.unused).unwrap_or(i64::MAX)
                    ],
                    |row| row.integer(Column { index: 0, name: "unused" }),
                )?
                .unwrap_or(0)
                .max(0);
                if unused == 0 {
                    continue;
                }
                add_to_counter(tx.connection, &lease.key, -unused)?;
                execute(
                    tx.connection,
                    "UPDATE quota_leases SET granted = granted - ?7, updated_at = ?8
                     WHERE holder = ?1 AND subject_kind = ?2 AND subject = ?3 AND metric = ?4 AND period = ?5
                       AND window_start = ?6",
                    params![holder.to_string(), kind, subject, metric, period, start, unused, at.unix_micros()],
                )?;
            }
            execute(
                tx.connection,
                "UPDATE quota_holders SET stopped_at = ?2, heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1",
                params![holder.to_string(), at.unix_micros()],
            )
            .map(drop)
        })
        .await
    }

    async fn lease_summaries(
        &self,
        keys: &[CounterKey],
        except: &HolderId,
        live_since: Timestamp,
    ) -> Result<Vec<LeaseSummary>> {
        let (keys, except) = (keys.to_vec(), *except);
        self.scan(move |connection| {
            keys.iter()
                .map(|key| {
                    let (kind, subject, metric, period, start) = key_params(key);
                    first(
                        connection,
                        "SELECT
                            coalesce(sum(CASE WHEN h.stopped_at IS NULL AND h.heartbeat_at >= ?7
                                              THEN l.granted - l.consumed ELSE 0 END), 0),
                            coalesce(sum(CASE WHEN h.stopped_at IS NULL AND h.heartbeat_at < ?7
                                              THEN l.granted - l.consumed ELSE 0 END), 0)
                         FROM quota_leases l JOIN quota_holders h ON h.id = l.holder
                         WHERE l.subject_kind = ?1 AND l.subject = ?2 AND l.metric = ?3 AND l.period = ?4
                           AND l.window_start = ?5 AND l.holder <> ?6",
                        params![kind, subject, metric, period, start, except.to_string(), live_since.unix_micros()],
                        |row| {
                            let count = |index, name| -> Result<u64> {
                                Ok(u64::try_from(row.integer(Column { index, name })?).unwrap_or(0))
                            };
                            Ok(LeaseSummary { leased: count(0, "leased")?, stranded: count(1, "stranded")? })
                        },
                    )
                    .map(Option::unwrap_or_default)
                })
                .collect()
        })
        .await
    }

    async fn stranded_units(&self, live_since: Timestamp, now: Timestamp) -> Result<u64> {
        self.scan(move |connection| {
            let stranded: Option<i64> = first(
                connection,
                "SELECT coalesce(sum(l.granted - l.consumed), 0)
                 FROM quota_leases l JOIN quota_holders h ON h.id = l.holder
                 WHERE l.window_end > ?2 AND h.stopped_at IS NULL AND h.heartbeat_at < ?1",
                params![live_since.unix_micros(), now.unix_micros()],
                |row| row.integer(Column { index: 0, name: "stranded" }),
            )?;
            Ok(u64::try_from(stranded.unwrap_or(0)).unwrap_or(0))
        })
        .await
    }

    async fn reserve(&self, insert: &ReservationInsert) -> Result<ReserveOutcome> {
        let insert = insert.clone();
        self.write(move |tx| {
            // Every counter is checked before any changes, inside one job: all holds or none. The
            // checks only read (a refusal creates no counter), and holds of this reservation on one
            // counter count together against its maximum.
            let mut taken: HashMap<&CounterKey, i64> = HashMap::new();
            for (index, hold) in insert.holds.iter().enumerate() {
                let used = counter_value(tx.connection, &hold.key)?;
                let earlier = taken.entry(&hold.key).or_insert(0);
                if let Some(max) = hold.max
                    && !fits(used.saturating_add(*earlier), hold.amount, max)
                {
                    return Ok(ReserveOutcome::Refused { index, used });
                }
                *earlier = earlier.saturating_add(hold.amount);
            }
            let mut totals = Vec::with_capacity(insert.holds.len());
            for hold in &insert.holds {
                totals.push(add_to_counter(tx.connection, &hold.key, hold.amount)?);
            }
            let holds: Vec<(CounterKey, i64)> =
                insert.holds.iter().map(|hold| (hold.key.clone(), hold.amount)).collect();
            execute(
                tx.connection,
                "INSERT INTO quota_reservations (id, token_id, holds, state, created_at, expires_at)
                 VALUES (?, ?, ?, 'held', ?, ?)",
                params![
                    insert.id.to_string(),
                    insert.token_id.to_string(),
                    holds_json(&holds),
                    insert.created_at.unix_micros(),
                    insert.expires_at.unix_micros()
                ],
            )?;
            Ok(ReserveOutcome::Held(totals))
        })
        .await
    }

    async fn settle_reservation(&self, id: &ReservationId, usage: &EventToRecord, at: Timestamp) -> Result<Settled> {
        let (id, usage) = (*id, usage.clone());
        let encoded = Encoded::of(std::slice::from_ref(&usage));
        self.write(move |tx| {
            let mut reservation = fetch_reservation(tx.connection, &id)?;
            if reservation.token_id != usage.event.token_id {
                return Err(StoreError::Conflict("the usage is not for the reservation's token".to_owned()));
            }
            // Expiry is checked on every access, so no sweeper is needed for correctness.
            if reservation.state == ReservationState::Held && reservation.expires_at <= at {
                close(tx, &reservation, ReservationState::Expired, at)?;
                reservation = fetch_reservation(tx.connection, &id)?;
            }
            let (recorded, totals) = match reservation.state {
                ReservationState::Released => (None, Vec::new()),
                // Settling again records nothing and changes nothing.
                ReservationState::Settled => (Some(RecordOutcome::Duplicate), Vec::new()),
                // Held: the holds go and the actual usage comes, in this one job. Expired: the holds
                // are already back, so the usage is recorded as plain usage (the call did happen).
                ReservationState::Held | ReservationState::Expired => {
                    let holds: Vec<CounterDelta> = if reservation.state == ReservationState::Held {
                        reservation
                            .holds
                            .iter()
                            .map(|(key, amount)| CounterDelta { key: key.clone(), delta: amount.saturating_neg() })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let written = record_in(tx, std::slice::from_ref(&usage), encoded, &holds, &[])?;
                    execute(
                        tx.connection,
                        "UPDATE quota_reservations SET state = 'settled', closed_at = coalesce(closed_at, ?) WHERE id = ?",
                        params![at.unix_micros(), id.to_string()],
                    )?;
                    reservation = fetch_reservation(tx.connection, &id)?;
                    (written.outcomes.first().copied(), written.totals)
                }
            };
            Ok(Settled { reservation, recorded, totals })
        })
        .await
    }

    async fn release_reservation(&self, id: &ReservationId, at: Timestamp) -> Result<ReservationRecord> {
        let id = *id;
        self.write(move |tx| {
            let reservation = fetch_reservation(tx.connection, &id)?;
            if reservation.state == ReservationState::Held {
                let state =
                    if reservation.expires_at <= at { ReservationState::Expired } else { ReservationState::Released };
                close(tx, &reservation, state, at)?;
            }
            fetch_reservation(tx.connection, &id)
        })
        .await
    }

    async fn expire_reservations(&self, now: Timestamp) -> Result<u64> {
        // Chunk by chunk until one comes back short: every reservation past its expiry, each
        // closed together with the return of its holds.
        let mut expired = 0;
        loop {
            let chunk = self.write(move |tx| expire_in(tx, now)).await?;
            expired += chunk;
            if chunk < EXPIRE_CHUNK {
                return Ok(expired);
            }
        }
    }

    async fn reservation(&self, id: &ReservationId) -> Result<ReservationRecord> {
        let id = *id;
        self.point(move |connection| fetch_reservation(connection, &id)).await
    }

    async fn counter_values(&self, keys: &[CounterKey]) -> Result<Vec<i64>> {
        let keys = keys.to_vec();
        self.point(move |connection| keys.iter().map(|key| counter_value(connection, key)).collect()).await
    }

    async fn purge_quota_state(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let leases =
                execute(tx.connection, "DELETE FROM quota_leases WHERE window_end < ?", [before.unix_micros()])?;
            let reservations = execute(
                tx.connection,
                "DELETE FROM quota_reservations WHERE closed_at IS NOT NULL AND closed_at < ?",
                [before.unix_micros()],
            )?;
            let holders = execute(
                tx.connection,
                "DELETE FROM quota_holders WHERE heartbeat_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM quota_leases WHERE holder = quota_holders.id)",
                [before.unix_micros()],
            )?;
            Ok(leases + reservations + holders)
        })
        .await
    }
}

//! Reservations of tokens and cost on PostgreSQL: every hold taken or none, settled once with the
//! actual usage, released, expired. Each is one transaction that locks the counters it changes (in
//! key order) and the reservation's row, so concurrent reservations never pass a maximum.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    CounterDelta, EventToRecord, RecordOutcome, ReservationInsert, ReservationRecord, ReservationState, ReserveOutcome,
    Result, Settled, StoreError,
};
use tollgate_types::{CounterKey, ReservationId, Timestamp, TokenId};

use crate::PgStore;
use crate::counters::{self, fits};
use crate::error::{PgResultExt, corrupt};
use crate::record::record_in;
use crate::rows::{get, optional_time, parsed, time};

const TABLE: &str = "quota_reservations";

fn holds_json(holds: &[(CounterKey, i64)]) -> String {
    tollgate_store::encode_holds(holds)
}

fn holds_from_json(text: &str) -> Result<Vec<(CounterKey, i64)>> {
    tollgate_store::decode_holds(text).map_err(|error| corrupt("quota_reservations.holds", error))
}

fn state_from(text: &str) -> Result<ReservationState> {
    ReservationState::from_stored(text).ok_or_else(|| corrupt("quota_reservations.state", text))
}

const COLUMNS: &str = "id, token_id, holds::text AS holds, state, created_at, expires_at, closed_at";

fn reservation_from_row(row: &PgRow) -> Result<ReservationRecord> {
    Ok(ReservationRecord {
        id: parsed(TABLE, "id", ReservationId::parse(&get::<String>(row, TABLE, "id")?))?,
        token_id: parsed(TABLE, "token_id", TokenId::parse(&get::<String>(row, TABLE, "token_id")?))?,
        holds: holds_from_json(&get::<String>(row, TABLE, "holds")?)?,
        state: state_from(&get::<String>(row, TABLE, "state")?)?,
        created_at: time(row, TABLE, "created_at")?,
        expires_at: time(row, TABLE, "expires_at")?,
        closed_at: optional_time(row, TABLE, "closed_at")?,
    })
}

/// The reservation `id` (locked for the transaction with `lock`), or `NotFound`.
pub(crate) async fn fetch(connection: &mut PgConnection, id: &ReservationId, lock: bool) -> Result<ReservationRecord> {
    let sql =
        format!("SELECT {COLUMNS} FROM quota_reservations WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(reservation_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "reservation" })
}

/// Adds the deltas to their counters in key order; returns each counter's total afterwards.
async fn apply(connection: &mut PgConnection, deltas: BTreeMap<&CounterKey, i64>) -> Result<Vec<(CounterKey, i64)>> {
    let mut totals = Vec::with_capacity(deltas.len());
    for (key, delta) in deltas {
        totals.push((key.clone(), counters::add(connection, key, delta).await?));
    }
    Ok(totals)
}

/// The negated holds of reservations, merged per counter.
fn returned<'a>(reservations: impl IntoIterator<Item = &'a ReservationRecord>) -> BTreeMap<&'a CounterKey, i64> {
    let mut deltas = BTreeMap::new();
    for reservation in reservations {
        for (key, amount) in &reservation.holds {
            let sum: &mut i64 = deltas.entry(key).or_insert(0);
            *sum = sum.saturating_sub(*amount);
        }
    }
    deltas
}

/// Closes held reservations in `state` at `at`, giving their holds back.
async fn close(
    connection: &mut PgConnection,
    reservations: &[ReservationRecord],
    state: ReservationState,
    at: Timestamp,
) -> Result<()> {
    apply(connection, returned(reservations)).await?;
    let ids: Vec<String> = reservations.iter().map(|reservation| reservation.id.to_string()).collect();
    sqlx::query("UPDATE quota_reservations SET state = $1, closed_at = $2 WHERE id = ANY($3) AND state = 'held'")
        .bind(state.as_str())
        .bind(at.unix_micros())
        .bind(ids)
        .execute(connection)
        .await
        .store()
        .map(drop)
}

pub(crate) async fn reserve(store: &PgStore, insert: &ReservationInsert) -> Result<ReserveOutcome> {
    let mut tx = store.begin().await?;
    // Every counter is locked (in key order) and checked before any changes: all holds or none.
    // Holds of this reservation on one counter count together against its maximum. A refusal
    // rolls back, so it creates no counter.
    let keys: BTreeSet<&CounterKey> = insert.holds.iter().map(|hold| &hold.key).collect();
    let mut values: HashMap<&CounterKey, i64> = HashMap::with_capacity(keys.len());
    for key in keys {
        values.insert(key, counters::ensure(tx.conn(), key).await?);
    }
    let mut taken: HashMap<&CounterKey, i64> = HashMap::new();
    for (index, hold) in insert.holds.iter().enumerate() {
        let used = values.get(&hold.key).copied().unwrap_or_default();
        let earlier = taken.entry(&hold.key).or_insert(0);
        if let Some(max) = hold.max
            && !fits(used.saturating_add(*earlier), hold.amount, max)
        {
            tx.rollback().await?;
            return Ok(ReserveOutcome::Refused { index, used });
        }
        *earlier = earlier.saturating_add(hold.amount);
    }
    let mut totals = Vec::with_capacity(insert.holds.len());
    for hold in &insert.holds {
        totals.push(counters::add(tx.conn(), &hold.key, hold.amount).await?);
    }
    let holds: Vec<(CounterKey, i64)> = insert.holds.iter().map(|hold| (hold.key.clone(), hold.amount)).collect();
    sqlx::query(
        "INSERT INTO quota_reservations (id, token_id, holds, state, created_at, expires_at)
         VALUES ($1, $2, $3::json, 'held', $4, $5)",
    )
    .bind(insert.id.to_string())
    .bind(insert.token_id.to_string())
    .bind(holds_json(&holds))
    .bind(insert.created_at.unix_micros())
    .bind(insert.expires_at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    tx.commit().await?;
    Ok(ReserveOutcome::Held(totals))
}

pub(crate) async fn settle(
    store: &PgStore,
    id: &ReservationId,
    usage: &EventToRecord,
    at: Timestamp,
) -> Result<Settled> {
    let mut tx = store.begin().await?;
    let mut reservation = fetch(tx.conn(), id, true).await?;
    if reservation.token_id != usage.event.token_id {
        return Err(StoreError::Conflict("the usage is not for the reservation's token".to_owned()));
    }
    // Expiry is checked on every access, so no sweeper is needed for correctness.
    if reservation.state == ReservationState::Held && reservation.expires_at <= at {
        close(tx.conn(), std::slice::from_ref(&reservation), ReservationState::Expired, at).await?;
        reservation = fetch(tx.conn(), id, false).await?;
    }
    let (recorded, totals) = match reservation.state {
        ReservationState::Released => (None, Vec::new()),
        // Settling again records nothing and changes nothing.
        ReservationState::Settled => (Some(RecordOutcome::Duplicate), Vec::new()),
        // Held: the holds go and the actual usage comes, in this one transaction. Expired: the holds
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
            let written = record_in(tx.conn(), std::slice::from_ref(usage), &holds, &[]).await?;
            sqlx::query(
                "UPDATE quota_reservations SET state = 'settled', closed_at = coalesce(closed_at, $1) WHERE id = $2",
            )
            .bind(at.unix_micros())
            .bind(id.to_string())
            .execute(tx.conn())
            .await
            .store()?;
            reservation = fetch(tx.conn(), id, false).await?;
            (written.outcomes.first().copied(), written.totals)
        }
    };
    tx.commit().await?;
    Ok(Settled { reservation, recorded, totals })
}

pub(crate) async fn release(store: &PgStore, id: &ReservationId, at: Timestamp) -> Result<ReservationRecord> {
    let mut tx = store.begin().await?;
    let reservation = fetch(tx.conn(), id, true).await?;
    if reservation.state != ReservationState::Held {
        tx.rollback().await?;
        return Ok(reservation);
    }
    let state = if reservation.expires_at <= at { ReservationState::Expired } else { ReservationState::Released };
    close(tx.conn(), std::slice::from_ref(&reservation), state, at).await?;
    let reservation = fetch(tx.conn(), id, false).await?;
    tx.commit().await?;
    Ok(reservation)
}

/// Reservations expired per transaction (a long sweep leaves room for other writes between chunks).
pub(crate) const EXPIRE_CHUNK: u64 = 1_000;

/// Closes up to [`EXPIRE_CHUNK`] reservations held past their expiry at `now`; returns how many.
/// Reservations another transaction holds (being settled or released) are skipped: that
/// transaction closes them.
pub(crate) async fn expire_chunk(store: &PgStore, now: Timestamp) -> Result<u64> {
    let mut tx = store.begin().await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM quota_reservations WHERE state = 'held' AND expires_at <= $1
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now.unix_micros())
    .bind(EXPIRE_CHUNK as i64)
    .fetch_all(tx.conn())
    .await
    .store()?;
    let expired = rows.iter().map(reservation_from_row).collect::<Result<Vec<_>>>()?;
    if !expired.is_empty() {
        close(tx.conn(), &expired, ReservationState::Expired, now).await?;
    }
    tx.commit().await?;
    Ok(expired.len() as u64)
}

//! Quotas that hold across processes and crashes: blocks of request quotas leased to a holder (a
//! process), and reservations of tokens and cost held in the store until settled or released.
//!
//! A counter's `used` always includes every leased block and every open hold, so the conditional
//! updates here can never hand out more than a limit's maximum, whoever asks and whatever crashes:
//! a holder that dies loses the unused rest of its blocks (reported, never admitted again), and a
//! reservation outlives the process that made it until it is settled, released or expires.

use async_trait::async_trait;
use serde::Serialize;
use tollgate_types::{CounterKey, HolderId, ReservationId, Timestamp, TokenId};

use crate::{EventToRecord, RecordOutcome, Result};

/// A request for a block of a request quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Which counter.
    pub key: CounterKey,
    /// How many units the holder would like.
    pub want: u64,
    /// The limit's maximum: the grant never takes the counter past it.
    pub max: u64,
}

/// What a lease granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Units granted (possibly fewer than wanted, zero when the quota is spent).
    pub granted: u64,
    /// The counter's total afterwards (every block leased, consumed or not).
    pub used: i64,
}

/// How much of its block on `key` a holder has admitted so far (cumulative for the window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseUse {
    /// Which counter.
    pub key: CounterKey,
    /// Units admitted from the holder's blocks on it.
    pub consumed: u64,
}

/// Units a holder gives back at a clean stop (the window's quota can use them again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReturn {
    /// Which counter.
    pub key: CounterKey,
    /// Units leased and never admitted.
    pub unused: u64,
}

/// Leased units of a counter outside the asking holder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LeaseSummary {
    /// Held unused by other live holders (as they last reported).
    pub leased: u64,
    /// Lost with holders that stopped without returning them (a crash): never admitted, not
    /// available again before the window ends.
    pub stranded: u64,
}

/// One amount held against one counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// Which counter.
    pub key: CounterKey,
    /// How much.
    pub amount: i64,
    /// Refuse when the counter would pass this (a zero amount asks whether anything is left: it is
    /// refused at the maximum); `None` holds unconditionally (shadow limits). Holds on one counter
    /// within one reservation add up.
    pub max: Option<u64>,
}

/// A reservation to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationInsert {
    /// Its id.
    pub id: ReservationId,
    /// The token it is for.
    pub token_id: TokenId,
    /// What it holds.
    pub holds: Vec<Hold>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When its holds return by themselves.
    pub expires_at: Timestamp,
}

/// What a reservation attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every hold was taken; each counter's total afterwards, in order.
    Held(Vec<i64>),
    /// Nothing was held (and no counter was created): the hold at `index` would have passed its maximum.
    Refused {
        /// Which hold.
        index: usize,
        /// The counter's stored value, unchanged.
        used: i64,
    },
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Its holds count against the limits.
    Held,
    /// Replaced by a call's actual usage.
    Settled,
    /// Given back unused.
    Released,
    /// Given back by itself after `expires_at`.
    Expired,
}

impl ReservationState {
    /// The stable name, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Settled => "settled",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// The state a stored name names, or `None`.
    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Held, Self::Settled, Self::Released, Self::Expired].into_iter().find(|state| state.as_str() == text)
    }
}

/// A reservation's holds as every backend stores them: a JSON array of
/// `[subject_kind, subject, metric, period, window_start, amount]`.
pub fn encode_holds(holds: &[(CounterKey, i64)]) -> String {
    let rows: Vec<serde_json::Value> = holds
        .iter()
        .map(|(key, amount)| {
            serde_json::json!([
                key.limit.subject.kind(),
                key.limit.subject.id(),
                key.limit.metric.as_str(),
                key.limit.window.as_str(),
                key.window_start.unix_micros(),
                amount
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Reads holds stored by [`encode_holds`]; the error says what is wrong (for a backend's corrupt-row error).
pub fn decode_holds(text: &str) -> std::result::Result<Vec<(CounterKey, i64)>, String> {
    let rows: Vec<(String, String, String, String, i64, i64)> =
        serde_json::from_str(text).map_err(|error| error.to_string())?;
    rows.into_iter()
        .map(|(kind, subject, metric, period, start, amount)| {
            let limit = tollgate_types::LimitKey {
                subject: tollgate_types::LimitSubject::parse(&kind, &subject).map_err(|error| error.to_string())?,
                metric: metric.parse().map_err(|error: tollgate_types::ValidationError| error.to_string())?,
                window: period.parse().map_err(|error: tollgate_types::ValidationError| error.to_string())?,
            };
            Ok((CounterKey { limit, window_start: tollgate_types::Timestamp::from_unix_micros(start) }, amount))
        })
        .collect()
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationRecord {
    /// Its id.
    pub id: ReservationId,
    /// The token it is for.
    pub token_id: TokenId,
    /// What it holds (or held).
    pub holds: Vec<(CounterKey, i64)>,
    /// Where it stands.
    pub state: ReservationState,
    /// When it was made.
    pub created_at: Timestamp,
    /// When its holds return by themselves.
    pub expires_at: Timestamp,
    /// When it was settled, released or expired.
    pub closed_at: Option<Timestamp>,
}

/// What settling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The reservation afterwards (settled; or as it was when it had already been settled or released).
    pub reservation: ReservationRecord,
    /// The usage event: recorded, or a duplicate (a settle repeated, or its `event_id` seen before);
    /// `None` when the reservation had been released (nothing is recorded then).
    pub recorded: Option<RecordOutcome>,
    /// Every counter changed, with its total afterwards.
    pub totals: Vec<(CounterKey, i64)>,
}

/// Leases and reservations. Every operation is one transaction (except the chunked expiry).
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Records a holder (a process starting up). Registering one id twice is a `Conflict`.
    async fn register_holder(&self, holder: &HolderId, at: Timestamp) -> Result<()>;

    /// Grants up to `request.want` units of a request quota to `holder`, never taking the counter
    /// past `request.max` (creating the counter when missing). Granting anything to a holder that
    /// was never registered is a `Conflict`. A lease is not a heartbeat: holders report.
    async fn lease(&self, holder: &HolderId, request: &LeaseRequest, at: Timestamp) -> Result<LeaseGrant>;

    /// Records how much the holder admitted from its blocks (write-behind, cumulative per window;
    /// never more than granted, never less than reported before), and that it is alive.
    async fn report_leases(&self, holder: &HolderId, uses: &[LeaseUse], at: Timestamp) -> Result<()>;

    /// A clean stop: gives the unused units back to their counters (never more than granted minus
    /// the last reported consumption) and marks the holder stopped. What a stopped holder did not
    /// give back counts as neither leased nor stranded.
    async fn return_leases(&self, holder: &HolderId, returns: &[LeaseReturn], at: Timestamp) -> Result<()>;

    /// For each key: units held by other holders alive since `live_since`, and units stranded with
    /// holders that went quiet before it without returning them.
    async fn lease_summaries(
        &self,
        keys: &[CounterKey],
        except: &HolderId,
        live_since: Timestamp,
    ) -> Result<Vec<LeaseSummary>>;

    /// Units stranded across every request quota whose window has not ended at `now`: leased to
    /// holders that went quiet before `live_since` without stopping, and never reported admitted.
    async fn stranded_units(&self, live_since: Timestamp, now: Timestamp) -> Result<u64>;

    /// Takes every hold (all or none: refused when an enforced hold would pass its maximum) and
    /// stores the reservation, in one transaction.
    async fn reserve(&self, insert: &ReservationInsert) -> Result<ReserveOutcome>;

    /// Replaces a held reservation's holds with a call's actual usage and records the event, in one
    /// transaction: the counters lose the holds and gain `usage.counters`. An expired reservation
    /// (its holds already returned) records the event as plain usage and becomes settled, keeping
    /// its `closed_at`. Settling again, or settling a released reservation, changes nothing.
    /// `Conflict` when the usage is for another token (checked first); `NotFound` (`reservation`)
    /// for an unknown id.
    async fn settle_reservation(&self, id: &ReservationId, usage: &EventToRecord, at: Timestamp) -> Result<Settled>;

    /// Gives a held reservation's holds back (one held past its expiry ends `expired`, not
    /// `released`). Releasing again, or releasing a closed reservation, changes nothing.
    /// `NotFound` (`reservation`) for an unknown id.
    async fn release_reservation(&self, id: &ReservationId, at: Timestamp) -> Result<ReservationRecord>;

    /// Gives back the holds of every reservation held at or past its `expires_at`; returns how many
    /// expired. Done in chunks (each chunk one transaction), so a large backlog never holds the
    /// writer long.
    async fn expire_reservations(&self, now: Timestamp) -> Result<u64>;

    /// One reservation, or `NotFound`.
    async fn reservation(&self, id: &ReservationId) -> Result<ReservationRecord>;

    /// The counters' values, read only. A missing counter reads as it would be created: a counter
    /// of tokens or cost over an hour, a day or a month starts from the usage already rolled up in
    /// its window (so a limit set mid-month counts the month's spend so far); others start at zero.
    async fn counter_values(&self, keys: &[CounterKey]) -> Result<Vec<i64>>;

    /// Deletes leases whose windows ended before `before`, reservations closed before it, and
    /// holders quiet since before it with no lease left; returns how many rows.
    async fn purge_quota_state(&self, before: Timestamp) -> Result<u64>;
}

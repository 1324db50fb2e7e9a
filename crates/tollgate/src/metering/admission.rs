//! What an admission holds and tells: the reservation a request asks for and the one it got, the
//! rate-limit state for headers, and the policy for models without a price.

use std::time::Duration;

use serde::Serialize;
use tollgate_types::{CounterKey, Metric, Microdollars, ReservationId, Timestamp, TokenId};

/// What happens to usage of a model that has no price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnpricedModels {
    /// Refused wherever an enforced cost limit governs the token (fail closed); elsewhere it is
    /// recorded as costing nothing. The default.
    #[default]
    Refuse,
    /// Always counted as costing nothing.
    Free,
}

/// What a gateway holds against a token's quotas when it admits a call: the most tokens and money
/// the call can use. Amounts beyond what is left are refused up front, so concurrent calls cannot
/// overspend; [`Metering::settle`](crate::Metering::settle) later replaces the estimate with the actual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// LLM tokens (input plus the most output the call may produce).
    pub tokens: u64,
    /// Money; `None` when the model has no price (see [`UnpricedModels`]).
    pub cost: Option<Microdollars>,
}

impl Reservation {
    /// Nothing reserved: a plain verify (token and cost limits admit while anything is left).
    pub const NONE: Self = Self { tokens: 0, cost: Some(Microdollars::ZERO) };

    /// Whether the caller asked for anything to be held (then a reservation is always stored, so
    /// the call can be settled by id, even when no limit needs a hold).
    pub(crate) fn holds_anything(&self) -> bool {
        self.tokens > 0 || self.cost.is_some_and(|cost| cost > Microdollars::ZERO)
    }
}

impl Default for Reservation {
    fn default() -> Self {
        Self::NONE
    }
}

/// Amounts held by an admission in the store, to be settled with the actual usage or released
/// (or, left alone, returned by themselves when the reservation expires). Not `Clone`: one
/// reservation is settled once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "settle or release a reservation, or its holds stay counted until it expires"]
pub struct QuotaReservation {
    pub(super) token_id: TokenId,
    pub(super) id: Option<ReservationId>,
    pub(super) holds: Vec<(CounterKey, i64)>,
    pub(super) expires_at: Option<Timestamp>,
}

impl QuotaReservation {
    pub(crate) fn empty(token_id: TokenId) -> Self {
        Self { token_id, id: None, holds: Vec::new(), expires_at: None }
    }

    /// The token it was made for.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// The stored reservation's id; `None` when nothing needed holding (no tokens or cost limit).
    pub fn id(&self) -> Option<ReservationId> {
        self.id
    }

    /// When its holds return by themselves.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// How much is held of `metric` on the tightest counter (0 when nothing).
    pub fn held(&self, metric: Metric) -> i64 {
        self.holds.iter().filter(|(key, _)| key.limit.metric == metric).map(|(_, amount)| *amount).max().unwrap_or(0)
    }
}

/// Rate-limit state of an admitted request, for `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset` headers: the tightest request limit that governs the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimitStatus {
    /// Requests allowed in the window (or the burst, for a rate limit).
    pub limit: u64,
    /// Requests left.
    pub remaining: u64,
    /// Time until the window resets (or a request is available again), in whole seconds rounded up.
    #[serde(rename = "reset_seconds", serialize_with = "seconds_rounded_up")]
    pub reset: Duration,
}

fn seconds_rounded_up<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_micros().div_ceil(1_000_000).try_into().unwrap_or(u64::MAX))
}

impl RateLimitStatus {
    /// The tighter of two statuses (fewer requests left, then the later reset).
    pub(crate) fn tighter(self, other: Option<Self>) -> Self {
        match other {
            Some(other)
                if (other.remaining, std::cmp::Reverse(other.reset))
                    < (self.remaining, std::cmp::Reverse(self.reset)) =>
            {
                other
            }
            _ => self,
        }
    }
}

/// An admitted request: the holds to settle or release later, and the tightest rate-limit state
/// (for `RateLimit-*` headers).
#[derive(Debug)]
#[non_exhaustive]
pub struct Admission {
    /// What the request holds against its tokens and cost limits (empty without an estimate).
    pub reservation: QuotaReservation,
    /// The tightest request limit or rate limit that applied, if any.
    pub rate_limit: Option<RateLimitStatus>,
}

//! The quota engine: decides admissions against every limit that governs a token, atomically, and
//! keeps the counters (in memory, persisted write-behind; or in the store itself).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tollgate_store::{ConsumeOutcome, CounterDelta, CounterIncrement, ShadowHit, Store};
use tollgate_types::{
    CounterKey, LimitKey, LimitSpec, Metric, Microdollars, Refusal, RefusalCode, Timestamp, TokenId, ValidationError,
};

use super::counters::{Counter, fits};
use super::index::{LimitIndex, Subjects};
use crate::{Error, Result};

/// Where quota counters live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuotaMode {
    /// In-process atomic counters, seeded from the store and persisted to it write-behind with the
    /// usage batches. Exact and fast on one node (the default).
    #[default]
    Local,
    /// Every admission is a conditional increment in one store transaction: exact across several
    /// processes sharing a database, at the cost of a write per admission.
    Store,
}

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
}

impl Default for Reservation {
    fn default() -> Self {
        Self::NONE
    }
}

/// One amount held on one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold {
    key: CounterKey,
    amount: i64,
}

/// Amounts held by an admission, to be settled with the actual usage or released.
/// Dropping it keeps the amounts counted (never an overspend, at worst an undercount of what is left).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "settle or release a reservation, or the held amounts stay counted"]
pub struct QuotaReservation {
    token_id: TokenId,
    holds: Vec<Hold>,
}

impl QuotaReservation {
    pub(crate) fn empty(token_id: TokenId) -> Self {
        Self { token_id, holds: Vec::new() }
    }

    /// The token it was made for.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// How much is held of `metric` on the tightest counter (0 when nothing).
    pub fn held(&self, metric: Metric) -> i64 {
        self.holds.iter().filter(|hold| hold.key.limit.metric == metric).map(|hold| hold.amount).max().unwrap_or(0)
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

/// An admission: the holds to settle later and the rate-limit state for headers.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) reservation: QuotaReservation,
    pub(crate) rate_limit: Option<RateLimitStatus>,
}

struct Planned<'a> {
    spec: &'a LimitSpec,
    key: CounterKey,
    amount: i64,
    max: i64,
}

fn max_of(spec: &LimitSpec) -> i64 {
    i64::try_from(spec.max()).unwrap_or(i64::MAX)
}

/// A quota refusal: which limit, when its window resets, and how long that is from `now` on the
/// engine's own clock (so callers never mix clocks when they send `Retry-After`).
fn quota_refusal(key: &CounterKey, now: Timestamp) -> Error {
    Error::Refused(Refusal {
        code: RefusalCode::QuotaExceeded,
        retry_after: Some(key.window_end().duration_since(now)),
        limit: Some(key.limit.name()),
        resets_at: Some(key.window_end()),
    })
}

fn unpriced_refusal() -> Error {
    ValidationError::new("model", "has no price and a cost limit governs this token; set a price or report the cost")
        .into()
}

/// What a write takes from the engine and gives back on failure.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    counters: Vec<(Arc<Counter>, i64)>,
    pub(crate) deltas: Vec<CounterDelta>,
    pub(crate) shadow_hits: Vec<ShadowHit>,
}

/// Limits in memory and the counters of their current windows.
#[derive(Debug)]
pub(crate) struct QuotaEngine {
    store: Arc<dyn Store>,
    mode: QuotaMode,
    unpriced: UnpricedModels,
    index: RwLock<Arc<LimitIndex>>,
    counters: RwLock<HashMap<CounterKey, Arc<Counter>>>,
    shadow_hits: Mutex<HashMap<LimitKey, (u64, Timestamp)>>,
}

impl QuotaEngine {
    pub(crate) fn new(store: Arc<dyn Store>, mode: QuotaMode, unpriced: UnpricedModels) -> Self {
        Self {
            store,
            mode,
            unpriced,
            index: RwLock::new(Arc::default()),
            counters: RwLock::new(HashMap::new()),
            shadow_hits: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn unpriced(&self) -> UnpricedModels {
        self.unpriced
    }

    /// Reads every limit from the store.
    pub(crate) async fn reload(&self) -> Result<()> {
        let records = self.store.limits(None).await?;
        *self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(LimitIndex::build(&records));
        Ok(())
    }

    pub(crate) fn index(&self) -> Arc<LimitIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The counter for `key`, loading (and creating) it from the store on first use.
    async fn counter(&self, key: &CounterKey) -> Result<Arc<Counter>> {
        if let Some(counter) = self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key) {
            return Ok(Arc::clone(counter));
        }
        let used = self.store.load_counter(key).await?;
        let mut counters = self.counters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counter = counters.entry(key.clone()).or_insert_with(|| Arc::new(Counter::new(used, key.window_end())));
        Ok(Arc::clone(counter))
    }

    async fn counters_for(&self, plan: &[Planned<'_>]) -> Result<Vec<Arc<Counter>>> {
        let mut counters = Vec::with_capacity(plan.len());
        for planned in plan {
            counters.push(self.counter(&planned.key).await?);
        }
        Ok(counters)
    }

    fn shadow_hit(&self, key: &LimitKey, at: Timestamp) {
        tracing::info!(limit = %key, "shadow limit would have refused a request");
        let mut hits = self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = hits.entry(key.clone()).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    /// Admits one request of `subjects` holding `reservation`, or refuses it without changing anything.
    pub(crate) async fn admit(
        &self,
        subjects: &Subjects,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Admission> {
        let index = self.index();
        let mut admission = Admission { reservation: QuotaReservation::empty(subjects.token_id), rate_limit: None };
        if index.is_empty() {
            return Ok(admission);
        }
        let mut plan = Vec::new();
        for spec in index.applicable(subjects) {
            let amount = match spec.key().metric {
                Metric::Requests => 1,
                Metric::Tokens => i64::try_from(reservation.tokens)
                    .map_err(|_| ValidationError::new("tokens", "is too large to reserve"))?,
                Metric::Cost => match (reservation.cost, self.unpriced, spec.shadow()) {
                    (Some(cost), _, _) => cost.micros(),
                    (None, UnpricedModels::Refuse, false) => return Err(unpriced_refusal()),
                    (None, _, _) => 0,
                },
            };
            plan.push(Planned { spec, key: CounterKey::at(spec.key().clone(), now), amount, max: max_of(spec) });
        }
        if plan.is_empty() {
            return Ok(admission);
        }
        // Enforced limits first: a refusal happens before any shadow limit counts the request.
        plan.sort_by_key(|planned| planned.spec.shadow());
        let totals = match self.mode {
            QuotaMode::Local => self.admit_local(&plan, now).await?,
            QuotaMode::Store => self.admit_in_store(&plan, now).await?,
        };
        for (planned, total) in plan.iter().zip(totals) {
            if planned.key.limit.metric != Metric::Requests {
                admission.reservation.holds.push(Hold { key: planned.key.clone(), amount: planned.amount });
            } else if !planned.spec.shadow() {
                let status = RateLimitStatus {
                    limit: planned.spec.max(),
                    remaining: u64::try_from(planned.max.saturating_sub(total)).unwrap_or(0),
                    reset: planned.key.window_end().duration_since(now),
                };
                admission.rate_limit = Some(status.tighter(admission.rate_limit));
            }
        }
        Ok(admission)
    }

    /// Compare-and-swap on in-memory counters; on a refusal, earlier increments are taken back.
    async fn admit_local(&self, plan: &[Planned<'_>], now: Timestamp) -> Result<Vec<i64>> {
        let counters = self.counters_for(plan).await?;
        let mut totals = Vec::with_capacity(plan.len());
        for (index, (planned, counter)) in plan.iter().zip(&counters).enumerate() {
            if planned.spec.shadow() {
                let before = counter.add(planned.amount);
                if !fits(before, planned.amount, planned.max) {
                    self.shadow_hit(&planned.key.limit, now);
                }
                totals.push(before + planned.amount);
                continue;
            }
            match counter.try_add(planned.amount, planned.max) {
                Ok(total) => totals.push(total),
                Err(_) => {
                    for (earlier, counter) in plan[..index].iter().zip(&counters) {
                        counter.add(-earlier.amount);
                    }
                    return Err(quota_refusal(&planned.key, now));
                }
            }
        }
        Ok(totals)
    }

    /// One conditional-increment transaction in the store.
    async fn admit_in_store(&self, plan: &[Planned<'_>], now: Timestamp) -> Result<Vec<i64>> {
        let increments: Vec<CounterIncrement> = plan
            .iter()
            .map(|planned| CounterIncrement {
                key: planned.key.clone(),
                amount: planned.amount,
                max: (!planned.spec.shadow()).then_some(planned.spec.max()),
            })
            .collect();
        match self.store.try_consume(&increments).await? {
            ConsumeOutcome::Applied(totals) => {
                for (planned, total) in plan.iter().zip(&totals) {
                    if planned.spec.shadow() && !fits(total - planned.amount, planned.amount, planned.max) {
                        self.shadow_hit(&planned.key.limit, now);
                    }
                }
                Ok(totals)
            }
            ConsumeOutcome::Refused { index, .. } => Err(quota_refusal(&plan[index].key, now)),
        }
    }

    /// Counts usage that happened (tokens and cost of a recorded event) against every token and
    /// cost limit of `subjects`, in the window containing `at`.
    pub(crate) async fn add_usage(
        &self,
        subjects: &Subjects,
        at: Timestamp,
        tokens: u64,
        cost: Microdollars,
    ) -> Result<()> {
        let index = self.index();
        if !index.has_usage_limits {
            return Ok(());
        }
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let plan: Vec<Planned<'_>> = index
            .applicable(subjects)
            .filter_map(|spec| {
                let amount = match spec.key().metric {
                    Metric::Requests => return None,
                    Metric::Tokens => tokens,
                    Metric::Cost => cost.micros(),
                };
                (amount != 0).then(|| Planned { spec, key: CounterKey::at(spec.key().clone(), at), amount, max: 0 })
            })
            .collect();
        for (planned, counter) in plan.iter().zip(self.counters_for(&plan).await?) {
            counter.add(planned.amount);
        }
        Ok(())
    }

    /// Replaces a reservation's held amounts with the actual usage.
    pub(crate) async fn settle(&self, reservation: QuotaReservation, tokens: u64, cost: Microdollars) -> Result<()> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        for hold in reservation.holds {
            let actual = match hold.key.limit.metric {
                Metric::Requests => continue,
                Metric::Tokens => tokens,
                Metric::Cost => cost.micros(),
            };
            if actual != hold.amount {
                self.counter(&hold.key).await?.add(actual - hold.amount);
            }
        }
        Ok(())
    }

    /// Takes every unwritten counter change (and, with `all`, a zero change for every live counter,
    /// so the write reports what other processes added) and the shadow hits.
    pub(crate) fn drain(&self, all: bool) -> Drained {
        let mut drained = Drained::default();
        for (key, counter) in self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            let delta = counter.take_pending();
            if delta != 0 || all {
                drained.deltas.push(CounterDelta { key: key.clone(), delta });
                drained.counters.push((Arc::clone(counter), delta));
            }
        }
        let hits = std::mem::take(&mut *self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        drained.shadow_hits =
            hits.into_iter().map(|(limit, (hits, last_at))| ShadowHit { limit, hits, last_at }).collect();
        drained
    }

    /// After a successful write: reconcile counters with the store's totals, forget ended windows.
    pub(crate) fn written(&self, drained: Drained, totals: &[i64], now: Timestamp) {
        for ((counter, delta), total) in drained.counters.iter().zip(totals) {
            counter.reconcile(*delta, *total);
        }
        drop(drained);
        let mut counters = self.counters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A counter still held elsewhere (an admission in flight) or with unwritten changes stays.
        counters
            .retain(|_, counter| counter.window_end() > now || counter.has_pending() || Arc::strong_count(counter) > 1);
    }

    /// After a failed write: put everything back for the next attempt.
    pub(crate) fn restore(&self, drained: Drained) {
        for (counter, delta) in &drained.counters {
            counter.restore_pending(*delta);
        }
        let mut hits = self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for hit in drained.shadow_hits {
            let entry = hits.entry(hit.limit).or_insert((0, hit.last_at));
            entry.0 += hit.hits;
            entry.1 = entry.1.max(hit.last_at);
        }
    }

    /// The current total of a limit's counter for the window containing `now`.
    pub(crate) async fn used(&self, spec: &LimitSpec, now: Timestamp) -> Result<(CounterKey, i64)> {
        let key = CounterKey::at(spec.key().clone(), now);
        let used = self.counter(&key).await?.used();
        Ok((key, used))
    }

    /// How many counters are held in memory.
    pub(crate) fn live_counters(&self) -> usize {
        self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

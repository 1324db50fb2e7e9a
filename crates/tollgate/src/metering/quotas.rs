//! The quota engine: decides admissions against every limit that governs a token.
//!
//! - Request limits admit from blocks leased from the store (`leases`): exact across processes and
//!   crashes, with no database on the hot path.
//! - Tokens and cost limits count usage in the same transaction that stores it (idempotent by
//!   `event_id`), hold reservations in the store (`reserve`), and admit a plain verify while the
//!   last known total is under the maximum.
//! - Shadow request limits count in memory and are written with the usage batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tollgate_store::{CounterDelta, Hold, ReservationInsert, ReserveOutcome, ShadowHit, Store};
use tollgate_types::{
    CounterKey, LimitKey, LimitSpec, Metric, Microdollars, Refusal, RefusalCode, ReservationId, Timestamp, TokenId,
    UsageEvent, ValidationError,
};

use super::admission::{Admission, QuotaReservation, RateLimitStatus, Reservation, UnpricedModels};
use super::counters::{Counter, fits};
use super::index::{LimitIndex, Subjects};
use super::leases::{LeaseBook, LeaseCounter, QUIET_HOLDER};
use crate::{Error, Result};

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

/// The amount of `metric` an event or a reservation uses (requests are counted by admissions).
fn amount_of(metric: Metric, tokens: u64, cost: Microdollars) -> Option<i64> {
    match metric {
        Metric::Requests => None,
        Metric::Tokens => Some(i64::try_from(tokens).unwrap_or(i64::MAX)),
        Metric::Cost => Some(cost.micros()),
    }
}

/// Limits in memory, the leased request quotas, and what is known of the store's counters.
#[derive(Debug)]
pub(crate) struct QuotaEngine {
    store: Arc<dyn Store>,
    unpriced: UnpricedModels,
    reservation_ttl: Duration,
    index: RwLock<Arc<LimitIndex>>,
    pub(crate) leases: Arc<LeaseBook>,
    /// The last known total of each tokens or cost counter in the store. Totals reported by writes
    /// arrive in any order, so they only ever raise a view; a fresh read lowers it (`refresh_views`).
    views: RwLock<HashMap<CounterKey, i64>>,
    /// Bumped by every `observe`, so a read that raced with one does not lower a view below it.
    observations: AtomicU64,
    /// Shadow request counts not yet written.
    shadow: RwLock<HashMap<CounterKey, Arc<Counter>>>,
    shadow_hits: Mutex<HashMap<LimitKey, (u64, Timestamp)>>,
}

impl QuotaEngine {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        leases: LeaseBook,
        unpriced: UnpricedModels,
        reservation_ttl: Duration,
    ) -> Self {
        Self {
            store,
            unpriced,
            reservation_ttl,
            index: RwLock::new(Arc::default()),
            leases: Arc::new(leases),
            views: RwLock::new(HashMap::new()),
            observations: AtomicU64::new(0),
            shadow: RwLock::new(HashMap::new()),
            shadow_hits: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn unpriced(&self) -> UnpricedModels {
        self.unpriced
    }

    /// Applies one limit just stored (or removed, `None`) to the index in memory.
    pub(crate) fn apply_limit(&self, key: &LimitKey, spec: Option<LimitSpec>) {
        let mut index = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *index = Arc::new(index.replaced(key, spec));
    }

    /// Reads every limit from the store, and refreshes the known totals of tokens and cost counters:
    /// those already viewed and those of every limit's window at `now`, in one read — so the first
    /// request of each owner in a window does not wait for its counters.
    pub(crate) async fn reload(&self, now: Timestamp) -> Result<()> {
        let records = self.store.limits(None).await?;
        *self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(LimitIndex::build(&records));
        let mut keys: Vec<CounterKey> =
            self.views.read().unwrap_or_else(|poisoned| poisoned.into_inner()).keys().cloned().collect();
        keys.extend(records.iter().map(|record| CounterKey::at(record.spec.key().clone(), now)));
        keys.sort();
        keys.dedup();
        self.refresh_views(keys).await
    }

    /// Reads the counters of `keys` again and takes their values as the views, even when lower (a
    /// release, a settle for less, an expiry). A write observed while the read ran may be newer than
    /// the read: then a view is only raised, never lowered.
    pub(crate) async fn refresh_views(&self, keys: Vec<CounterKey>) -> Result<()> {
        let keys: Vec<CounterKey> = keys.into_iter().filter(|key| key.limit.metric != Metric::Requests).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let before = self.observations.load(Ordering::Acquire);
        let values = self.store.counter_values(&keys).await?;
        let mut views = self.views.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let exact = self.observations.load(Ordering::Acquire) == before;
        for (key, value) in keys.into_iter().zip(values) {
            let view = views.entry(key).or_insert(value);
            *view = if exact { value } else { (*view).max(value) };
        }
        Ok(())
    }

    pub(crate) fn index(&self) -> Arc<LimitIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The last known total of a tokens or cost counter, read from the store on first use.
    async fn view(&self, key: &CounterKey) -> Result<i64> {
        if let Some(value) = self.views.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key) {
            return Ok(*value);
        }
        let value = self.store.counter_values(std::slice::from_ref(key)).await?.first().copied().unwrap_or(0);
        // A write observed meanwhile may know a higher total: keep the higher.
        let mut views = self.views.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let view = views.entry(key.clone()).or_insert(value);
        *view = (*view).max(value);
        Ok(*view)
    }

    /// Takes note of counter totals a write reported (and of shadow limits they now pass).
    pub(crate) fn observe(&self, totals: &[(CounterKey, i64)], now: Timestamp) {
        if totals.is_empty() {
            return;
        }
        let index = self.index();
        let mut views = self.views.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.observations.fetch_add(1, Ordering::AcqRel);
        for (key, total) in totals {
            if key.limit.metric == Metric::Requests {
                continue;
            }
            let view = views.entry(key.clone()).or_insert(0);
            let before = *view;
            *view = before.max(*total);
            if let Some(spec) = index.spec(&key.limit)
                && spec.shadow()
                && *total > max_of(spec)
                && before < *total
            {
                self.shadow_hit(&key.limit, now);
            }
        }
    }

    fn shadow_hit(&self, key: &LimitKey, at: Timestamp) {
        tracing::info!(limit = %key, "shadow limit would have refused a request");
        let mut hits = self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = hits.entry(key.clone()).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    fn shadow_counter(&self, key: &CounterKey) -> Arc<Counter> {
        if let Some(counter) = self.shadow.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key) {
            return Arc::clone(counter);
        }
        let mut shadow = self.shadow.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(shadow.entry(key.clone()).or_insert_with(|| Arc::new(Counter::new(0))))
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
        if index.is_empty() && !reservation.holds_anything() {
            return Ok(admission);
        }
        let mut taken: Vec<Arc<LeaseCounter>> = Vec::new();
        let give_back = |taken: &[Arc<LeaseCounter>]| taken.iter().for_each(|counter| counter.give_back());
        let mut holds: Vec<Hold> = Vec::new();
        for spec in index.applicable(subjects) {
            let key = CounterKey::at(spec.key().clone(), now);
            match key.limit.metric {
                Metric::Requests if spec.shadow() => {
                    let before = self.shadow_counter(&key).add(1);
                    if !fits(before, 1, max_of(spec)) {
                        self.shadow_hit(&key.limit, now);
                    }
                }
                Metric::Requests => match self.leases.take(&key, spec.max()).await {
                    Ok(Some(counter)) => {
                        let status = RateLimitStatus {
                            limit: spec.max(),
                            remaining: u64::try_from(max_of(spec).saturating_sub(counter.store_used())).unwrap_or(0)
                                + counter.available(),
                            reset: key.window_end().duration_since(now),
                        };
                        admission.rate_limit = Some(status.tighter(admission.rate_limit));
                        taken.push(counter);
                    }
                    Ok(None) => {
                        give_back(&taken);
                        return Err(quota_refusal(&key, now));
                    }
                    Err(error) => {
                        give_back(&taken);
                        return Err(error);
                    }
                },
                metric => {
                    let amount = match (metric, reservation.cost, self.unpriced, spec.shadow()) {
                        (Metric::Tokens, ..) => i64::try_from(reservation.tokens).unwrap_or(i64::MAX),
                        (_, Some(cost), _, _) => cost.micros(),
                        (_, None, UnpricedModels::Refuse, false) => {
                            give_back(&taken);
                            return Err(unpriced_refusal());
                        }
                        (_, None, _, _) => 0,
                    };
                    if amount > 0 {
                        holds.push(Hold { key, amount, max: (!spec.shadow()).then_some(spec.max()) });
                    } else if !spec.shadow() {
                        // Nothing reserved: admitted while anything is left.
                        match self.view(&key).await {
                            Ok(used) if fits(used, 0, max_of(spec)) => {}
                            Ok(_) => {
                                give_back(&taken);
                                return Err(quota_refusal(&key, now));
                            }
                            Err(error) => {
                                give_back(&taken);
                                return Err(error);
                            }
                        }
                    }
                }
            }
        }
        if reservation.holds_anything() {
            match self.reserve(subjects.token_id, holds, now).await {
                Ok(held) => admission.reservation = held,
                Err(error) => {
                    give_back(&taken);
                    return Err(error);
                }
            }
        }
        Ok(admission)
    }

    /// Stores a reservation of `holds` (all or none).
    async fn reserve(&self, token_id: TokenId, holds: Vec<Hold>, now: Timestamp) -> Result<QuotaReservation> {
        let expires_at = now.saturating_add(self.reservation_ttl);
        let insert = ReservationInsert { id: ReservationId::generate(), token_id, holds, created_at: now, expires_at };
        match self.store.reserve(&insert).await? {
            ReserveOutcome::Held(totals) => {
                let observed: Vec<(CounterKey, i64)> =
                    insert.holds.iter().map(|hold| hold.key.clone()).zip(totals).collect();
                self.observe(&observed, now);
                Ok(QuotaReservation {
                    token_id,
                    id: Some(insert.id),
                    holds: insert.holds.into_iter().map(|hold| (hold.key, hold.amount)).collect(),
                    expires_at: Some(expires_at),
                })
            }
            ReserveOutcome::Refused { index, .. } => Err(quota_refusal(&insert.holds[index].key, now)),
        }
    }

    /// What a recorded event adds to the tokens and cost counters that govern its token.
    pub(crate) fn usage_deltas(&self, subjects: Option<&Subjects>, event: &UsageEvent) -> Vec<CounterDelta> {
        let Some(subjects) = subjects else { return Vec::new() };
        let index = self.index();
        if !index.has_usage_limits {
            return Vec::new();
        }
        let cost = event.cost.unwrap_or(Microdollars::ZERO);
        index
            .applicable(subjects)
            .filter_map(|spec| {
                let amount = amount_of(spec.key().metric, event.total_tokens(), cost)?;
                (amount != 0).then(|| CounterDelta { key: CounterKey::at(spec.key().clone(), event.at), delta: amount })
            })
            .collect()
    }

    /// Takes the shadow request counts and shadow hits not yet written.
    pub(crate) fn take_shadow(&self) -> (Vec<CounterDelta>, Vec<ShadowHit>) {
        let mut deltas = Vec::new();
        for (key, counter) in self.shadow.read().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            let delta = counter.take_pending();
            if delta != 0 {
                deltas.push(CounterDelta { key: key.clone(), delta });
            }
        }
        let hits = std::mem::take(&mut *self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let hits = hits.into_iter().map(|(limit, (hits, last_at))| ShadowHit { limit, hits, last_at }).collect();
        (deltas, hits)
    }

    /// Puts shadow counts back after a failed write.
    pub(crate) fn restore_shadow(&self, deltas: Vec<CounterDelta>, hits: Vec<ShadowHit>) {
        for delta in deltas {
            self.shadow_counter(&delta.key).restore_pending(delta.delta);
        }
        let mut tallies = self.shadow_hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for hit in hits {
            let entry = tallies.entry(hit.limit).or_insert((0, hit.last_at));
            entry.0 += hit.hits;
            entry.1 = entry.1.max(hit.last_at);
        }
    }

    /// Forgets shadow counters and views whose window ended.
    pub(crate) fn forget_ended(&self, now: Timestamp) {
        self.shadow
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|key, counter| key.window_end() > now || counter.has_pending());
        self.views.write().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|key, _| key.window_end() > now);
    }

    /// A limit's current window: its counter key and the store's total (every block leased and
    /// every hold included) with, for a request limit, what of it is leased unused or stranded.
    pub(crate) async fn used(&self, spec: &LimitSpec, now: Timestamp) -> Result<Usage> {
        let key = CounterKey::at(spec.key().clone(), now);
        let total = self.store.counter_values(std::slice::from_ref(&key)).await?.first().copied().unwrap_or(0);
        let mut usage = Usage { key, total, leased: 0, stranded: 0 };
        if usage.key.limit.metric == Metric::Requests {
            let local = self.leases.existing(&usage.key).map_or(0, |counter| counter.available());
            let others = self.leases.others(&usage.key, now.saturating_sub(QUIET_HOLDER)).await?;
            usage.leased = local.saturating_add(others.leased);
            usage.stranded = others.stranded;
        }
        Ok(usage)
    }

    /// Request-quota units lost with processes that stopped without returning them, in windows
    /// not yet ended.
    pub(crate) async fn stranded_units(&self, now: Timestamp) -> Result<u64> {
        Ok(self.store.stranded_units(now.saturating_sub(QUIET_HOLDER), now).await?)
    }

    /// How many counters are held in memory.
    pub(crate) fn live_counters(&self) -> usize {
        self.leases.live()
            + self.views.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
            + self.shadow.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

/// A limit's window as [`QuotaEngine::used`] reads it.
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    pub(crate) key: CounterKey,
    pub(crate) total: i64,
    pub(crate) leased: u64,
    pub(crate) stranded: u64,
}

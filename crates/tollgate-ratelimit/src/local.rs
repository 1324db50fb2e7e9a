//! The in-process limiter: one GCRA state (a TAT) per key in governor's concurrent state store, a hard cap on
//! the number of keys, and eviction that drops idle keys first.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use governor::clock::{Clock, QuantaClock, Reference};
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};

use crate::gcra::{self, Step};
use crate::{Decision, RateKey, RateLimitStats, RateLimiter, RateQuota, Result};

/// Attempts to make room for a new key before deciding for it without storing it.
const INSERT_ATTEMPTS: usize = 3;

/// A full map frees at least 1/`ROOM_FRACTION` of the cap at once, so sweeps stay rare under churn.
const ROOM_FRACTION: usize = 100;

/// An in-process, per-key GCRA limiter. Each check names the key's own quota; the key's only state is its
/// theoretical arrival time (8 bytes), kept in governor's concurrent [`DashMapStateStore`] and updated with
/// governor's lock-free compare-and-swap. Time comes from a governor clock: [`QuantaClock`] by default,
/// [`governor::clock::FakeRelativeClock`] in tests.
///
/// Memory is bounded by `max_keys`. A new key that finds the map full first evicts every idle key (bucket full
/// again, so nothing is lost). If that frees less than 1% of the cap, arbitrary active keys are evicted too:
/// each such key starts over with a full burst, so the limiter only ever errs towards admitting, and
/// [`RateLimitStats::evicted_active`] counts it. The number of keys never exceeds the cap.
///
/// When a key's quota changes, the time it already owes carries over and the new quota applies from the next
/// check (the same semantics a Redis GCRA that stores only the TAT has).
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use tollgate_ratelimit::{Decision, FakeRelativeClock, LocalLimiter, RateKey, RateQuota};
///
/// let clock = FakeRelativeClock::default();
/// let limiter = LocalLimiter::with_clock(NonZeroUsize::new(10_000).expect("non-zero"), clock.clone());
/// let quota = RateQuota::new(100, Duration::from_secs(60), 20)?; // 20 at once, then one every 600 ms
/// let key = RateKey::from_bytes([7; 16]);
///
/// for _ in 0..20 {
///     assert!(limiter.check(&key, &quota, 1)?.is_allowed());
/// }
/// let refused = limiter.check(&key, &quota, 1)?;
/// assert!(matches!(refused, Decision::Limited { retry_after, .. } if retry_after == Duration::from_millis(600)));
///
/// clock.advance(Duration::from_millis(600));
/// assert!(limiter.check(&key, &quota, 1)?.is_allowed());
/// # Ok::<(), tollgate_ratelimit::RateLimitError>(())
/// ```
pub struct LocalLimiter<C: Clock = QuantaClock> {
    store: DashMapStateStore<RateKey>,
    /// Keys stored plus slots reserved for keys about to be stored: never below the true count, never above
    /// `max_keys`. Reserved before an insert and released after a removal, so the cap holds under any race.
    n_keys: AtomicUsize,
    max_keys: usize,
    clock: C,
    start: C::Instant,
    /// Serializes sweeps of a full map so concurrent new keys do not all sweep.
    sweep_lock: Mutex<()>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    limited: AtomicU64,
    evicted_idle: AtomicU64,
    evicted_active: AtomicU64,
    untracked: AtomicU64,
}

impl LocalLimiter<QuantaClock> {
    /// A limiter on the monotonic TSC clock holding at most `max_keys` keys.
    pub fn new(max_keys: NonZeroUsize) -> Self {
        Self::with_clock(max_keys, QuantaClock::default())
    }
}

impl<C: Clock> LocalLimiter<C> {
    /// A limiter reading time from `clock`, holding at most `max_keys` keys.
    pub fn with_clock(max_keys: NonZeroUsize, clock: C) -> Self {
        let start = clock.now();
        Self {
            store: DashMapStateStore::default(),
            n_keys: AtomicUsize::new(0),
            max_keys: max_keys.get(),
            clock,
            start,
            sweep_lock: Mutex::new(()),
            counters: Counters::default(),
        }
    }

    /// Spends `cost` cells of `key`'s budget under `quota`, if available. Does not allocate for a known key.
    /// Errors only when `cost` is zero or above the quota's burst (such a request could never be admitted).
    pub fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        gcra::check_cost(quota, cost)?;
        let now = self.now_nanos();
        let decision = match self.store.get(key) {
            Some(state) => apply(&state, quota, cost, now),
            None => self.check_new_key(*key, quota, cost, now),
        };
        let counter = if decision.is_allowed() { &self.counters.allowed } else { &self.counters.limited };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(decision)
    }

    /// Keys currently held, counting a key another thread is inserting at this very moment. Never above
    /// [`Self::max_keys`]; constant time.
    pub fn len(&self) -> usize {
        self.n_keys.load(Ordering::Acquire)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this limiter holds.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Drops every key whose bucket is full again and gives memory back when the map is mostly empty;
    /// returns how many keys were dropped. Call it periodically; a full map also calls it by itself.
    pub fn evict_idle(&self) -> usize {
        let evicted = self.remove_idle(self.now_nanos());
        if self.store.capacity() > 4 * self.store.len().max(1024) {
            self.store.shrink_to_fit();
        }
        evicted
    }

    /// Running totals for metrics.
    pub fn stats(&self) -> RateLimitStats {
        RateLimitStats {
            allowed: self.counters.allowed.load(Ordering::Relaxed),
            limited: self.counters.limited.load(Ordering::Relaxed),
            evicted_idle: self.counters.evicted_idle.load(Ordering::Relaxed),
            evicted_active: self.counters.evicted_active.load(Ordering::Relaxed),
            untracked: self.counters.untracked.load(Ordering::Relaxed),
            ..RateLimitStats::default()
        }
    }

    fn now_nanos(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    fn check_new_key(&self, key: RateKey, quota: &RateQuota, cost: u32, now: u64) -> Decision {
        for _ in 0..INSERT_ATTEMPTS {
            // The slot is reserved only when the key is really inserted; a key another thread inserted meanwhile
            // is simply found.
            let entry = self
                .store
                .entry(key)
                .or_try_insert_with(|| if self.reserve_slot() { Ok(InMemoryState::default()) } else { Err(MapFull) });
            match entry {
                Ok(state) => return apply(&state, quota, cost, now),
                Err(MapFull) => self.make_room(now),
            }
        }
        // Only reachable when other threads keep taking the freed slots: decide as for a new key, store nothing.
        self.counters.untracked.fetch_add(1, Ordering::Relaxed);
        match gcra::step(None, now, quota, cost) {
            Step::Allow { decision, .. } | Step::Deny(decision) => decision,
        }
    }

    fn reserve_slot(&self) -> bool {
        self.n_keys.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_keys).then_some(n + 1)).is_ok()
    }

    fn release_slots(&self, n: usize) {
        self.n_keys.fetch_sub(n, Ordering::AcqRel);
    }

    /// Frees at least one slot, idle keys first; see the type's documentation.
    fn make_room(&self, now: u64) {
        let _sweeping = self.sweep_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.n_keys.load(Ordering::Acquire) < self.max_keys {
            return; // another thread made room while we waited
        }
        let target = (self.max_keys / ROOM_FRACTION).max(1);
        let evicted_idle = self.remove_idle(now);
        if evicted_idle < target {
            self.remove_any(target - evicted_idle);
        }
    }

    fn remove_idle(&self, now: u64) -> usize {
        let mut removed = 0;
        self.store.retain(|_, state| {
            let keep = tat_of(state).is_some_and(|tat| tat > now);
            removed += usize::from(!keep);
            keep
        });
        self.release_slots(removed);
        self.counters.evicted_idle.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    fn remove_any(&self, wanted: usize) {
        let mut removed = 0;
        self.store.retain(|_, _| {
            let keep = removed >= wanted;
            removed += usize::from(!keep);
            keep
        });
        self.release_slots(removed);
        self.counters.evicted_active.fetch_add(removed as u64, Ordering::Relaxed);
    }
}

/// The map had no free slot for a new key.
#[derive(Debug)]
struct MapFull;

/// Runs one GCRA step on a stored state with governor's compare-and-swap loop.
fn apply(state: &InMemoryState, quota: &RateQuota, cost: u32, now: u64) -> Decision {
    let outcome = state.measure_and_replace(&NotKeyed::NonKey, |tat| {
        match gcra::step(tat.map(Nanos::as_u64), now, quota, cost) {
            Step::Allow { decision, new_tat } => Ok((decision, Nanos::from(new_tat))),
            Step::Deny(decision) => Err(decision),
        }
    });
    match outcome {
        Ok(decision) | Err(decision) => decision,
    }
}

/// Reads a state's TAT without changing it (a step that always declines to write).
fn tat_of(state: &InMemoryState) -> Option<u64> {
    state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>).err().flatten().map(Nanos::as_u64)
}

impl<C: Clock> fmt::Debug for LocalLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never lists the keys: a million of them would flood any log.
        f.debug_struct("LocalLimiter")
            .field("len", &self.len())
            .field("max_keys", &self.max_keys)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<C> RateLimiter for LocalLimiter<C>
where
    C: Clock + Send + Sync,
{
    async fn check(&self, key: &RateKey, quota: &RateQuota, cost: u32) -> Result<Decision> {
        LocalLimiter::check(self, key, quota, cost)
    }

    fn len(&self) -> usize {
        LocalLimiter::len(self)
    }

    fn evict_idle(&self) -> usize {
        LocalLimiter::evict_idle(self)
    }

    fn stats(&self) -> RateLimitStats {
        LocalLimiter::stats(self)
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(max_keys: usize) -> LocalLimiter<FakeRelativeClock> {
        LocalLimiter::with_clock(NonZeroUsize::new(max_keys).unwrap(), FakeRelativeClock::default())
    }

    fn key(n: u32) -> RateKey {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        RateKey::from_bytes(bytes)
    }

    fn one_per_second() -> RateQuota {
        RateQuota::new(1, Duration::from_secs(1), 1).unwrap()
    }

    #[test]
    fn the_count_matches_the_map_once_concurrent_churn_settles() {
        let limiter = limiter(50);
        let quota = one_per_second();
        thread::scope(|scope| {
            for thread in 0..4 {
                let (limiter, quota) = (&limiter, &quota);
                scope.spawn(move || {
                    for n in 0..2_000 {
                        limiter.check(&key(thread * 10_000 + n % 300), quota, 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(limiter.len(), limiter.store.len());
        assert!(limiter.len() <= 50);
    }

    #[test]
    fn a_full_map_of_active_keys_frees_one_percent_at_once() {
        let limiter = limiter(200);
        let quota = one_per_second();
        for n in 0..200 {
            limiter.check(&key(n), &quota, 1).unwrap();
        }
        limiter.check(&key(1_000), &quota, 1).unwrap();
        assert_eq!(limiter.stats().evicted_active, 2);
        assert_eq!((limiter.len(), limiter.store.len()), (199, 199));
        limiter.check(&key(1_001), &quota, 1).unwrap();
        assert_eq!(limiter.stats().evicted_active, 2, "the freed slot is used without another sweep");
    }

    #[test]
    fn a_new_key_with_no_room_to_make_is_decided_without_being_stored() {
        let limiter = limiter(2);
        // Both slots reserved by inserts still in flight: nothing can be evicted to make room.
        limiter.n_keys.store(2, Ordering::Release);
        let decision = limiter.check(&key(1), &one_per_second(), 1).unwrap();
        assert_eq!(decision, Decision::Allowed { remaining: 0, limit: 1, reset_after: Duration::from_secs(1) });
        assert_eq!(limiter.stats().untracked, 1);
        assert!(limiter.store.is_empty());
    }

    #[test]
    fn debug_shows_counts_not_keys() {
        let limiter = limiter(10);
        limiter.check(&key(7), &one_per_second(), 1).unwrap();
        let debug = format!("{limiter:?}");
        assert!(
            debug.starts_with("LocalLimiter { len: 1, max_keys: 10, stats: RateLimitStats { allowed: 1"),
            "{debug}"
        );
        assert!(!debug.contains("RateKey"));
    }
}

//! Request quotas admitted from leased blocks: the store hands this process blocks of a quota with a
//! conditional update that never passes the maximum, and admissions take units from the block in
//! memory with a compare-and-swap — so the hot path never waits for the database, several processes
//! share one quota exactly, and a crash loses at most the unused rest of the blocks it held
//! (under-admission, reported), never admits a request twice.
//!
//! Blocks adapt: a block that lasted less than a second doubles the next one (up to 4,096); a block
//! never exceeds a quarter of what is left, so near the cap blocks shrink to single units. When a
//! block runs half empty, the next one is leased in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tollgate_store::{LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, Store};
use tollgate_types::{Clock, CounterKey, HolderId, Timestamp};

use crate::Result;

const FIRST_BLOCK: u64 = 8;
const MAX_BLOCK: u64 = 4_096;
/// A holder silent this long has stopped (crashed): what it held is stranded. Holders report at
/// least every 10 s while they run.
pub(crate) const QUIET_HOLDER: std::time::Duration = std::time::Duration::from_secs(60);
/// A block used up faster than this doubles the next one.
const FAST_BLOCK_MICROS: i64 = 1_000_000;

/// One request limit's current window, as this process holds it.
#[derive(Debug)]
pub(crate) struct LeaseCounter {
    key: CounterKey,
    /// Units leased and not yet admitted.
    available: AtomicI64,
    /// Units admitted from this process's blocks in this window.
    consumed: AtomicU64,
    /// `consumed` as last reported to the store.
    reported: AtomicU64,
    /// The next block's size.
    block: AtomicU64,
    /// The counter's total in the store at the last lease (every holder's blocks).
    store_used: AtomicI64,
    /// When the last block was leased (micros), to adapt the next one.
    leased_at: AtomicI64,
    /// Whether the store had nothing left at the last lease (no background refill is tried then).
    spent: AtomicBool,
    /// One lease in flight at a time.
    refill: tokio::sync::Mutex<()>,
    refilling: AtomicBool,
}

impl LeaseCounter {
    fn new(key: CounterKey) -> Self {
        Self {
            key,
            available: AtomicI64::new(0),
            consumed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            block: AtomicU64::new(FIRST_BLOCK),
            store_used: AtomicI64::new(0),
            leased_at: AtomicI64::new(0),
            spent: AtomicBool::new(false),
            refill: tokio::sync::Mutex::new(()),
            refilling: AtomicBool::new(false),
        }
    }

    /// Takes one unit from the block, if any is left.
    fn try_take(&self) -> bool {
        let mut current = self.available.load(Ordering::Acquire);
        while current > 0 {
            match self.available.compare_exchange_weak(current, current - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.consumed.fetch_add(1, Ordering::AcqRel);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
        false
    }

    /// Puts back a unit taken for a request that another limit then refused.
    pub(crate) fn give_back(&self) {
        self.consumed.fetch_sub(1, Ordering::AcqRel);
        self.available.fetch_add(1, Ordering::AcqRel);
    }

    fn running_low(&self) -> bool {
        let left = self.available.load(Ordering::Acquire);
        u64::try_from(left).unwrap_or(0) * 2 <= self.block.load(Ordering::Acquire)
    }

    /// Units admitted from this process's blocks in this window.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Acquire)
    }

    /// Units leased and not admitted.
    pub(crate) fn available(&self) -> u64 {
        u64::try_from(self.available.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// The counter's total in the store at the last lease.
    pub(crate) fn store_used(&self) -> i64 {
        self.store_used.load(Ordering::Acquire)
    }
}

/// Every request limit window this process holds blocks of.
#[derive(Debug)]
pub(crate) struct LeaseBook {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: HolderId,
    /// Set once the holder is registered (at the first lease: a process that never leases, such as
    /// a CLI command, leaves no holder behind).
    registered: tokio::sync::OnceCell<()>,
    /// Set by `stop`: no block is leased afterwards (it could never be returned).
    stopped: AtomicBool,
    /// Where background refills run: the runtime metering started on (verify may be polled from
    /// anywhere, even outside a runtime; without one, the next block is leased when needed).
    runtime: Option<tokio::runtime::Handle>,
    counters: RwLock<HashMap<CounterKey, Arc<LeaseCounter>>>,
}

impl LeaseBook {
    /// A book for a new holder.
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            holder: HolderId::generate(),
            registered: tokio::sync::OnceCell::new(),
            stopped: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
            counters: RwLock::new(HashMap::new()),
        }
    }

    async fn register(&self) -> Result<()> {
        self.registered
            .get_or_try_init(|| async { self.store.register_holder(&self.holder, self.clock.now()).await })
            .await?;
        Ok(())
    }

    /// Whether some admission has not been reported yet.
    pub(crate) fn has_unreported(&self) -> bool {
        self.counters
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .any(|counter| counter.consumed() != counter.reported.load(Ordering::Acquire))
    }

    fn counter(&self, key: &CounterKey) -> Arc<LeaseCounter> {
        if let Some(counter) = self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key) {
            return Arc::clone(counter);
        }
        let mut counters = self.counters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(counters.entry(key.clone()).or_insert_with(|| Arc::new(LeaseCounter::new(key.clone()))))
    }

    /// The counter of `key` if this process holds one.
    pub(crate) fn existing(&self, key: &CounterKey) -> Option<Arc<LeaseCounter>> {
        self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key).cloned()
    }

    /// Admits one request against the limit `key` with maximum `max`: `Some(counter)` when a unit was
    /// taken (give it back if the request is refused elsewhere), `None` when the quota is spent.
    pub(crate) async fn take(self: &Arc<Self>, key: &CounterKey, max: u64) -> Result<Option<Arc<LeaseCounter>>> {
        let counter = self.counter(key);
        if counter.try_take() {
            if counter.running_low() && !counter.spent.load(Ordering::Acquire) {
                self.refill_in_background(&counter, max);
            }
            return Ok(Some(counter));
        }
        let taken = {
            let _one_at_a_time = counter.refill.lock().await;
            if counter.try_take() {
                true
            } else {
                self.lease(&counter, max).await?;
                counter.try_take()
            }
        };
        Ok(taken.then_some(counter))
    }

    fn refill_in_background(self: &Arc<Self>, counter: &Arc<LeaseCounter>, max: u64) {
        let Some(runtime) = &self.runtime else { return };
        if counter.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (book, counter) = (Arc::clone(self), Arc::clone(counter));
        runtime.spawn(async move {
            {
                let _one_at_a_time = counter.refill.lock().await;
                if counter.running_low()
                    && let Err(error) = book.lease(&counter, max).await
                {
                    tracing::warn!(error = %error, "leasing the next block of a request quota failed");
                }
            }
            counter.refilling.store(false, Ordering::Release);
        });
    }

    /// Leases the next block for `counter` (the caller holds its refill lock).
    async fn lease(&self, counter: &LeaseCounter, max: u64) -> Result<u64> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(crate::Error::Unavailable("metering is shut down".to_owned()));
        }
        self.register().await?;
        let now = self.clock.now();
        let block = counter.block.load(Ordering::Acquire);
        let left =
            u64::try_from(i64::try_from(max).unwrap_or(i64::MAX).saturating_sub(counter.store_used())).unwrap_or(0);
        let want = block.min((left / 4).max(1));
        let request = LeaseRequest { key: counter.key.clone(), want, max };
        let grant = self.store.lease(&self.holder, &request, now).await?;
        counter.store_used.store(grant.used, Ordering::Release);
        counter.spent.store(grant.granted == 0, Ordering::Release);
        if grant.granted > 0 {
            counter.available.fetch_add(i64::try_from(grant.granted).unwrap_or(i64::MAX), Ordering::AcqRel);
            let previous = counter.leased_at.swap(now.unix_micros(), Ordering::AcqRel);
            if previous != 0 && now.unix_micros().saturating_sub(previous) < FAST_BLOCK_MICROS {
                counter.block.store((block * 2).min(MAX_BLOCK), Ordering::Release);
            }
        }
        Ok(grant.granted)
    }

    /// Reports what was admitted since the last report (and that this holder is alive); forgets
    /// counters whose window has ended.
    pub(crate) async fn report(&self) -> Result<()> {
        if self.registered.get().is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let counters: Vec<Arc<LeaseCounter>> =
            self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect();
        let uses: Vec<LeaseUse> = counters
            .iter()
            .filter(|counter| counter.consumed() != counter.reported.load(Ordering::Acquire))
            .map(|counter| LeaseUse { key: counter.key.clone(), consumed: counter.consumed() })
            .collect();
        self.store.report_leases(&self.holder, &uses, now).await?;
        for counter in &counters {
            counter.reported.fetch_max(counter.consumed(), Ordering::AcqRel);
        }
        self.counters
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|key, counter| key.window_end() > now || Arc::strong_count(counter) > 1);
        Ok(())
    }

    /// A clean stop: reports what was admitted and gives the unused rest back.
    pub(crate) async fn stop(&self) -> Result<()> {
        self.stopped.store(true, Ordering::Release);
        if self.registered.get().is_none() {
            return Ok(());
        }
        self.report().await?;
        let now = self.clock.now();
        let returns: Vec<LeaseReturn> = self
            .counters
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter(|counter| counter.key.window_end() > now && counter.available() > 0)
            .map(|counter| LeaseReturn { key: counter.key.clone(), unused: counter.available() })
            .collect();
        self.store.return_leases(&self.holder, &returns, now).await?;
        for counter in self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values() {
            counter.available.store(0, Ordering::Release);
        }
        Ok(())
    }

    /// How many request-limit windows are held.
    pub(crate) fn live(&self) -> usize {
        self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Other holders' leased and stranded units of `key` (a holder silent for `quiet` is stranded).
    pub(crate) async fn others(&self, key: &CounterKey, live_since: Timestamp) -> Result<LeaseSummary> {
        let summaries = self.store.lease_summaries(std::slice::from_ref(key), &self.holder, live_since).await?;
        Ok(summaries.into_iter().next().unwrap_or_default())
    }
}

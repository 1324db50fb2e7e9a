//! Test support: a store that wraps a real one and injects faults into usage writes, so callers'
//! tests can prove what happens when a batch is refused, the store is down, or a commit's answer is
//! lost. Every other call is passed through unchanged.
//!
//! ```ignore
//! let faulty = Arc::new(FaultyStore::new(sqlite_store));
//! faulty.refuse_event(EventId::parse("poison")?); // any batch holding it is refused (`Backend`)
//! faulty.fail_next(2); // the next two usage writes answer `Unavailable`
//! let store: Arc<dyn Store> = faulty.clone();
//! ```
//!
//! Not for production: it exists for tests, behind the `conformance` feature. Every capability but
//! usage writing is passed through in `pass_through.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tollgate_types::{EventId, Timestamp, TokenId};

use crate::{
    BatchWritten, DeadLetter, DeadLetterRecord, Page, PageRequest, Result, Store, StoreError, UsageBatch, UsageFilter,
    UsageGroup, UsageGroupBy, UsageStore,
};

mod pass_through;

/// The error behind every injected failure (its message says which fault it was).
#[derive(Debug, thiserror::Error)]
#[error("injected fault: {0}")]
struct InjectedFault(&'static str);

/// How long usage writes fail with [`StoreError::Unavailable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Outage {
    #[default]
    None,
    /// For this many more calls.
    Calls(u32),
    /// Until [`FaultyStore::set_unavailable`] switches it off.
    UntilRestored,
}

impl Outage {
    /// Whether this call fails, counting it.
    fn take(&mut self) -> bool {
        match *self {
            Self::None => false,
            Self::Calls(left) => {
                *self = if left > 1 { Self::Calls(left - 1) } else { Self::None };
                true
            }
            Self::UntilRestored => true,
        }
    }
}

#[derive(Debug, Default)]
struct Faults {
    refused_tokens: HashSet<TokenId>,
    refused_events: HashSet<EventId>,
    outage: Outage,
    lost_acknowledgements: u32,
    dead_letters_unavailable: bool,
}

/// What `record_usage` does with a call, decided before the inner store is asked.
enum Verdict {
    Pass,
    Unavailable,
    Refuse,
    LoseAcknowledgement,
}

/// Counts of the calls the faults apply to.
#[derive(Debug, Default)]
struct Calls {
    record_usage: AtomicU64,
    refused: AtomicU64,
    unavailable: AtomicU64,
    add_dead_letters: AtomicU64,
}

/// A store that passes every call to `inner`, except the usage writes it was told to break.
///
/// Faults, checked in this order on each `record_usage` call:
/// - an outage ([`fail_next`](Self::fail_next), [`set_unavailable`](Self::set_unavailable)):
///   [`StoreError::Unavailable`], nothing written;
/// - a refused token or event id ([`refuse_token`](Self::refuse_token),
///   [`refuse_event`](Self::refuse_event)): any batch holding one is refused with
///   [`StoreError::Backend`] (as a store refuses a row it cannot take), nothing written;
/// - a lost acknowledgement ([`lose_next_acknowledgements`](Self::lose_next_acknowledgements)):
///   the batch **is committed**, then the call answers `Unavailable`, as when a connection drops
///   between the commit and its answer. This is the fault idempotency keys exist for: a writer
///   that retries must not count the batch twice.
///
/// [`set_dead_letters_unavailable`](Self::set_dead_letters_unavailable) makes `add_dead_letters`
/// fail too.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<Faults>,
    calls: Calls,
}

impl FaultyStore {
    /// A wrapper around `inner` with no fault set.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, faults: Mutex::default(), calls: Calls::default() }
    }

    /// The wrapped store (to read what was really written).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses every batch holding an event of `token_id`.
    pub fn refuse_token(&self, token_id: TokenId) {
        self.faults().refused_tokens.insert(token_id);
    }

    /// Refuses every batch holding an event with `event_id`.
    pub fn refuse_event(&self, event_id: EventId) {
        self.faults().refused_events.insert(event_id);
    }

    /// Stops refusing any token or event.
    pub fn stop_refusing(&self) {
        let mut faults = self.faults();
        faults.refused_tokens.clear();
        faults.refused_events.clear();
    }

    /// The next `calls` usage writes fail with `Unavailable` (0: none).
    pub fn fail_next(&self, calls: u32) {
        self.faults().outage = if calls == 0 { Outage::None } else { Outage::Calls(calls) };
    }

    /// Usage writes fail with `Unavailable` from now until this is called with `false`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.faults().outage = if unavailable { Outage::UntilRestored } else { Outage::None };
    }

    /// The next `calls` usage writes commit, then answer `Unavailable`.
    pub fn lose_next_acknowledgements(&self, calls: u32) {
        self.faults().lost_acknowledgements = calls;
    }

    /// `add_dead_letters` fails with `Unavailable` while this is `true`.
    pub fn set_dead_letters_unavailable(&self, unavailable: bool) {
        self.faults().dead_letters_unavailable = unavailable;
    }

    /// `record_usage` calls so far, whatever they answered.
    pub fn record_usage_calls(&self) -> u64 {
        self.calls.record_usage.load(Ordering::Relaxed)
    }

    /// `record_usage` calls refused for a refused token or event id.
    pub fn refused_calls(&self) -> u64 {
        self.calls.refused.load(Ordering::Relaxed)
    }

    /// `record_usage` and `add_dead_letters` calls answered `Unavailable` (lost acknowledgements included).
    pub fn unavailable_calls(&self) -> u64 {
        self.calls.unavailable.load(Ordering::Relaxed)
    }

    /// `add_dead_letters` calls so far, whatever they answered.
    pub fn add_dead_letters_calls(&self) -> u64 {
        self.calls.add_dead_letters.load(Ordering::Relaxed)
    }

    fn verdict(&self, batch: &UsageBatch<'_>) -> Verdict {
        let mut faults = self.faults();
        if faults.outage.take() {
            return Verdict::Unavailable;
        }
        let refused = batch.events.iter().map(|item| &item.event).any(|event| {
            faults.refused_tokens.contains(&event.token_id)
                || event.event_id.as_ref().is_some_and(|id| faults.refused_events.contains(id))
        });
        if refused {
            return Verdict::Refuse;
        }
        if faults.lost_acknowledgements > 0 {
            faults.lost_acknowledgements -= 1;
            return Verdict::LoseAcknowledgement;
        }
        Verdict::Pass
    }

    fn unavailable(&self, what: &'static str) -> StoreError {
        self.calls.unavailable.fetch_add(1, Ordering::Relaxed);
        StoreError::unavailable(InjectedFault(what))
    }
}

#[async_trait]
impl UsageStore for FaultyStore {
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<BatchWritten> {
        self.calls.record_usage.fetch_add(1, Ordering::Relaxed);
        match self.verdict(&batch) {
            Verdict::Pass => self.inner.record_usage(batch).await,
            Verdict::Unavailable => Err(self.unavailable("storage is down")),
            Verdict::Refuse => {
                self.calls.refused.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::backend(InjectedFault("the batch holds a refused event")))
            }
            Verdict::LoseAcknowledgement => {
                self.inner.record_usage(batch).await?;
                Err(self.unavailable("the connection dropped after the commit"))
            }
        }
    }

    async fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        self.calls.add_dead_letters.fetch_add(1, Ordering::Relaxed);
        if self.faults().dead_letters_unavailable {
            return Err(self.unavailable("the dead-letter table is down"));
        }
        self.inner.add_dead_letters(letters).await
    }

    async fn dead_letters(&self, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
        self.inner.dead_letters(page).await
    }

    async fn count_dead_letters(&self) -> Result<u64> {
        self.inner.count_dead_letters().await
    }

    async fn usage_groups(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &crate::PageRequest,
    ) -> Result<crate::Page<UsageGroup>> {
        self.inner.usage_groups(filter, group_by, page).await
    }

    async fn count_usage_events(&self) -> Result<u64> {
        self.inner.count_usage_events().await
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        self.inner.purge_usage_events(before).await
    }
}

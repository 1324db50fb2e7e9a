//! Metering: durable usage recording in group commits, prices, quotas enforced exactly in the
//! verify path (leased request blocks, reservations held in the store), and analytics read from
//! hourly rollups.
//!
//! ```no_run
//! # async fn example() -> Result<(), tollgate::Error> {
//! use tollgate::{Metering, ModelName, ProviderName, TokenId, UsageEvent};
//!
//! let store = tollgate::open("sqlite://tollgate.db").await?;
//! let metering = Metering::builder(store).start().await?;
//! let mut event = UsageEvent::new(
//!     TokenId::generate(),
//!     tollgate::Timestamp::from_unix_micros(0),
//!     ProviderName::parse("openai")?,
//!     ModelName::parse("gpt-4o-mini")?,
//! );
//! event.input_tokens = 1_200;
//! event.output_tokens = 300;
//! event.event_id = Some(tollgate::EventId::parse("req-8f14e45f")?); // a retry is counted once
//! metering.record(event).await?; // priced from the table; returns once the event is on disk
//! metering.shutdown().await?; // writes what was queued in the background, returns unused quota
//! # Ok(()) }
//! ```

mod admin;
mod admission;
mod analytics;
mod counters;
mod index;
mod leases;
mod pending;
mod prices;
mod quotas;
mod rates;
mod record;
mod recorder;
mod refusals;
mod writer;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tollgate_ratelimit::{LocalLimiter, RateLimiter};

use tollgate_store::Store;
use tollgate_types::{Clock, ModelPrice, RefusalCode, SystemClock, Timestamp, TokenRecord};

pub use admin::LimitStatus;
pub use admission::{Admission, QuotaReservation, RateLimitStatus, Reservation, UnpricedModels};
pub(crate) use analytics::error_rate;
pub use analytics::{AnalyticsReport, UsageReport};
pub use prices::{PriceEntry, PriceSource, parse_price_toml};
pub use record::{RecordedUsage, Settlement};
pub use recorder::{MeteringStats, UsageOutcome};
pub use refusals::QuotaRefusals;
use refusals::RefusalTally;

use self::index::{SubjectCache, Subjects};
use self::leases::LeaseBook;
use self::prices::PriceBook;
use self::quotas::QuotaEngine;
use self::rates::RateLimits;
use self::recorder::{Recorder, RecorderSettings};
use self::writer::WorkerParts;
use crate::{Error, Result};

/// Builds [`Metering`]; every setting has a production default.
#[derive(Debug)]
pub struct MeteringBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: RecorderSettings,
    reservation_ttl: Duration,
    unpriced: UnpricedModels,
    file_prices: Vec<ModelPrice>,
    subject_cache: usize,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl MeteringBuilder {
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many events the writer holds (queued, or waiting for a failing store) before `record`
    /// waits (default 65,536).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.settings.queue_capacity = capacity.max(1);
        self
    }

    /// How many events are written per transaction at most (default 32,768).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.settings.batch_size = size.max(1);
        self
    }

    /// How long events recorded in the background wait to share a transaction, and how often
    /// shadow-limit counts and lease reports are written (default 1 s). Durable recording never
    /// waits for it.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.settings.flush_interval = interval;
        self
    }

    /// How long a reservation holds its amounts when it is neither settled nor released (default
    /// 10 minutes; at least one second).
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How often limits and prices changed by other processes are picked up (default 5 s).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.refresh_interval = interval;
        self
    }

    /// Delete raw usage events older than this, hourly (default: keep them; rollups are kept regardless).
    pub fn event_retention(mut self, retention: Option<Duration>) -> Self {
        self.settings.event_retention = retention;
        self
    }

    /// What to do with models that have no price (default [`UnpricedModels::Refuse`]).
    pub fn unpriced_models(mut self, policy: UnpricedModels) -> Self {
        self.unpriced = policy;
        self
    }

    /// Prices from an operator's TOML file (same shape as the shipped `prices.toml`); they replace
    /// shipped prices of the same models, and prices stored in the database replace both.
    pub fn price_file_toml(mut self, text: &str) -> Result<Self> {
        self.file_prices = parse_price_toml(text)?;
        Ok(self)
    }

    /// The limiter that enforces per-token rate limits (default: an in-process GCRA limiter holding
    /// at most 100,000 keys). A shared (Redis) limiter makes rates cluster-wide.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Loads limits, rates and prices and starts the writer task (needs a Tokio runtime).
    pub async fn start(self) -> Result<Metering> {
        let prices = Arc::new(PriceBook::new(&self.file_prices));
        prices.apply_stored(&self.store.prices().await?);
        let leases = LeaseBook::new(Arc::clone(&self.store), Arc::clone(&self.clock));
        let quotas = Arc::new(QuotaEngine::new(Arc::clone(&self.store), leases, self.unpriced, self.reservation_ttl));
        quotas.reload(self.clock.now()).await?;
        let limiter = self
            .rate_limiter
            .unwrap_or_else(|| Arc::new(LocalLimiter::new(NonZeroUsize::new(100_000).expect("100,000 is not zero"))));
        let rates = Arc::new(RateLimits::new(limiter));
        rates.reload(self.store.as_ref()).await?;
        let recorder = Recorder::start(WorkerParts {
            store: Arc::clone(&self.store),
            quotas: Arc::clone(&quotas),
            prices: Arc::clone(&prices),
            rates: Arc::clone(&rates),
            clock: Arc::clone(&self.clock),
            settings: self.settings,
        });
        Ok(Metering {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                prices,
                quotas,
                rates,
                recorder,
                subjects: SubjectCache::new(self.subject_cache),
                refusals: RefusalTally::default(),
            }),
        })
    }
}

/// Reads every limit, rate limit and stored price again; the first failure is the error, after
/// every part was tried.
pub(crate) async fn reload_settings(
    store: &dyn Store,
    quotas: &QuotaEngine,
    rates: &RateLimits,
    prices: &PriceBook,
    now: Timestamp,
) -> Result<()> {
    let limits = quotas.reload(now).await;
    let rate_limits = rates.reload(store).await;
    let stored = store.prices().await.map(|stored| prices.apply_stored(&stored)).map_err(Error::from);
    limits.and(rate_limits).and(stored)
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    prices: Arc<PriceBook>,
    quotas: Arc<QuotaEngine>,
    rates: Arc<RateLimits>,
    recorder: Recorder,
    subjects: SubjectCache,
    refusals: RefusalTally,
}

/// Usage recording, prices, quotas and analytics over one store. Cheap to clone.
///
/// Attach it to a [`TokenManager`](crate::TokenManager) with
/// [`TokenManagerBuilder::metering`](crate::TokenManagerBuilder::metering) so `verify` enforces quotas.
/// `record` returns once its events are on disk. Call [`Metering::shutdown`] before the process
/// exits: events recorded in the background are written and unused leased quota is given back.
#[derive(Debug, Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

impl Metering {
    /// Starts building metering over `store`.
    pub fn builder(store: Arc<dyn Store>) -> MeteringBuilder {
        MeteringBuilder {
            store,
            clock: Arc::new(SystemClock),
            settings: RecorderSettings {
                queue_capacity: 65_536,
                batch_size: 32_768,
                flush_interval: Duration::from_secs(1),
                refresh_interval: Duration::from_secs(5),
                event_retention: None,
            },
            reservation_ttl: Duration::from_secs(600),
            unpriced: UnpricedModels::Refuse,
            file_prices: Vec::new(),
            subject_cache: 100_000,
            rate_limiter: None,
        }
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Reads limits, rate limits and prices from the store again, for changes another process
    /// made (the change follower calls it when the audit log shows one).
    pub(crate) async fn reload_settings(&self) -> Result<()> {
        let Inner { store, quotas, rates, prices, .. } = &*self.inner;
        reload_settings(store.as_ref(), quotas, rates, prices, self.inner.clock.now()).await
    }

    /// Waits until every event recorded before this call (in the background too), every shadow
    /// count and every lease report is written.
    pub async fn flush(&self) -> Result<()> {
        self.inner.recorder.flush().await
    }

    /// Stops accepting events, writes everything queued, gives unused leased request quota back,
    /// and stops the writer task. Later `record` calls fail with `Error::Unavailable`. Every step is
    /// tried even when another fails; the error says what could not be written.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.recorder.shutdown().await
    }

    /// Counts of what the recorder has done, for metrics.
    pub fn stats(&self) -> MeteringStats {
        self.inner.recorder.stats(self.inner.quotas.live_counters(), self.inner.rates.tracked_keys())
    }

    /// Request-quota units lost with processes that crashed holding them (never admitted, not
    /// available again before their windows end): the under-admission a crash costs, for metrics.
    pub async fn stranded_units(&self) -> Result<u64> {
        self.inner.quotas.stranded_units(self.inner.clock.now()).await
    }

    /// Why usage writes are failing, while they are (for `/health`).
    pub fn degraded(&self) -> Option<String> {
        self.inner.recorder.degraded()
    }

    /// The rate limiter's counters (decisions, fallback decisions, backend errors), and whether it
    /// decides locally because its shared backend (Redis) is away, for `/health` and `/metrics`.
    pub fn rate_limiter_state(&self) -> (tollgate_ratelimit::RateLimitStats, bool) {
        self.inner.rates.limiter_state()
    }

    /// The quota refusals per token since the last call (and those past the tally's cap), for the
    /// live `quota.exceeded` events.
    pub fn take_quota_refusals(&self) -> (Vec<QuotaRefusals>, u64) {
        self.inner.refusals.take()
    }

    /// Admits one request of `record` outside verify — for a caller that authenticated the request
    /// some other way (a JWT, a session) and charges it to a token: exactly what
    /// [`TokenManager::verify`](crate::TokenManager::verify) does after its checks. The token's rate
    /// limit first (`rate_limited` spends no quota), then every quota that governs it (its own, its
    /// owner's, its project's), holding `reservation` (`Reservation::default()` holds nothing).
    /// A refusal is [`Error::Refused`] with `rate_limited` or `quota_exceeded`; nothing is spent.
    /// The token's status is the caller's business: pass a record you just read.
    pub async fn admit_request(&self, record: &TokenRecord, reservation: &Reservation) -> Result<Admission> {
        self.admit(record, reservation, self.inner.clock.now()).await
    }

    /// [`admit_request`](Self::admit_request) at `now` (the verify path passes its own clock reading).
    pub(crate) async fn admit(
        &self,
        record: &TokenRecord,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Admission> {
        let rate = self.inner.rates.check(record.id).await?;
        let quotas = &self.inner.quotas;
        let mut admission = if quotas.index().is_empty() && !reservation.holds_anything() {
            Admission { reservation: QuotaReservation::empty(record.id), rate_limit: None }
        } else {
            let subjects = match self.inner.subjects.get(&record.id) {
                Some(subjects) => subjects,
                None => self.inner.subjects.insert(Subjects::of(record)),
            };
            let admitted = quotas.admit(&subjects, reservation, now).await;
            if let Err(Error::Refused(refusal)) = &admitted
                && refusal.code == RefusalCode::QuotaExceeded
            {
                self.inner.refusals.note(record.id, record.owner, refusal.limit.as_deref());
            }
            admitted?
        };
        if let Some(rate) = rate {
            admission.rate_limit = Some(rate.tighter(admission.rate_limit));
        }
        Ok(admission)
    }
}

//! Metering: usage recording through a bounded write-behind queue, prices, quotas enforced
//! atomically in the verify path, and analytics read from hourly rollups.
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
//! metering.record(event).await?; // priced from the table, queued, written in a batch
//! metering.shutdown().await?; // writes everything acknowledged
//! # Ok(()) }
//! ```

mod admin;
mod analytics;
mod counters;
mod index;
mod prices;
mod quotas;
mod rates;
mod recorder;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tollgate_ratelimit::{LocalLimiter, RateLimiter};

use tollgate_store::{Store, StoreError};
use tollgate_types::{
    Clock, Metric, Microdollars, ModelName, ModelPrice, Principal, ProviderName, SystemClock, Timestamp, TokenId,
    TokenRecord, UsageEvent, UsageInput, ValidationError,
};

pub use admin::LimitStatus;
pub use analytics::{AnalyticsReport, UsageReport};
pub use prices::{PriceEntry, PriceSource, parse_price_toml};
pub use quotas::{QuotaMode, QuotaReservation, RateLimitStatus, Reservation, UnpricedModels};
pub use recorder::MeteringStats;

use self::index::{SubjectCache, Subjects};
use self::prices::PriceBook;
use self::quotas::{Admission, QuotaEngine};
use self::rates::RateLimits;
use self::recorder::{Recorder, RecorderSettings};
use crate::Result;
use crate::authz::{Operation, authorize};

/// Builds [`Metering`]; every setting has a production default.
#[derive(Debug)]
pub struct MeteringBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: RecorderSettings,
    quota_mode: QuotaMode,
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

    /// How many events the queue holds before `record` waits (default 65,536).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.settings.queue_capacity = capacity.max(1);
        self
    }

    /// How many events are written per transaction at most (default 32,768).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.settings.batch_size = size.max(1);
        self
    }

    /// How often queued events and counter changes are written when the batch is not full (default 1 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.settings.flush_interval = interval;
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

    /// Where quota counters live (default [`QuotaMode::Local`]).
    pub fn quota_mode(mut self, mode: QuotaMode) -> Self {
        self.quota_mode = mode;
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
        let quotas = Arc::new(QuotaEngine::new(Arc::clone(&self.store), self.quota_mode, self.unpriced));
        quotas.reload().await?;
        let limiter = self
            .rate_limiter
            .unwrap_or_else(|| Arc::new(LocalLimiter::new(NonZeroUsize::new(100_000).expect("100,000 is not zero"))));
        let rates = Arc::new(RateLimits::new(limiter));
        rates.reload(self.store.as_ref()).await?;
        let recorder = Recorder::start(
            Arc::clone(&self.store),
            Arc::clone(&quotas),
            Arc::clone(&prices),
            Arc::clone(&rates),
            Arc::clone(&self.clock),
            self.settings,
        );
        Ok(Metering {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                prices,
                quotas,
                rates,
                recorder,
                subjects: SubjectCache::new(self.subject_cache),
            }),
        })
    }
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
}

/// Usage recording, prices, quotas and analytics over one store. Cheap to clone.
///
/// Attach it to a [`TokenManager`](crate::TokenManager) with
/// [`TokenManagerBuilder::metering`](crate::TokenManagerBuilder::metering) so `verify` enforces quotas.
/// Call [`Metering::shutdown`] before the process exits: everything `record` acknowledged is written.
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
            quota_mode: QuotaMode::Local,
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

    /// Records one event for a caller the gateway already trusts (it verified the token). The cost,
    /// when absent, comes from the price table; tokens and cost count against quotas at once.
    /// Returns when the event is queued; it is written within the flush interval.
    pub async fn record(&self, event: UsageEvent) -> Result<()> {
        let (event, subjects) = self.priced(event).await?;
        self.count(&event, subjects.as_deref()).await?;
        self.inner.recorder.send(event).await
    }

    /// Like [`Metering::record`], but refuses with `Error::Unavailable` instead of waiting when the queue is full.
    pub async fn try_record(&self, event: UsageEvent) -> Result<()> {
        let (event, subjects) = self.priced(event).await?;
        self.count(&event, subjects.as_deref()).await?;
        self.inner.recorder.try_send(event)
    }

    /// Records events in order. Every event is checked and priced before any is counted or queued,
    /// so one bad event refuses the whole batch.
    pub async fn record_many(&self, events: Vec<UsageEvent>) -> Result<()> {
        let mut priced = Vec::with_capacity(events.len());
        for event in events {
            priced.push(self.priced(event).await?);
        }
        self.count_and_send(priced).await
    }

    /// Records usage reported by `principal` (HTTP API, CLI): validates every input and checks the
    /// principal may record for each token before anything is counted or queued; returns the
    /// events as priced and queued.
    pub async fn record_inputs(&self, principal: &Principal, inputs: &[UsageInput]) -> Result<Vec<UsageEvent>> {
        let now = self.inner.clock.now();
        let mut events = Vec::with_capacity(inputs.len());
        for input in inputs {
            events.push(input.parse(now)?);
        }
        let mut priced = Vec::with_capacity(events.len());
        // A batch usually names one token or a few: read and authorize each once, not once per event.
        let mut authorized: Vec<TokenId> = Vec::new();
        for event in events {
            if !authorized.contains(&event.token_id) {
                // A token the principal may not see is not found, like one that does not exist.
                let token = self.inner.store.token(&event.token_id).await?;
                authorize(principal, Operation::ReadTokens { owner: Some(token.owner) })
                    .map_err(|_| crate::Error::NotFound { entity: "token" })?;
                authorize(principal, Operation::RecordUsage { owner: token.owner })?;
                self.inner.subjects.insert(Subjects::of(&token));
                authorized.push(event.token_id);
            }
            priced.push(self.priced(event).await?);
        }
        let recorded = priced.iter().map(|(event, _)| event.clone()).collect();
        self.count_and_send(priced).await?;
        Ok(recorded)
    }

    async fn count_and_send(&self, priced: Vec<(UsageEvent, Option<Arc<Subjects>>)>) -> Result<()> {
        let mut events = Vec::with_capacity(priced.len());
        for (event, subjects) in priced {
            self.count(&event, subjects.as_deref()).await?;
            events.push(event);
        }
        self.inner.recorder.send_many(events).await
    }

    /// Replaces a reservation made by [`TokenManager::verify_and_reserve`](crate::TokenManager::verify_and_reserve)
    /// with the call's actual usage, and records the event.
    pub async fn settle(&self, reservation: QuotaReservation, event: UsageEvent) -> Result<()> {
        if event.token_id != reservation.token_id() {
            return Err(ValidationError::new("token_id", "does not match the reservation").into());
        }
        let (event, _) = self.priced(event).await?;
        let cost = event.cost.unwrap_or(Microdollars::ZERO);
        self.inner.quotas.settle(reservation, event.total_tokens(), cost).await?;
        self.inner.recorder.send(event).await
    }

    /// Returns a reservation's held tokens and cost unused (the call did not happen).
    pub async fn release(&self, reservation: QuotaReservation) -> Result<()> {
        self.inner.quotas.settle(reservation, 0, Microdollars::ZERO).await
    }

    /// The reservation for a call of `model` with `input_tokens` and at most `max_output_tokens`.
    pub fn estimate(
        &self,
        provider: &ProviderName,
        model: &ModelName,
        input_tokens: u64,
        max_output_tokens: u64,
    ) -> Reservation {
        Reservation {
            tokens: input_tokens.saturating_add(max_output_tokens),
            cost: self.inner.prices.cost(provider.as_str(), model.as_str(), input_tokens, max_output_tokens),
        }
    }

    /// The cost of a call at current prices, or `None` when the model has no price.
    pub fn cost_of(
        &self,
        provider: &ProviderName,
        model: &ModelName,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Option<Microdollars> {
        self.inner.prices.cost(provider.as_str(), model.as_str(), input_tokens, output_tokens)
    }

    /// Waits until every event recorded before this call, and every counter change, is written.
    pub async fn flush(&self) -> Result<()> {
        self.inner.recorder.flush().await
    }

    /// Stops accepting events, writes everything queued and every counter change, and stops the
    /// writer task. Later `record` calls fail with `Error::Unavailable`.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.recorder.shutdown().await
    }

    /// Counts of what the recorder has done, for metrics.
    pub fn stats(&self) -> MeteringStats {
        self.inner.recorder.stats(self.inner.quotas.live_counters(), self.inner.rates.tracked_keys())
    }

    /// Admits one request of a verified token (the verify path): its rate limit first
    /// (`rate_limited` spends no quota), then every quota that governs it, holding `reservation`.
    pub(crate) async fn admit(
        &self,
        record: &TokenRecord,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Admission> {
        let rate = self.inner.rates.check(record.id).await?;
        let quotas = &self.inner.quotas;
        let mut admission = if quotas.index().is_empty() {
            Admission { reservation: QuotaReservation::empty(record.id), rate_limit: None }
        } else {
            let subjects = match self.inner.subjects.get(&record.id) {
                Some(subjects) => subjects,
                None => self.inner.subjects.insert(Subjects::of(record)),
            };
            quotas.admit(&subjects, reservation, now).await?
        };
        if let Some(rate) = rate {
            admission.rate_limit = Some(rate.tighter(admission.rate_limit));
        }
        Ok(admission)
    }

    /// The subjects of a token, from the cache or the store.
    async fn subjects(&self, token_id: TokenId) -> Result<Arc<Subjects>> {
        if let Some(subjects) = self.inner.subjects.get(&token_id) {
            return Ok(subjects);
        }
        let subjects = match self.inner.store.token(&token_id).await {
            Ok(record) => Subjects::of(&record),
            Err(StoreError::NotFound { .. }) => Subjects::token_only(token_id),
            Err(error) => return Err(error.into()),
        };
        Ok(self.inner.subjects.insert(subjects))
    }

    /// Checks an event and prices it when it reports no cost. Returns the token's subjects when
    /// limits need them (to count usage, or to refuse an unpriced model under a cost limit).
    async fn priced(&self, mut event: UsageEvent) -> Result<(UsageEvent, Option<Arc<Subjects>>)> {
        event.check()?;
        let index = self.inner.quotas.index();
        let needs_subjects = index.has_usage_limits || (event.cost.is_none() && index.has_cost_limits);
        let subjects = if needs_subjects { Some(self.subjects(event.token_id).await?) } else { None };
        if event.cost.is_none() {
            let priced = self.inner.prices.cost(
                event.provider.as_str(),
                event.model.as_str(),
                u64::from(event.input_tokens),
                u64::from(event.output_tokens),
            );
            let cost = match priced {
                Some(cost) => cost,
                None => {
                    let capped = subjects.as_ref().is_some_and(|subjects| {
                        index.applicable(subjects).any(|spec| spec.key().metric == Metric::Cost && !spec.shadow())
                    });
                    if capped && self.inner.quotas.unpriced() == UnpricedModels::Refuse {
                        return Err(ValidationError::new(
                            "model",
                            format!(
                                "{}/{} has no price and a cost limit governs this token; set a price or report the cost",
                                event.provider, event.model
                            ),
                        )
                        .into());
                    }
                    tracing::debug!(provider = %event.provider, model = %event.model, "usage of an unpriced model recorded at zero cost");
                    Microdollars::ZERO
                }
            };
            event.cost = Some(cost);
        }
        Ok((event, subjects))
    }

    /// Counts a priced event's tokens and cost against the quotas that govern its token.
    async fn count(&self, event: &UsageEvent, subjects: Option<&Subjects>) -> Result<()> {
        let Some(subjects) = subjects else { return Ok(()) };
        let cost = event.cost.unwrap_or(Microdollars::ZERO);
        self.inner.quotas.add_usage(subjects, event.at, event.total_tokens(), cost).await
    }
}

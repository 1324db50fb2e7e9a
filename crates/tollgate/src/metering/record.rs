//! Recording usage: checking and pricing each event, what it adds to the quota counters, durable
//! and background recording, and settling or releasing reservations.

use std::sync::Arc;

use serde::Serialize;
use tollgate_store::{DeadLetterRecord, EventToRecord, Page, PageRequest, ReservationRecord, StoreError};
use tollgate_types::{
    AgentId, Estimate, Metric, Microdollars, ModelName, Principal, ProviderName, ReservationId, TokenId, UsageEvent,
    UsageInput, ValidationError,
};

use super::index::Subjects;
use super::{Metering, QuotaReservation, Reservation, UnpricedModels, UsageOutcome};
use crate::authz::{Operation, UsageScope, authorize};
use crate::{Error, Result};

/// One event of a `POST /v1/usage` batch as priced, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedUsage {
    /// The event as stored (its cost priced when it reported none).
    #[serde(flatten)]
    pub event: UsageEvent,
    /// Recorded, a duplicate of an earlier `event_id`, or dead-lettered.
    pub outcome: UsageOutcome,
}

/// A settled reservation and the usage event that replaced its holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// The reservation afterwards.
    pub reservation: ReservationRecord,
    /// The usage event, priced.
    pub event: UsageEvent,
    /// `recorded`, or `duplicate` when this settle (or its `event_id`) was seen before.
    pub outcome: UsageOutcome,
}

impl Metering {
    /// Records one event for a caller the gateway already trusts (it verified the token) and
    /// returns once it is on disk. The cost, when absent, comes from the price table; tokens and
    /// cost count against quotas in the same transaction. A repeat of an `event_id` for the same
    /// token is answered [`UsageOutcome::Duplicate`] and counted once.
    pub async fn record(&self, event: UsageEvent) -> Result<UsageOutcome> {
        let item = self.prepare(event).await?;
        let outcomes = self.inner.recorder.record(vec![item]).await?;
        outcomes.into_iter().next().ok_or_else(|| Error::Unavailable("the usage writer gave no answer".to_owned()))
    }

    /// Records events durably, in order, one outcome each. Every event is checked and priced
    /// before any is recorded, so one bad event refuses the whole batch.
    pub async fn record_many(&self, events: Vec<UsageEvent>) -> Result<Vec<UsageOutcome>> {
        let items = self.prepare_all(events).await?;
        self.inner.recorder.record(items).await
    }

    /// Fire-and-forget: queues one event and returns without waiting for its write (it is written
    /// within the flush interval, and at [`Metering::shutdown`]). A crash before then loses it;
    /// use [`Metering::record`] for anything billed or capped.
    pub async fn record_background(&self, event: UsageEvent) -> Result<()> {
        let item = self.prepare(event).await?;
        self.inner.recorder.record_background(vec![item]).await
    }

    /// Fire-and-forget [`Metering::record_many`].
    pub async fn record_many_background(&self, events: Vec<UsageEvent>) -> Result<()> {
        let items = self.prepare_all(events).await?;
        self.inner.recorder.record_background(items).await
    }

    /// Records usage reported by `principal` (HTTP API, CLI), durably: validates every input and
    /// checks the principal may record for each token before anything is recorded.
    pub async fn record_inputs(&self, principal: &Principal, inputs: &[UsageInput]) -> Result<Vec<RecordedUsage>> {
        let now = self.inner.clock.now();
        let mut events = Vec::with_capacity(inputs.len());
        for input in inputs {
            events.push(input.parse(now)?);
        }
        // A batch usually names one token or a few: read and authorize each once, not once per event.
        let mut authorized: Vec<TokenId> = Vec::new();
        for event in &events {
            if !authorized.contains(&event.token_id) {
                self.authorize_recording(principal, &event.token_id, "token").await?;
                authorized.push(event.token_id);
            }
        }
        let items = self.prepare_all(events).await?;
        self.record_items(items).await
    }

    /// Records an agent's events durably (its analytics events): their ids are unique per agent,
    /// across its credentials, and shared with its budget reports.
    pub(crate) async fn record_for_agent(&self, agent: AgentId, events: Vec<UsageEvent>) -> Result<Vec<RecordedUsage>> {
        let mut items = self.prepare_all(events).await?;
        for item in &mut items {
            item.agent = Some(agent);
        }
        self.record_items(items).await
    }

    async fn record_items(&self, items: Vec<EventToRecord>) -> Result<Vec<RecordedUsage>> {
        let priced: Vec<UsageEvent> = items.iter().map(|item| item.event.clone()).collect();
        let outcomes = self.inner.recorder.record(items).await?;
        Ok(priced.into_iter().zip(outcomes).map(|(event, outcome)| RecordedUsage { event, outcome }).collect())
    }

    /// Checks that `principal` may record usage for `token_id`; a token it may not see is
    /// `NotFound` (`entity`), like one that does not exist.
    async fn authorize_recording(&self, principal: &Principal, token_id: &TokenId, entity: &'static str) -> Result<()> {
        let token = self.inner.store.token(token_id).await.map_err(|error| match error {
            StoreError::NotFound { .. } => Error::NotFound { entity },
            other => other.into(),
        })?;
        authorize(principal, Operation::ReadTokens { owner: Some(token.owner) })
            .map_err(|_| Error::NotFound { entity })?;
        authorize(principal, Operation::RecordUsage { owner: token.owner })?;
        self.inner.subjects.insert(Subjects::of(&token));
        Ok(())
    }

    /// Replaces a reservation made by [`TokenManager::verify_and_reserve`](crate::TokenManager::verify_and_reserve)
    /// with the call's actual usage and records the event, in one transaction. Settling the same
    /// reservation again records nothing more (the answer is [`UsageOutcome::Duplicate`]).
    pub async fn settle(&self, reservation: QuotaReservation, event: UsageEvent) -> Result<UsageOutcome> {
        if event.token_id != reservation.token_id() {
            return Err(ValidationError::new("token_id", "does not match the reservation").into());
        }
        match reservation.id() {
            Some(id) => Ok(self.settle_id(&id, event).await?.outcome),
            None => self.record(event).await,
        }
    }

    /// Gives a reservation's holds back unused (the call did not happen).
    pub async fn release(&self, reservation: QuotaReservation) -> Result<()> {
        if let Some(id) = reservation.id() {
            self.release_id(&id).await?;
        }
        Ok(())
    }

    /// [`Metering::settle`] by id for `principal` (HTTP API, CLI). The input's `token_id` may be
    /// left empty: it is the reservation's. `NotFound` (`reservation`) for a reservation whose
    /// token the principal may not see.
    pub async fn settle_reservation(
        &self,
        principal: &Principal,
        id: &ReservationId,
        input: &UsageInput,
    ) -> Result<Settlement> {
        let reservation = self.reservation(principal, id).await?;
        let mut input = input.clone();
        if input.token_id.trim().is_empty() {
            input.token_id = reservation.token_id.to_string();
        }
        let event = input.parse(self.inner.clock.now())?;
        if event.token_id != reservation.token_id {
            return Err(ValidationError::new("token_id", "does not match the reservation").into());
        }
        self.authorize_recording(principal, &event.token_id, "reservation").await?;
        self.settle_id(id, event).await
    }

    /// [`Metering::release`] by id for `principal`.
    pub async fn release_reservation(&self, principal: &Principal, id: &ReservationId) -> Result<ReservationRecord> {
        let reservation = self.reservation(principal, id).await?;
        self.authorize_recording(principal, &reservation.token_id, "reservation").await?;
        self.release_id(id).await
    }

    /// One reservation, for an admin or the owner of its token (`NotFound` otherwise).
    pub async fn reservation(&self, principal: &Principal, id: &ReservationId) -> Result<ReservationRecord> {
        let reservation = self.inner.store.reservation(id).await?;
        let token = self.inner.store.token(&reservation.token_id).await.map_err(|error| match error {
            StoreError::NotFound { .. } => Error::NotFound { entity: "reservation" },
            other => other.into(),
        })?;
        authorize(principal, Operation::ReadTokens { owner: Some(token.owner) })
            .map_err(|_| Error::NotFound { entity: "reservation" })?;
        Ok(reservation)
    }

    async fn settle_id(&self, id: &ReservationId, event: UsageEvent) -> Result<Settlement> {
        let item = self.prepare(event).await?;
        let now = self.inner.clock.now();
        let settled = self.inner.store.settle_reservation(id, &item, now).await?;
        self.inner.quotas.observe(&settled.totals, now);
        // The holds are gone and the actual may be less: read the counters again.
        let keys = settled.totals.iter().map(|(key, _)| key.clone()).collect();
        self.inner.quotas.refresh_views(keys).await?;
        match settled.recorded {
            Some(outcome) => {
                Ok(Settlement { reservation: settled.reservation, event: item.event, outcome: outcome.into() })
            }
            None => Err(Error::Conflict(
                "the reservation was released; report the usage with POST /v1/usage instead".to_owned(),
            )),
        }
    }

    async fn release_id(&self, id: &ReservationId) -> Result<ReservationRecord> {
        let now = self.inner.clock.now();
        let released = self.inner.store.release_reservation(id, now).await?;
        // The counters lost the holds: read them again before the next plain verify decides on them.
        let keys = released.holds.iter().map(|(key, _)| key.clone()).collect();
        self.inner.quotas.refresh_views(keys).await?;
        Ok(released)
    }

    /// Usage events the store refused, newest first, with the reason (admins only).
    pub async fn dead_letters(&self, principal: &Principal, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
        authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything })?;
        Ok(self.inner.store.dead_letters(page).await?)
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

    /// What to hold for a validated estimate: its tokens, and its cost as given or priced from its
    /// model (`None` when it names neither a cost nor a priced model).
    pub fn reservation_for(&self, estimate: &Estimate) -> Reservation {
        let (input, output) = (u64::from(estimate.input_tokens), u64::from(estimate.output_tokens));
        let priced = || {
            let (provider, model) = estimate.model.as_ref()?;
            self.inner.prices.cost(provider.as_str(), model.as_str(), input, output)
        };
        Reservation { tokens: estimate.total_tokens(), cost: estimate.cost.or_else(priced) }
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

    async fn prepare_all(&self, events: Vec<UsageEvent>) -> Result<Vec<EventToRecord>> {
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            items.push(self.prepare(event).await?);
        }
        Ok(items)
    }

    /// [`Metering::prepare`] for events recorded by another store transaction (budget reports).
    pub(crate) async fn prepare_event(&self, event: UsageEvent) -> Result<EventToRecord> {
        self.prepare(event).await
    }

    /// Checks and prices an event, with what it adds to the tokens and cost counters governing it.
    async fn prepare(&self, event: UsageEvent) -> Result<EventToRecord> {
        let (event, subjects) = self.priced(event).await?;
        let counters = self.inner.quotas.usage_deltas(subjects.as_deref(), &event);
        Ok(EventToRecord { event, counters, agent: None })
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
                            "has no price and a cost limit governs this token; set a price or report the cost",
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
}

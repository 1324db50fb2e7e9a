//! Quota limits, their counters, per-token rate limits and model price overrides.

use async_trait::async_trait;
use serde::Serialize;
use tollgate_types::{
    AuditEvent, LimitKey, LimitRecord, LimitSpec, LimitSubject, ModelName, ModelPrice, ProviderName, RateLimitSpec,
    Timestamp, TokenId,
};

use crate::Result;

/// A token's stored rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitRecord {
    /// The token.
    pub token_id: TokenId,
    /// Its rate.
    #[serde(flatten)]
    pub spec: RateLimitSpec,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// A price override stored by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceRecord {
    /// The price.
    #[serde(flatten)]
    pub price: ModelPrice,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// Limits and their counters. Every change to a limit writes its audit event in the same transaction.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Creates or replaces the limit with `spec`'s key; shadow tallies survive a change.
    async fn put_limit(&self, spec: &LimitSpec, at: Timestamp, audit: &AuditEvent) -> Result<LimitRecord>;

    /// Creates or replaces every limit of `changes`, each with the audit event that describes it, in
    /// one transaction: all of them or none. The records come back in the order given.
    async fn put_limits(&self, changes: &[(LimitSpec, AuditEvent)], at: Timestamp) -> Result<Vec<LimitRecord>>;

    /// Deletes a limit; `NotFound` when there is none. Its counters stay until their windows end,
    /// so removing a limit and setting it again mid-window does not reset what was used.
    async fn delete_limit(&self, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord>;

    /// The limits of `subject`, or all limits; ordered by subject, metric and window.
    async fn limits(&self, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>>;

    /// Deletes counters whose window ended before `before`; returns how many.
    async fn purge_counters(&self, before: Timestamp) -> Result<u64>;

    /// Sets a token's rate limit (replacing any).
    async fn put_rate_limit(
        &self,
        token_id: &TokenId,
        spec: &RateLimitSpec,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<RateLimitRecord>;

    /// Removes a token's rate limit; `NotFound` when it has none.
    async fn delete_rate_limit(&self, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord>;

    /// Every token's rate limit.
    async fn rate_limits(&self) -> Result<Vec<RateLimitRecord>>;
}

/// Price overrides. The defaults ship with the facade; stored prices replace them per model.
#[async_trait]
pub trait PriceStore: Send + Sync {
    /// Creates or replaces the price of a model.
    async fn put_price(&self, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord>;

    /// Removes an override (the shipped default applies again); `NotFound` when there is none.
    async fn delete_price(&self, provider: &ProviderName, model: &ModelName, audit: &AuditEvent)
    -> Result<PriceRecord>;

    /// Every override, ordered by provider and model.
    async fn prices(&self) -> Result<Vec<PriceRecord>>;
}

//! Administering metering: limits, rate limits and prices (each change audited in its
//! transaction), and retention of raw events.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use tollgate_store::{RateLimitRecord, StoreError};
use tollgate_types::{
    AuditEvent, LimitKey, LimitRecord, LimitSpec, LimitSubject, ModelName, ModelPrice, Principal, ProjectId,
    ProjectRole, ProviderName, RateLimitSpec, Timestamp, TokenId, ValidationError,
};

use super::{Metering, PriceEntry};
use crate::authz::{Operation, UsageScope, authorize};
use crate::{Error, Result};

/// A limit with how much of its current window is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitStatus {
    /// The limit.
    #[serde(flatten)]
    pub limit: LimitRecord,
    /// Used in the current window (microdollars for cost). For a request limit this includes the
    /// blocks leased to running processes (`leased`) and those lost with crashed ones (`stranded`);
    /// for tokens and cost, the amounts held by open reservations.
    pub used: i64,
    /// Request limits: units leased to running processes and not admitted yet.
    pub leased: u64,
    /// Request limits: units lost with processes that stopped without returning them (a crash):
    /// never admitted, unavailable until the window ends.
    pub stranded: u64,
    /// Start of the current window.
    pub window_start: Timestamp,
    /// When the current window ends.
    pub resets_at: Timestamp,
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

impl Metering {
    /// Checks that `principal` may read the limits or usage of `subject` (`None`: everybody's). A
    /// token or project the principal may not see is `NotFound`, whether it exists or not.
    pub(crate) async fn authorize_read(&self, principal: &Principal, subject: Option<&LimitSubject>) -> Result<()> {
        match subject {
            Some(LimitSubject::Token(id)) => {
                let token = self.inner.store.token(id).await?;
                authorize(principal, Operation::ReadUsage { scope: UsageScope::Owner(token.owner) })
                    .map_err(|_| Error::NotFound { entity: "token" })
            }
            Some(LimitSubject::Owner(owner)) => {
                authorize(principal, Operation::ReadUsage { scope: UsageScope::Owner(*owner) })
            }
            Some(LimitSubject::Project(project)) => {
                let role = self.project_role(principal, project).await?;
                authorize(principal, Operation::ReadUsage { scope: UsageScope::Project(role) })
                    .map_err(|_| Error::NotFound { entity: "project" })
            }
            None => authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything }),
        }
    }

    /// The principal's role in `project` (`None`: not a member, or no owner to be one).
    pub(crate) async fn project_role(&self, principal: &Principal, project: &ProjectId) -> Result<Option<ProjectRole>> {
        match principal.owner_id() {
            Some(owner) => Ok(self.inner.store.project_role(project, &owner).await?),
            None => Ok(None),
        }
    }

    /// `NotFound` unless the token, owner or project a limit is for exists.
    async fn require_subject(&self, subject: &LimitSubject) -> Result<()> {
        match subject {
            LimitSubject::Token(id) => drop(self.inner.store.token(id).await?),
            LimitSubject::Owner(id) => drop(self.inner.store.owner(id).await?),
            LimitSubject::Project(id) => drop(self.inner.store.project(id).await?),
        }
        Ok(())
    }

    /// Creates or replaces a limit. Its subject (a token, an owner or a project) must exist.
    pub async fn set_limit(&self, principal: &Principal, spec: LimitSpec) -> Result<LimitRecord> {
        authorize(principal, Operation::ManageMetering)?;
        let subject = &spec.key().subject;
        self.require_subject(subject).await?;
        let now = self.inner.clock.now();
        let before =
            self.inner.store.limits(Some(subject)).await?.into_iter().find(|record| record.spec.key() == spec.key());
        let mut event = AuditEvent::new(principal.actor(), "limit.set", spec.key(), now);
        event.before = before.as_ref().map(|record| json(&record.spec));
        event.after = Some(json(&spec));
        let record = self.inner.store.put_limit(&spec, now, &event).await?;
        self.inner.quotas.apply_limit(spec.key(), Some(spec.clone()));
        tracing::info!(limit = %spec.key(), max = spec.max(), shadow = spec.shadow(), "limit set");
        Ok(record)
    }

    /// Creates or replaces many limits in one transaction (all or none, one durable write): what
    /// [`set_limit`](Self::set_limit) does for each, for an operator provisioning thousands of
    /// tenants. Every subject must exist; the first that does not is the error and nothing is
    /// stored. At most [`MAX_LIMITS_PER_CALL`](Self::MAX_LIMITS_PER_CALL) limits.
    pub async fn set_limits(&self, principal: &Principal, specs: Vec<LimitSpec>) -> Result<Vec<LimitRecord>> {
        authorize(principal, Operation::ManageMetering)?;
        if specs.len() > Self::MAX_LIMITS_PER_CALL {
            let reason = format!("must hold at most {} limits", Self::MAX_LIMITS_PER_CALL);
            return Err(Error::Validation(ValidationError::new("limits", reason)));
        }
        let mut checked: HashSet<LimitSubject> = HashSet::new();
        for spec in &specs {
            let subject = &spec.key().subject;
            if checked.insert(subject.clone()) {
                self.require_subject(subject).await?;
            }
        }
        let now = self.inner.clock.now();
        let stored: HashMap<LimitKey, LimitSpec> = self
            .inner
            .store
            .limits(None)
            .await?
            .into_iter()
            .map(|record| (record.spec.key().clone(), record.spec))
            .collect();
        let changes: Vec<(LimitSpec, AuditEvent)> = specs
            .into_iter()
            .map(|spec| {
                let mut event = AuditEvent::new(principal.actor(), "limit.set", spec.key(), now);
                event.before = stored.get(spec.key()).map(json);
                event.after = Some(json(&spec));
                (spec, event)
            })
            .collect();
        let records = self.inner.store.put_limits(&changes, now).await?;
        for (spec, _) in changes {
            self.inner.quotas.apply_limit(spec.key(), Some(spec.clone()));
        }
        tracing::info!(limits = records.len(), "limits set");
        Ok(records)
    }

    /// The most limits one [`set_limits`](Self::set_limits) call takes.
    pub const MAX_LIMITS_PER_CALL: usize = 10_000;

    /// Removes a limit. Its counters stay until their windows end, so setting it again mid-window
    /// continues from what was used.
    pub async fn remove_limit(&self, principal: &Principal, key: &LimitKey) -> Result<LimitRecord> {
        authorize(principal, Operation::ManageMetering)?;
        let now = self.inner.clock.now();
        let before =
            self.inner.store.limits(Some(&key.subject)).await?.into_iter().find(|record| record.spec.key() == key);
        let Some(before) = before else { return Err(Error::NotFound { entity: "limit" }) };
        let mut event = AuditEvent::new(principal.actor(), "limit.remove", key, now);
        event.before = Some(json(&before.spec));
        let record = self.inner.store.delete_limit(key, &event).await?;
        self.inner.quotas.apply_limit(key, None);
        Ok(record)
    }

    /// The limits of `subject`, or every limit (admins only).
    pub async fn limits(&self, principal: &Principal, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>> {
        self.authorize_read(principal, subject).await?;
        Ok(self.inner.store.limits(subject).await?)
    }

    /// The limits of `subject` (or every limit, admins only) with their use in the current window.
    pub async fn limit_status(
        &self,
        principal: &Principal,
        subject: Option<&LimitSubject>,
    ) -> Result<Vec<LimitStatus>> {
        let now = self.inner.clock.now();
        let mut statuses = Vec::new();
        for limit in self.limits(principal, subject).await? {
            let usage = self.inner.quotas.used(&limit.spec, now).await?;
            statuses.push(LimitStatus {
                used: usage.total,
                leased: usage.leased,
                stranded: usage.stranded,
                window_start: usage.key.window_start,
                resets_at: usage.key.window_end(),
                limit,
            });
        }
        Ok(statuses)
    }

    /// Sets a token's rate limit (requests per minute with a burst).
    pub async fn set_rate_limit(
        &self,
        principal: &Principal,
        token_id: &TokenId,
        spec: RateLimitSpec,
    ) -> Result<RateLimitRecord> {
        authorize(principal, Operation::ManageMetering)?;
        let now = self.inner.clock.now();
        let mut event = AuditEvent::new(principal.actor(), "rate_limit.set", token_id, now);
        event.after = Some(json(&spec));
        super::rates::quota_of(&spec)?;
        let record = self.inner.store.put_rate_limit(token_id, &spec, now, &event).await?;
        self.inner.rates.apply_one(*token_id, Some(&spec))?;
        Ok(record)
    }

    /// Removes a token's rate limit.
    pub async fn remove_rate_limit(&self, principal: &Principal, token_id: &TokenId) -> Result<RateLimitRecord> {
        authorize(principal, Operation::ManageMetering)?;
        let event = AuditEvent::new(principal.actor(), "rate_limit.remove", token_id, self.inner.clock.now());
        let record = self.inner.store.delete_rate_limit(token_id, &event).await?;
        self.inner.rates.apply_one(*token_id, None)?;
        Ok(record)
    }

    /// One token's rate limit, for an admin or the token's owner. `NotFound` (`token`) for a token the
    /// principal may not read, so ids cannot be probed; `NotFound` (`rate limit`) when it has none.
    pub async fn rate_limit(&self, principal: &Principal, token_id: &TokenId) -> Result<RateLimitRecord> {
        self.authorize_read(principal, Some(&LimitSubject::Token(*token_id))).await?;
        // Rates are few (one per limited token) and this is an admin read, not the verify path.
        let rates = self.inner.store.rate_limits().await?;
        rates.into_iter().find(|rate| rate.token_id == *token_id).ok_or(Error::NotFound { entity: "rate limit" })
    }

    /// Every token's rate limit (admins only).
    pub async fn rate_limits(&self, principal: &Principal) -> Result<Vec<RateLimitRecord>> {
        authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything })?;
        Ok(self.inner.store.rate_limits().await?)
    }

    /// Every price in effect, by provider and model. Prices are public list prices: anyone may read them.
    pub fn prices(&self) -> Vec<PriceEntry> {
        self.inner.prices.entries()
    }

    /// The price in effect for one model.
    pub fn price(&self, provider: &ProviderName, model: &ModelName) -> Option<PriceEntry> {
        self.inner.prices.price(provider.as_str(), model.as_str())
    }

    /// Stores a price override for a model (replacing shipped and file prices for it).
    pub async fn set_price(&self, principal: &Principal, price: ModelPrice) -> Result<PriceEntry> {
        authorize(principal, Operation::ManageMetering)?;
        let now = self.inner.clock.now();
        let target = format!("{}/{}", price.provider(), price.model());
        let mut event = AuditEvent::new(principal.actor(), "price.set", &target, now);
        event.before = self.price(price.provider(), price.model()).map(|entry| json(&entry));
        event.after = Some(json(&price));
        self.inner.store.put_price(&price, now, &event).await?;
        self.reload_prices().await?;
        self.price(price.provider(), price.model())
            .ok_or_else(|| Error::Storage(StoreError::Corrupt("a stored price did not take effect".to_owned())))
    }

    /// Removes a stored override; the shipped or file price (if any) applies again, and is returned.
    pub async fn remove_price(
        &self,
        principal: &Principal,
        provider: &ProviderName,
        model: &ModelName,
    ) -> Result<Option<PriceEntry>> {
        authorize(principal, Operation::ManageMetering)?;
        let target = format!("{provider}/{model}");
        let mut event = AuditEvent::new(principal.actor(), "price.remove", &target, self.inner.clock.now());
        event.before = self.price(provider, model).map(|entry| json(&entry));
        self.inner.store.delete_price(provider, model, &event).await?;
        self.reload_prices().await?;
        Ok(self.price(provider, model))
    }

    async fn reload_prices(&self) -> Result<()> {
        let stored = self.inner.store.prices().await?;
        self.inner.prices.apply_stored(&stored);
        Ok(())
    }

    /// Deletes raw usage events older than `older_than` (rollups, and so reports, keep them), and
    /// their idempotency keys (a retry older than that would be counted again). Irreversible: an
    /// age under [`MIN_DELETE_AGE`](crate::MIN_DELETE_AGE) is refused unless `force` is set.
    pub async fn purge_usage_events(&self, principal: &Principal, older_than: Duration, force: bool) -> Result<u64> {
        authorize(principal, Operation::ManageMetering)?;
        crate::check_delete_age(older_than, force)?;
        let before = self.inner.clock.now().saturating_sub(older_than);
        let purged = self.inner.store.purge_usage_events(before).await?;
        let mut event = AuditEvent::new(principal.actor(), "usage.purge", "usage_events", self.inner.clock.now());
        event.after = Some(serde_json::json!({ "purged": purged, "before": before }));
        self.inner.store.append_audit(&event).await?;
        Ok(purged)
    }
}

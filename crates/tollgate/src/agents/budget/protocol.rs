//! The budget control protocol, spoken by an agent with its own credential: a handshake opens a
//! lease (and delivers the agent's provider key in the same step), reports move cost from the
//! lease's grant to spent, a refresh replaces the lease (its remainder returns in the same
//! transaction), a return gives the remainder back. The server computes every amount it returns.

use std::time::Duration;

use serde::Serialize;
use tollgate_store::{EventToRecord, LeaseClose, LeaseOpen, LeaseOpened, LeaseReport, Reported};
use tollgate_types::{
    AgentId, AuditEvent, BudgetAccount, EventId, LeaseId, LeaseRecord, MAX_COST_PER_EVENT, MAX_TOKENS_PER_EVENT,
    Microdollars, ModelName, Principal, ProviderName, TokenId, UsageEvent, ValidationError,
};

use super::super::{AgentService, DeliveredKey};
use crate::authz::{Operation, authorize};
use crate::{Caller, Error, Result};

/// What a handshake grants: a lease and the provider key to spend it with.
#[derive(Debug)]
pub struct Handshake {
    /// The lease.
    pub lease: LeaseRecord,
    /// What is still available after the grant.
    pub available_after: i64,
    /// The agent's provider key.
    pub provider_key: DeliveredKey,
}

/// One call's cost, as an agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeaseReportInput {
    /// The caller's key for this report (1–90 characters): a repeat changes nothing.
    pub request_id: String,
    /// What the call cost, in microdollars.
    pub cost: i64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// The model.
    pub model: String,
}

/// The agent a principal is, and the credential it used; anything else may not speak the protocol.
fn agent_of(principal: &Principal, agent: Option<&AgentId>) -> Result<(AgentId, TokenId)> {
    let Principal::Agent { id, credential } = principal else {
        return Err(Error::Forbidden("only an agent, with its own credential, speaks the budget protocol".to_owned()));
    };
    authorize(principal, Operation::UseBudget { agent: *agent.unwrap_or(id) })?;
    Ok((*id, *credential))
}

impl LeaseReportInput {
    fn check(&self) -> Result<()> {
        let id = &self.request_id;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-');
        if id.is_empty() || id.len() > 90 || !id.bytes().all(allowed) {
            let reason = "must be 1 to 90 characters of A-Z, a-z, 0-9, '.', '_', ':', '/', '-'";
            return Err(ValidationError::new("request_id", reason).into());
        }
        if !(0..=MAX_COST_PER_EVENT.micros()).contains(&self.cost) {
            let most = MAX_COST_PER_EVENT.micros();
            return Err(ValidationError::new("cost_microdollars", format!("must be between 0 and {most}")).into());
        }
        for (field, tokens) in [("input_tokens", self.input_tokens), ("output_tokens", self.output_tokens)] {
            if tokens > u64::from(MAX_TOKENS_PER_EVENT) {
                return Err(ValidationError::new(field, format!("must be at most {MAX_TOKENS_PER_EVENT}")).into());
            }
        }
        Ok(())
    }
}

impl AgentService {
    /// Opens a lease for the calling agent and delivers its provider key, all or nothing: the key is
    /// read and decrypted first, then the lease, its ledger row and the audit of the opening and the
    /// delivery are one transaction. Grants the lesser of `requested` (default: the configured
    /// default grant) and what is available; `BudgetExhausted` when less than the minimum is.
    pub async fn handshake(
        &self,
        caller: &Caller,
        provider: &ProviderName,
        requested: Option<i64>,
        ttl: Option<Duration>,
    ) -> Result<Handshake> {
        let (agent, credential) = agent_of(&caller.principal, None)?;
        let requested = self.requested(requested)?;
        let ttl = self.lease_ttl(ttl)?;
        let provider_key = self.unseal_assigned_key(&agent, Some(provider)).await?;
        let now = self.now();
        let open = LeaseOpen {
            id: LeaseId::generate(),
            agent,
            credential,
            provider: provider.clone(),
            requested,
            min_grant: self.budget.min_grant.min(requested),
            refresh_of: None,
            delegate_from: None,
            at: now,
            expires_at: now.saturating_add(ttl),
        };
        let mut opening = AuditEvent::new(caller.principal.actor(), "budget.lease.open", open.id, now);
        opening.ip = caller.ip;
        let delivery = self.delivery_event(caller, &agent, &provider_key, Some(open.id));
        let (lease, account) = self.opened(self.store.open_lease(&open, &[opening, delivery]).await?, requested)?;
        Ok(Handshake { available_after: account.available(), lease, provider_key })
    }

    /// Replaces an open lease of the calling agent with a new one: the old lease's remainder returns
    /// and the new grant is taken in one transaction.
    pub async fn refresh_lease(
        &self,
        caller: &Caller,
        lease: &LeaseId,
        requested: Option<i64>,
        ttl: Option<Duration>,
    ) -> Result<(LeaseRecord, i64)> {
        let (agent, credential) = agent_of(&caller.principal, None)?;
        let requested = self.requested(requested)?;
        let ttl = self.lease_ttl(ttl)?;
        let now = self.now();
        let old = self.own_lease(&agent, lease).await?;
        let open = LeaseOpen {
            id: LeaseId::generate(),
            agent,
            credential,
            provider: old.provider.clone(),
            requested,
            min_grant: self.budget.min_grant.min(requested),
            refresh_of: Some(old.id),
            delegate_from: None,
            at: now,
            expires_at: now.saturating_add(ttl),
        };
        let mut opening = AuditEvent::new(caller.principal.actor(), "budget.lease.open", open.id, now);
        opening.ip = caller.ip;
        opening.reason = Some(format!("refresh of {}", old.id));
        let opened = self.store.open_lease(&open, &[opening]).await.map_err(|error| match error {
            tollgate_store::StoreError::Conflict(_) => Error::LeaseClosed { state: old.state },
            other => other.into(),
        })?;
        let (lease, account) = self.opened(opened, requested)?;
        Ok((lease, account.available()))
    }

    /// Carves a lease for a child agent out of an open lease of the calling agent: the child lease
    /// spends the same budget, expires no later than its parent, and gives what it does not spend back
    /// to the parent lease when it closes (closing the parent closes it first). The child must be
    /// another agent of the same owner. Grants the lesser of `requested` and what the parent lease
    /// has left; `LeaseExhausted` when that is less than the minimum grant.
    pub async fn delegate_lease(
        &self,
        caller: &Caller,
        parent: &LeaseId,
        child: &AgentId,
        requested: i64,
        ttl: Option<Duration>,
    ) -> Result<LeaseRecord> {
        let (agent, credential) = agent_of(&caller.principal, None)?;
        let requested = self.requested(Some(requested))?;
        let ttl = self.lease_ttl(ttl)?;
        let lease = self.own_lease(&agent, parent).await?;
        let delegator = self.store.agent(&agent).await.map_err(super::super::hidden("agent"))?;
        let child_record = self.store.agent(child).await.map_err(super::super::hidden("agent"))?;
        if child_record.owner != delegator.owner || child_record.id == agent {
            // Another owner's agent is not even acknowledged.
            return Err(Error::NotFound { entity: "agent" });
        }
        if child_record.status != tollgate_types::AgentStatus::Active {
            return Err(Error::Conflict(format!("the child agent is {}", child_record.status)));
        }
        let now = self.now();
        let open = LeaseOpen {
            id: LeaseId::generate(),
            agent: *child,
            credential,
            provider: lease.provider.clone(),
            requested,
            min_grant: self.budget.min_grant.min(requested),
            refresh_of: None,
            delegate_from: Some((lease.id, agent)),
            at: now,
            expires_at: now.saturating_add(ttl),
        };
        let mut event = AuditEvent::new(caller.principal.actor(), "budget.lease.delegate", open.id, now);
        event.ip = caller.ip;
        event.reason = Some(format!("out of {}", lease.id));
        let opened = self.store.open_lease(&open, &[event]).await.map_err(|error| match error {
            tollgate_store::StoreError::Conflict(_) => Error::LeaseClosed { state: lease.state },
            other => other.into(),
        })?;
        match opened {
            LeaseOpened::Opened(child_lease, _) => Ok(child_lease),
            LeaseOpened::Exhausted(_) => {
                let parent = self.own_lease(&agent, &lease.id).await?;
                Err(Error::LeaseExhausted { remaining: parent.remaining() })
            }
        }
    }

    /// Reports a call's cost against an open lease of the calling agent; idempotent by `request_id`.
    /// The report is also a usage event (same analytics), recorded in the same transaction. Returns
    /// the lease after.
    pub async fn report_lease(
        &self,
        caller: &Caller,
        lease: &LeaseId,
        input: &LeaseReportInput,
    ) -> Result<LeaseRecord> {
        input.check()?;
        let (agent, credential) = agent_of(&caller.principal, None)?;
        let record = self.own_lease(&agent, lease).await?;
        let now = self.now();
        let model = ModelName::parse(input.model.trim())?;
        let mut event = UsageEvent::new(credential, now, record.provider.clone(), model);
        event.event_id = Some(EventId::parse(&format!("{lease}/{}", input.request_id))?);
        event.input_tokens = u32::try_from(input.input_tokens).unwrap_or(u32::MAX);
        event.output_tokens = u32::try_from(input.output_tokens).unwrap_or(u32::MAX);
        event.cost = Some(Microdollars::from_micros(input.cost));
        let mut usage = match self.tokens.metering() {
            Some(metering) => metering.prepare_event(event).await?,
            None => EventToRecord { event, counters: Vec::new(), agent: None },
        };
        // Unique per agent: an analytics event naming this lease and request is the same call.
        usage.agent = Some(agent);
        let report = LeaseReport {
            lease: *lease,
            agent,
            request_id: input.request_id.clone(),
            cost: input.cost,
            usage,
            at: now,
        };
        let mut audit = AuditEvent::new(caller.principal.actor(), "budget.lease.report", lease, now);
        audit.ip = caller.ip;
        audit.after = Some(serde_json::json!({ "request_id": input.request_id, "cost": input.cost }));
        match self.store.report_lease(&report, &audit).await? {
            Reported::Recorded(lease) | Reported::Duplicate(lease) => Ok(lease),
            Reported::Exhausted(lease) => Err(Error::LeaseExhausted { remaining: lease.remaining() }),
            Reported::Closed(lease) => Err(Error::LeaseClosed { state: lease.state }),
        }
    }

    /// Returns an open lease of the calling agent: the server computes what goes back (its grant
    /// less what was reported). Idempotent: a second return, concurrent or not, returns 0.
    pub async fn return_lease(&self, caller: &Caller, lease: &LeaseId) -> Result<(LeaseRecord, i64)> {
        let (agent, _) = agent_of(&caller.principal, None)?;
        let mut audit = AuditEvent::new(caller.principal.actor(), "budget.lease.return", lease, self.now());
        audit.ip = caller.ip;
        let closed = self.store.close_lease(lease, Some(&agent), LeaseClose::Return, self.now(), &audit).await;
        closed.map_err(super::super::hidden("lease"))
    }

    /// A lease of `agent` (another agent's is `NotFound`), expired on read when overdue.
    pub(in crate::agents) async fn own_lease(&self, agent: &AgentId, lease: &LeaseId) -> Result<LeaseRecord> {
        let record = self.store.budget_lease(lease, self.now()).await.map_err(super::super::hidden("lease"))?;
        if record.agent != *agent {
            return Err(Error::NotFound { entity: "lease" });
        }
        Ok(record)
    }

    fn opened(&self, opened: LeaseOpened, requested: i64) -> Result<(LeaseRecord, BudgetAccount)> {
        match opened {
            LeaseOpened::Opened(lease, account) => Ok((lease, account)),
            LeaseOpened::Exhausted(account) => Err(Error::BudgetExhausted {
                available: account.available(),
                needed: self.budget.min_grant.min(requested),
            }),
        }
    }

    fn requested(&self, requested: Option<i64>) -> Result<i64> {
        match requested {
            None => Ok(self.budget.default_grant),
            Some(amount) if amount >= 1 => Ok(amount),
            Some(_) => Err(ValidationError::new("requested_microdollars", "must be at least 1").into()),
        }
    }

    fn lease_ttl(&self, ttl: Option<Duration>) -> Result<Duration> {
        match ttl {
            None => Ok(self.budget.default_ttl),
            Some(ttl) if ttl >= Duration::from_secs(1) && ttl <= self.budget.max_ttl => Ok(ttl),
            Some(_) => {
                let most = self.budget.max_ttl.as_secs();
                Err(ValidationError::new("ttl_seconds", format!("must be between 1 and {most}")).into())
            }
        }
    }
}

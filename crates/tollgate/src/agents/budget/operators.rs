//! What operators do with budgets: read an agent's account, set its allocation (admins), list and
//! revoke leases, read the allocation history, check the invariants, expire overdue leases.

use tollgate_store::{AllocationChange, LeaseClose, LeaseFilter, Page, PageRequest};
use tollgate_types::{AgentId, AuditEvent, LeaseId, LeaseRecord, LedgerEntry, Permission, Principal, ValidationError};

use super::super::{AgentService, hidden};
use super::BudgetView;
use crate::authz::{Operation, authorize};
use crate::tokens::check_reason;
use crate::{Caller, Result};

impl AgentService {
    /// An agent's budget: allocated, reserved, spent, available and whether it is paused for budget.
    pub async fn budget(&self, principal: &Principal, agent: &AgentId) -> Result<BudgetView> {
        let record = self.agent(principal, agent).await?;
        authorize(principal, Operation::ReadBudget { owner: Some(record.owner) })?;
        Ok(self.store.budget_account(agent).await?.into())
    }

    /// Sets an agent's allocation (admins only), with a ledger row naming who and why. Refused
    /// (`Conflict`) below what is spent and reserved; raising it resumes an agent paused for budget.
    pub async fn set_budget(
        &self,
        caller: &Caller,
        agent: &AgentId,
        allocated: i64,
        reason: Option<&str>,
    ) -> Result<BudgetView> {
        check_reason(reason)?;
        authorize(&caller.principal, Operation::ManageBudget)?;
        if allocated < 0 {
            return Err(ValidationError::new("allocated_microdollars", "must not be negative").into());
        }
        self.agent(&caller.principal, agent).await?;
        let now = self.now();
        let change = AllocationChange {
            agent: *agent,
            allocated,
            actor: caller.principal.actor().as_str().to_owned(),
            reason: reason.map(str::to_owned),
            request: None,
            at: now,
        };
        let mut event = AuditEvent::new(caller.principal.actor(), "budget.allocate", agent, now);
        event.ip = caller.ip;
        event.reason = reason.map(str::to_owned);
        event.after = Some(serde_json::json!({ "allocated": allocated }));
        Ok(self.store.set_allocation(&change, &event).await?.into())
    }

    /// Leases, newest first: an admin's of every agent (or `filter`'s), anyone else's of its own agents.
    pub async fn leases(
        &self,
        principal: &Principal,
        filter: &LeaseFilter,
        page: &PageRequest,
    ) -> Result<Page<LeaseRecord>> {
        let mut filter = filter.clone();
        if let Some(agent) = filter.agent {
            self.agent(principal, &agent).await?;
        }
        if principal.level() != Permission::Admin {
            filter.owner = principal.owner_id();
        }
        authorize(principal, Operation::ReadBudget { owner: filter.owner })?;
        Ok(self.store.list_leases(&filter, page).await?)
    }

    /// Ends a lease (admins only): its remainder returns; returns what went back (0 if it was closed).
    pub async fn revoke_lease(
        &self,
        caller: &Caller,
        lease: &LeaseId,
        reason: Option<&str>,
    ) -> Result<(LeaseRecord, i64)> {
        check_reason(reason)?;
        authorize(&caller.principal, Operation::ManageBudget)?;
        let mut event = AuditEvent::new(caller.principal.actor(), "budget.lease.revoke", lease, self.now());
        event.ip = caller.ip;
        event.reason = reason.map(str::to_owned);
        let closed = self.store.close_lease(lease, None, LeaseClose::Revoke, self.now(), &event).await;
        closed.map_err(hidden("lease"))
    }

    /// The agent's allocation history, newest first: every change, who made it, why, and the request
    /// it came from (`all`: every ledger movement).
    pub async fn budget_history(
        &self,
        principal: &Principal,
        agent: &AgentId,
        all: bool,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>> {
        let record = self.agent(principal, agent).await?;
        authorize(principal, Operation::ReadBudget { owner: Some(record.owner) })?;
        Ok(self.store.ledger(agent, !all, page).await?)
    }

    /// Checks every budget invariant; the first violation, described, or `None`.
    pub async fn verify_budgets(&self, principal: &Principal) -> Result<Option<String>> {
        authorize(principal, Operation::VerifyBudgets)?;
        Ok(self.store.check_budgets().await?)
    }

    /// Expires every overdue lease (returning its remainder). Correctness needs no sweeper — every
    /// access expires what is overdue — but it keeps `reserved` honest for leases nobody touches.
    pub async fn expire_overdue_leases(&self) -> Result<u64> {
        Ok(self.store.expire_leases(self.now()).await?)
    }
}

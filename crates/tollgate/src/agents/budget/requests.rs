//! Budget change requests: the agent's owner (or an admin) asks for an allocation, another admin
//! approves or rejects it, the requester may cancel it. The requester is always the caller, never a
//! body field, and nobody decides their own request.

use tollgate_store::{BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, Page, PageRequest};
use tollgate_types::{
    AgentId, AuditEvent, BudgetRequestId, BudgetRequestRecord, Permission, Principal, RequestState, ValidationError,
};

use super::super::{AgentService, hidden};
use crate::authz::{Operation, authorize};
use crate::tokens::check_reason;
use crate::{Caller, Error, Result};

impl AgentService {
    /// Asks for `requested_allocation` (an absolute target) for an agent the caller owns (any, for an admin).
    pub async fn request_budget(
        &self,
        caller: &Caller,
        agent: &AgentId,
        requested_allocation: i64,
        justification: &str,
    ) -> Result<BudgetRequestRecord> {
        if requested_allocation < 0 {
            return Err(ValidationError::new("requested_allocation_microdollars", "must not be negative").into());
        }
        let justification = justification.trim();
        if justification.is_empty()
            || justification.chars().count() > 1024
            || justification.chars().any(char::is_control)
        {
            let reason = "must be 1 to 1024 characters, without control characters";
            return Err(ValidationError::new("justification", reason).into());
        }
        let record = self.agent(&caller.principal, agent).await?;
        authorize(&caller.principal, Operation::RequestBudget { owner: record.owner })?;
        let now = self.now();
        let insert = BudgetRequestInsert {
            id: BudgetRequestId::generate(),
            agent: *agent,
            requester: caller.principal.actor().as_str().to_owned(),
            requester_owner: caller.principal.owner_id(),
            requested_allocation,
            justification: justification.to_owned(),
            at: now,
        };
        let mut event = AuditEvent::new(caller.principal.actor(), "budget.request.create", insert.id, now);
        event.ip = caller.ip;
        event.after = Some(serde_json::json!({ "agent": agent, "requested_allocation": requested_allocation }));
        Ok(self.store.insert_budget_request(&insert, &event).await?)
    }

    /// One request: for admins, and for its requester or the agent's owner.
    pub async fn budget_request(&self, principal: &Principal, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
        let request = self.store.budget_request(id).await.map_err(hidden("budget_request"))?;
        if principal.level() != Permission::Admin && !request.is_requested_by(principal) {
            self.agent(principal, &request.agent).await.map_err(|_| Error::NotFound { entity: "budget_request" })?;
        }
        Ok(request)
    }

    /// Requests newest first: all for admins; otherwise those the principal made or about its agents.
    pub async fn budget_requests(
        &self,
        principal: &Principal,
        state: Option<RequestState>,
        page: &PageRequest,
    ) -> Result<Page<BudgetRequestRecord>> {
        let owner = if principal.level() == Permission::Admin { None } else { principal.owner_id() };
        authorize(principal, Operation::ReadBudget { owner })?;
        Ok(self.store.list_budget_requests(&BudgetRequestFilter { owner, state }, page).await?)
    }

    /// Approves (the allocation becomes the requested value, checked against what is spent and
    /// reserved now) or rejects a pending request: admins only, never its requester. Deciding a
    /// request twice, or a cancelled one, is `Conflict`.
    pub async fn decide_budget_request(
        &self,
        caller: &Caller,
        id: &BudgetRequestId,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<BudgetRequestRecord> {
        check_reason(reason)?;
        let request = self.budget_request(&caller.principal, id).await?;
        let own_request = request.is_requested_by(&caller.principal);
        authorize(&caller.principal, Operation::DecideBudgetRequest { own_request })?;
        let state = if approve { RequestState::Approved } else { RequestState::Rejected };
        self.decide(caller, &request, state, reason).await
    }

    /// Withdraws a pending request: its requester only.
    pub async fn cancel_budget_request(&self, caller: &Caller, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
        let request = self.budget_request(&caller.principal, id).await?;
        authorize(
            &caller.principal,
            Operation::CancelBudgetRequest { own_request: request.is_requested_by(&caller.principal) },
        )?;
        self.decide(caller, &request, RequestState::Cancelled, None).await
    }

    async fn decide(
        &self,
        caller: &Caller,
        request: &BudgetRequestRecord,
        state: RequestState,
        reason: Option<&str>,
    ) -> Result<BudgetRequestRecord> {
        let now = self.now();
        let decision = BudgetDecision {
            id: request.id,
            state,
            actor: caller.principal.actor().as_str().to_owned(),
            reason: reason.map(str::to_owned),
            at: now,
        };
        let action = match state {
            RequestState::Approved => "budget.request.approve",
            RequestState::Rejected => "budget.request.reject",
            _ => "budget.request.cancel",
        };
        let mut event = AuditEvent::new(caller.principal.actor(), action, request.id, now);
        event.ip = caller.ip;
        event.reason = reason.map(str::to_owned);
        event.after =
            Some(serde_json::json!({ "agent": request.agent, "requested_allocation": request.requested_allocation }));
        Ok(self.store.decide_budget_request(&decision, &event).await?)
    }
}

//! Agent budgets: accounts, leases, the ledger and change requests. Every movement is one
//! transaction that writes the ledger row, the state it changes and its audit events together.

use async_trait::async_trait;
use tollgate_types::{
    AgentId, AuditEvent, BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState,
    LedgerEntry, OwnerId, ProviderName, RequestState, Timestamp, TokenId,
};

use crate::{EventToRecord, Page, PageRequest, Result};

/// A new allocation for an agent: an absolute value.
#[derive(Debug, Clone)]
pub struct AllocationChange {
    /// The agent.
    pub agent: AgentId,
    /// The allocation after the change.
    pub allocated: i64,
    /// Who (the audit actor).
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// The change request it comes from.
    pub request: Option<BudgetRequestId>,
    /// When.
    pub at: Timestamp,
}

/// A lease to open (or, with `refresh_of`, a lease to replace).
#[derive(Debug, Clone)]
pub struct LeaseOpen {
    /// The new lease's id.
    pub id: LeaseId,
    /// The agent.
    pub agent: AgentId,
    /// The credential asking.
    pub credential: TokenId,
    /// The provider it is for.
    pub provider: ProviderName,
    /// What is asked for: the grant is the lesser of it and what is available.
    pub requested: i64,
    /// The least grant worth opening a lease for: less available refuses.
    pub min_grant: i64,
    /// The open lease of the same agent this one replaces: it is closed as `refreshed` and its
    /// remainder returned first, in the same transaction.
    pub refresh_of: Option<LeaseId>,
    /// For a delegated lease: the open lease it is carved out of, and the agent that holds it (the
    /// new lease, for `agent`, spends that lease's account and expires no later than it). The grant
    /// is the lesser of `requested` and what the parent has left; less than `min_grant` is
    /// `Exhausted`. `NotFound` (entity `lease`) when it is not a lease of that agent.
    pub delegate_from: Option<(LeaseId, AgentId)>,
    /// When it opens.
    pub at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// What opening a lease did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOpened {
    /// Opened with its grant; the account after.
    Opened(LeaseRecord, BudgetAccount),
    /// Not enough available: nothing changed but the account's `paused_for_budget` flag.
    Exhausted(BudgetAccount),
}

/// A cost reported against a lease, with the usage event it also is.
#[derive(Debug, Clone)]
pub struct LeaseReport {
    /// The lease.
    pub lease: LeaseId,
    /// The agent reporting (a lease of another agent is `NotFound`).
    pub agent: AgentId,
    /// The caller's key: a repeat is a duplicate and changes nothing.
    pub request_id: String,
    /// The cost.
    pub cost: i64,
    /// The usage event, recorded in the same transaction (idempotent by its event id).
    pub usage: EventToRecord,
    /// When.
    pub at: Timestamp,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Recorded; the lease after.
    Recorded(LeaseRecord),
    /// This `request_id` was reported before: nothing changed.
    Duplicate(LeaseRecord),
    /// It would pass the grant: nothing recorded.
    Exhausted(LeaseRecord),
    /// The lease is closed (expired on this access, perhaps): nothing recorded.
    Closed(LeaseRecord),
}

/// How a lease is closed by a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClose {
    /// Its agent gives the remainder back.
    Return,
    /// An admin ends it.
    Revoke,
}

/// Lease list filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseFilter {
    /// Agent equals.
    pub agent: Option<AgentId>,
    /// Agents of this owner.
    pub owner: Option<OwnerId>,
    /// State equals.
    pub state: Option<LeaseState>,
}

/// A new change request.
#[derive(Debug, Clone)]
pub struct BudgetRequestInsert {
    /// Its id.
    pub id: BudgetRequestId,
    /// The agent.
    pub agent: AgentId,
    /// Who asks (the audit actor).
    pub requester: String,
    /// The owner the requester acts for.
    pub requester_owner: Option<OwnerId>,
    /// The allocation asked for.
    pub requested_allocation: i64,
    /// Why.
    pub justification: String,
    /// When.
    pub at: Timestamp,
}

/// A decision on a pending request.
#[derive(Debug, Clone)]
pub struct BudgetDecision {
    /// Which request.
    pub id: BudgetRequestId,
    /// Approved, rejected or cancelled.
    pub state: RequestState,
    /// Who decides (the audit actor).
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// Change-request list filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetRequestFilter {
    /// Requests about agents of this owner, or made by it.
    pub owner: Option<OwnerId>,
    /// State equals.
    pub state: Option<RequestState>,
}

/// Budget storage.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// The agent's account (all zero when nothing was ever allocated). `NotFound` for an unknown agent.
    async fn budget_account(&self, agent: &AgentId) -> Result<BudgetAccount>;

    /// Sets the allocation, writing its ledger row. `Conflict` when it would go below what is
    /// spent and reserved. Raising it clears `paused_for_budget`.
    async fn set_allocation(&self, change: &AllocationChange, audit: &AuditEvent) -> Result<BudgetAccount>;

    /// Opens a lease for the lesser of `requested` and what is available (first expiring the agent's
    /// overdue leases and closing `refresh_of`), or refuses when less than `min_grant` is
    /// available. `audits` are written with it (the opening, and the key delivery that goes with it).
    /// `NotFound` (entity `lease`) when `refresh_of` is not an open lease of the agent.
    async fn open_lease(&self, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened>;

    /// Reports a cost against an open lease of `report.agent`.
    async fn report_lease(&self, report: &LeaseReport, audit: &AuditEvent) -> Result<Reported>;

    /// Closes an open lease, returning its remainder (to the account, or for a delegated lease to
    /// its parent lease) after closing its open child leases; returns the lease and what was
    /// returned now (0 when it was already closed: closing is idempotent). With `agent`, a lease of
    /// another agent is `NotFound`.
    async fn close_lease(
        &self,
        lease: &LeaseId,
        agent: Option<&AgentId>,
        how: LeaseClose,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(LeaseRecord, i64)>;

    /// Expires every open lease past its expiry (returning its remainder); returns how many.
    async fn expire_leases(&self, now: Timestamp) -> Result<u64>;

    /// One lease (expired on read if it is overdue, so nobody sees an overdue open lease).
    async fn budget_lease(&self, id: &LeaseId, now: Timestamp) -> Result<LeaseRecord>;

    /// Leases newest first. The cursor is an id.
    async fn list_leases(&self, filter: &LeaseFilter, page: &PageRequest) -> Result<Page<LeaseRecord>>;

    /// The agent's ledger, newest first (`allocations_only`: the allocation history). The cursor is a sequence.
    async fn ledger(&self, agent: &AgentId, allocations_only: bool, page: &PageRequest) -> Result<Page<LedgerEntry>>;

    /// Stores a change request.
    async fn insert_budget_request(
        &self,
        insert: &BudgetRequestInsert,
        audit: &AuditEvent,
    ) -> Result<BudgetRequestRecord>;

    /// One change request.
    async fn budget_request(&self, id: &BudgetRequestId) -> Result<BudgetRequestRecord>;

    /// Change requests newest first.
    async fn list_budget_requests(
        &self,
        filter: &BudgetRequestFilter,
        page: &PageRequest,
    ) -> Result<Page<BudgetRequestRecord>>;

    /// Decides a pending request; an approval sets the allocation to the requested value in the same
    /// transaction (with its ledger row naming the request). `Conflict` when the request is not
    /// pending, or when the approved allocation would go below what is spent and reserved.
    async fn decide_budget_request(&self, decision: &BudgetDecision, audit: &AuditEvent)
    -> Result<BudgetRequestRecord>;

    /// Checks every budget invariant over the whole store; the first violation, described, or `None`.
    async fn check_budgets(&self) -> Result<Option<String>>;
}

//! Agent budgets: an account per agent, leases (slices of it an agent runtime holds while it
//! works), the ledger every movement writes, and change requests with their approval.
//!
//! Money is integer microdollars. `available = allocated - reserved - spent`, where `reserved` is
//! the unspent grant of open leases and `spent` the sum of reported costs; `spent + reserved ≤
//! allocated` always holds, and the account always equals the sum of its ledger rows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AgentId, BudgetRequestId, LeaseId, OwnerId, Principal, ProviderName, Timestamp, TokenId, ValidationError};

/// An agent's budget account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetAccount {
    /// The agent.
    pub agent: AgentId,
    /// What the agent may spend in all.
    pub allocated: i64,
    /// The unspent grants of its open leases.
    pub reserved: i64,
    /// What its leases reported spending.
    pub spent: i64,
    /// Whether a handshake was refused for want of budget since the allocation last rose: the
    /// agent is paused for budget until it does.
    pub paused_for_budget: bool,
    /// The last movement.
    pub updated_at: Option<Timestamp>,
}

impl BudgetAccount {
    /// An account with nothing allocated.
    pub fn empty(agent: AgentId) -> Self {
        Self { agent, allocated: 0, reserved: 0, spent: 0, paused_for_budget: false, updated_at: None }
    }

    /// What a new lease could be granted now.
    pub fn available(&self) -> i64 {
        self.allocated.saturating_sub(self.reserved).saturating_sub(self.spent).max(0)
    }
}

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Accepting reports.
    Open,
    /// Its agent gave the remainder back.
    Returned,
    /// Replaced by a new lease; its remainder went back to the account.
    Refreshed,
    /// Its time ran out; its remainder went back.
    Expired,
    /// An admin ended it; its remainder went back.
    Revoked,
}

impl LeaseState {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Returned => "returned",
            Self::Refreshed => "refreshed",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeaseState {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Open, Self::Returned, Self::Refreshed, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| ValidationError::new("state", "must be one of open, returned, refreshed, expired, revoked"))
    }
}

/// A lease: a slice of an agent's budget, granted to it for a while. A delegated lease (a child
/// agent's, carved out of its parent's open lease) spends the parent agent's budget and gives what
/// it does not spend back to its parent lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// Its id.
    pub id: LeaseId,
    /// The agent holding it.
    pub agent: AgentId,
    /// The agent whose budget it spends (its own, or for a delegated lease the root lease's agent).
    pub account: AgentId,
    /// The lease it was delegated out of.
    pub parent: Option<LeaseId>,
    /// What is delegated out of it to child leases now (their grants, less what they gave back).
    pub delegated: i64,
    /// The credential that opened it.
    pub credential: TokenId,
    /// The provider it is for.
    pub provider: ProviderName,
    /// What was granted.
    pub granted: i64,
    /// What was reported spent against it.
    pub reported: i64,
    /// What went back to the account when it closed.
    pub returned: i64,
    /// Where it stands.
    pub state: LeaseState,
    /// The lease it replaced, for a refresh.
    pub refreshed_from: Option<LeaseId>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it expires if still open.
    pub expires_at: Timestamp,
    /// When it closed.
    pub closed_at: Option<Timestamp>,
}

impl LeaseRecord {
    /// What is left of the grant: neither reported nor delegated.
    pub fn remaining(&self) -> i64 {
        self.granted.saturating_sub(self.reported).saturating_sub(self.delegated).max(0)
    }
}

/// What a ledger row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// The allocation changed.
    Allocate,
    /// A lease was opened: its grant moved to `reserved`.
    Open,
    /// A cost was reported: it moved from `reserved` to `spent`.
    Report,
    /// A lease's remainder went back (returned, refreshed, expired or revoked).
    Release,
    /// Part of a lease was delegated to a child agent's lease (the account does not change).
    Delegate,
}

impl LedgerKind {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allocate => "allocate",
            Self::Open => "open",
            Self::Report => "report",
            Self::Release => "release",
            Self::Delegate => "delegate",
        }
    }
}

impl FromStr for LedgerKind {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Allocate, Self::Open, Self::Report, Self::Release, Self::Delegate]
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ValidationError::new("kind", "is not a ledger kind"))
    }
}

/// One movement of an agent's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// Its position in the ledger (ascending in time).
    pub sequence: i64,
    /// The agent.
    pub agent: AgentId,
    /// What it records.
    pub kind: LedgerKind,
    /// The lease it concerns.
    pub lease: Option<LeaseId>,
    /// How `allocated` changed.
    pub allocated_delta: i64,
    /// How `reserved` changed.
    pub reserved_delta: i64,
    /// How `spent` changed.
    pub spent_delta: i64,
    /// The account's allocation after it.
    pub allocated_after: i64,
    /// Who.
    pub actor: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// The change request an allocation came from.
    pub request: Option<BudgetRequestId>,
    /// When.
    pub at: Timestamp,
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for an admin.
    Pending,
    /// Approved: the allocation was set to the requested value.
    Approved,
    /// Rejected by an admin.
    Rejected,
    /// Withdrawn by its requester.
    Cancelled,
}

impl RequestState {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| ValidationError::new("state", "must be one of pending, approved, rejected, cancelled"))
    }
}

/// A request to change an agent's allocation, approved or rejected by an admin other than its requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetRequestRecord {
    /// Its id.
    pub id: BudgetRequestId,
    /// The agent.
    pub agent: AgentId,
    /// Who asked (the actor, as the audit log names it).
    pub requester: String,
    /// The owner the requester acts for (`None`: the operator).
    pub requester_owner: Option<OwnerId>,
    /// The allocation asked for: an absolute target, not a delta.
    pub requested_allocation: i64,
    /// Why.
    pub justification: String,
    /// Where it stands.
    pub state: RequestState,
    /// Who decided (or cancelled).
    pub decided_by: Option<String>,
    /// The decider's reason.
    pub decision_reason: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
}

impl BudgetRequestRecord {
    /// Whether `principal` made this request (it may then cancel it, never decide it).
    pub fn is_requested_by(&self, principal: &Principal) -> bool {
        principal.actor().as_str() == self.requester
            || principal.owner_id().is_some_and(|owner| self.requester_owner == Some(owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_never_goes_below_zero() {
        let mut account = BudgetAccount::empty(AgentId::generate());
        account.allocated = 100;
        account.reserved = 30;
        account.spent = 50;
        assert_eq!(account.available(), 20);
        account.allocated = 40;
        assert_eq!(account.available(), 0);
    }

    #[test]
    fn states_and_kinds_parse() {
        for state in ["open", "returned", "refreshed", "expired", "revoked"] {
            assert_eq!(state.parse::<LeaseState>().unwrap().as_str(), state);
        }
        for state in ["pending", "approved", "rejected", "cancelled"] {
            assert_eq!(state.parse::<RequestState>().unwrap().as_str(), state);
        }
        assert_eq!("spent".parse::<LeaseState>().unwrap_err().field, "state");
        assert_eq!("report".parse::<LedgerKind>().unwrap(), LedgerKind::Report);
    }
}

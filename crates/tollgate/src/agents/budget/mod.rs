//! Agent budgets: the budget control protocol an agent runtime speaks with its own credential
//! (`protocol.rs`: handshake, report, refresh, return), what operators do with accounts and leases
//! (`operators.rs`), and change requests with their approval (`requests.rs`). The ledger itself is
//! the store's ([`BudgetStore`](tollgate_store::BudgetStore)): every movement is one transaction.

mod operators;
mod protocol;
mod requests;

use std::time::Duration;

use serde::Serialize;

pub use protocol::{Handshake, LeaseReportInput};

/// How leases are granted. `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// What a handshake asks for when it names no amount (default $1).
    pub default_grant: i64,
    /// The least grant worth a lease: less available is `budget_exhausted` (default $0.001).
    pub min_grant: i64,
    /// How long a lease lives when the agent names no TTL (default 15 minutes).
    pub default_ttl: Duration,
    /// The longest a lease may live (default 24 hours).
    pub max_ttl: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            default_grant: 1_000_000,
            min_grant: 1_000,
            default_ttl: Duration::from_secs(15 * 60),
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// An agent's budget as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    /// The account.
    #[serde(flatten)]
    pub account: tollgate_types::BudgetAccount,
    /// What a new lease could be granted now.
    pub available: i64,
    /// `ok`, or `paused_for_budget` after a handshake was refused for want of budget.
    pub status: &'static str,
}

impl From<tollgate_types::BudgetAccount> for BudgetView {
    fn from(account: tollgate_types::BudgetAccount) -> Self {
        Self {
            available: account.available(),
            status: if account.paused_for_budget { "paused_for_budget" } else { "ok" },
            account,
        }
    }
}

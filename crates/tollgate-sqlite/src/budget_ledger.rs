//! The budget ledger on SQLite: accounts, the movement that writes a ledger row and changes an
//! account together, allocations, and the invariant checks `tollgate budget verify` runs.

use rusqlite::{Connection, Row, params};
use tollgate_store::{AllocationChange, Result, StoreError};
use tollgate_types::{AgentId, BudgetAccount, BudgetRequestId, LeaseId, LedgerKind, Timestamp};

use crate::columns::{Column, Columns, execute, first};
use crate::error::corrupt;
use crate::writer::Tx;

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budget_accounts.{name}"), error))
}

pub(crate) const ACCOUNT_COLUMNS: &str = "agent_id, allocated, reserved, spent, paused_for_budget, updated_at";

pub(crate) fn account_from_row(row: &Row<'_>) -> Result<BudgetAccount> {
    let at = |index, name| Column { index, name };
    Ok(BudgetAccount {
        agent: column("agent_id", AgentId::parse(&row.text(at(0, "agent_id"))?))?,
        allocated: row.integer(at(1, "allocated"))?,
        reserved: row.integer(at(2, "reserved"))?,
        spent: row.integer(at(3, "spent"))?,
        paused_for_budget: row.integer(at(4, "paused_for_budget"))? == 1,
        updated_at: Some(Timestamp::from_unix_micros(row.integer(at(5, "updated_at"))?)),
    })
}

pub(crate) fn fetch_account(connection: &Connection, agent: &AgentId) -> Result<BudgetAccount> {
    let found = first(
        connection,
        &format!("SELECT {ACCOUNT_COLUMNS} FROM budget_accounts WHERE agent_id = ?"),
        [agent.to_string()],
        account_from_row,
    )?;
    match found {
        Some(account) => Ok(account),
        None => {
            first(connection, "SELECT 1 FROM agents WHERE id = ? AND deleted_at IS NULL", [agent.to_string()], |_| {
                Ok(())
            })?
            .ok_or(StoreError::NotFound { entity: "agent" })?;
            Ok(BudgetAccount::empty(*agent))
        }
    }
}

/// Creates the agent's account row when it has none; `NotFound` for an unknown or deleted agent.
pub(crate) fn ensure_account(connection: &Connection, agent: &AgentId, at: Timestamp) -> Result<()> {
    first(connection, "SELECT 1 FROM agents WHERE id = ? AND deleted_at IS NULL", [agent.to_string()], |_| Ok(()))?
        .ok_or(StoreError::NotFound { entity: "agent" })?;
    execute(
        connection,
        "INSERT OR IGNORE INTO budget_accounts (agent_id, updated_at) VALUES (?, ?)",
        params![agent.to_string(), at.unix_micros()],
    )?;
    Ok(())
}

/// One movement: its ledger row and the account change, together.
pub(crate) struct Movement<'a> {
    pub(crate) agent: &'a AgentId,
    pub(crate) kind: LedgerKind,
    pub(crate) lease: Option<&'a LeaseId>,
    pub(crate) allocated: i64,
    pub(crate) reserved: i64,
    pub(crate) spent: i64,
    pub(crate) actor: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) request: Option<&'a BudgetRequestId>,
    pub(crate) at: Timestamp,
}

pub(crate) fn apply(connection: &Connection, movement: &Movement<'_>) -> Result<BudgetAccount> {
    let account = first(
        connection,
        &format!(
            "UPDATE budget_accounts SET allocated = allocated + ?2, reserved = reserved + ?3, spent = spent + ?4,
                 updated_at = ?5 WHERE agent_id = ?1 RETURNING {ACCOUNT_COLUMNS}"
        ),
        params![
            movement.agent.to_string(),
            movement.allocated,
            movement.reserved,
            movement.spent,
            movement.at.unix_micros()
        ],
        account_from_row,
    )?
    .ok_or(StoreError::NotFound { entity: "agent" })?;
    execute(
        connection,
        "INSERT INTO budget_ledger (agent_id, kind, lease_id, allocated_delta, reserved_delta, spent_delta,
             allocated_after, actor, reason, request_id, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            movement.agent.to_string(),
            movement.kind.as_str(),
            movement.lease.map(ToString::to_string),
            movement.allocated,
            movement.reserved,
            movement.spent,
            account.allocated,
            movement.actor,
            movement.reason,
            movement.request.map(ToString::to_string),
            movement.at.unix_micros(),
        ],
    )?;
    Ok(account)
}

/// Sets an allocation (absolute) with its ledger row: shared by a direct change and an approval.
pub(crate) fn allocate(tx: &mut Tx<'_>, change: &AllocationChange) -> Result<BudgetAccount> {
    ensure_account(tx.connection, &change.agent, change.at)?;
    let account = fetch_account(tx.connection, &change.agent)?;
    let floor = account.spent.saturating_add(account.reserved);
    if change.allocated < floor {
        return Err(StoreError::Conflict(format!(
            "the allocation cannot go below what is spent and reserved ({floor} microdollars)"
        )));
    }
    let delta = change.allocated - account.allocated;
    let movement = Movement {
        agent: &change.agent,
        kind: LedgerKind::Allocate,
        lease: None,
        allocated: delta,
        reserved: 0,
        spent: 0,
        actor: &change.actor,
        reason: change.reason.as_deref(),
        request: change.request.as_ref(),
        at: change.at,
    };
    apply(tx.connection, &movement)?;
    if delta > 0 {
        execute(
            tx.connection,
            "UPDATE budget_accounts SET paused_for_budget = 0 WHERE agent_id = ?",
            [change.agent.to_string()],
        )?;
    }
    fetch_account(tx.connection, &change.agent)
}

/// The budget invariants, as queries that return the first offender's description.
pub(crate) const CHECKS: [(&str, &str); 9] = [
    (
        "the account differs from the sum of its ledger rows",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT agent_id, sum(allocated_delta) AS al,
             sum(reserved_delta) AS re, sum(spent_delta) AS sp FROM budget_ledger GROUP BY agent_id) l USING (agent_id)
         WHERE a.allocated != coalesce(l.al, 0) OR a.reserved != coalesce(l.re, 0) OR a.spent != coalesce(l.sp, 0)
         ORDER BY a.agent_id LIMIT 1",
    ),
    ("spent + reserved exceeds allocated", "SELECT agent_id FROM budget_accounts WHERE spent + reserved > allocated LIMIT 1"),
    (
        "reserved differs from what its open leases have neither spent nor delegated",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT account_id, sum(granted - reported - delegated) AS open
             FROM budget_leases WHERE state = 'open' GROUP BY account_id) l ON l.account_id = a.agent_id
         WHERE a.reserved != coalesce(l.open, 0) ORDER BY a.agent_id LIMIT 1",
    ),
    (
        "spent differs from the costs reported against its leases",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT account_id, sum(reported) AS sp
             FROM budget_leases GROUP BY account_id) l ON l.account_id = a.agent_id
         WHERE a.spent != coalesce(l.sp, 0) ORDER BY a.agent_id LIMIT 1",
    ),
    (
        "a lease's reported cost differs from the sum of its reports",
        "SELECT l.id FROM budget_leases l LEFT JOIN (SELECT lease_id, sum(cost) AS c FROM budget_reports GROUP BY lease_id) r
             ON r.lease_id = l.id WHERE l.reported != coalesce(r.c, 0) ORDER BY l.id LIMIT 1",
    ),
    ("a lease reported or delegated more than its grant", "SELECT id FROM budget_leases WHERE reported + delegated > granted LIMIT 1"),
    (
        "a closed lease did not return exactly its remainder",
        "SELECT id FROM budget_leases WHERE state != 'open' AND returned != granted - reported - delegated LIMIT 1",
    ),
    (
        "a lease's delegated amount differs from what its child leases hold",
        "SELECT p.id FROM budget_leases p LEFT JOIN (SELECT parent_id, sum(granted - returned) AS held FROM budget_leases
             WHERE parent_id IS NOT NULL GROUP BY parent_id) c ON c.parent_id = p.id
         WHERE p.delegated != coalesce(c.held, 0) ORDER BY p.id LIMIT 1",
    ),
    (
        "a child lease is open under a closed parent",
        "SELECT c.id FROM budget_leases c JOIN budget_leases p ON p.id = c.parent_id
         WHERE c.state = 'open' AND p.state != 'open' ORDER BY c.id LIMIT 1",
    ),
];

/// The first violated invariant, described.
pub(crate) fn check(connection: &Connection) -> Result<Option<String>> {
    for (what, sql) in CHECKS {
        if let Some(offender) = first(connection, sql, [], |row| row.text(Column { index: 0, name: "id" }))? {
            return Ok(Some(format!("{offender}: {what}")));
        }
    }
    Ok(None)
}

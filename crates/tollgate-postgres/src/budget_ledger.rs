//! The budget ledger on PostgreSQL: accounts and their row lock, the movement that writes a ledger
//! row and changes an account together, allocations, reading the ledger, and the invariant checks
//! `tollgate budget verify` runs.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{AllocationChange, Result, StoreError};
use tollgate_types::{AgentId, BudgetAccount, BudgetRequestId, LeaseId, LedgerEntry, LedgerKind, Timestamp};

use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};

const ACCOUNT_COLUMNS: &str = "agent_id, allocated, reserved, spent, paused_for_budget, updated_at";

fn account_from_row(row: &PgRow) -> Result<BudgetAccount> {
    let table = "budget_accounts";
    Ok(BudgetAccount {
        agent: parsed(table, "agent_id", AgentId::parse(&get::<String>(row, table, "agent_id")?))?,
        allocated: get(row, table, "allocated")?,
        reserved: get(row, table, "reserved")?,
        spent: get(row, table, "spent")?,
        paused_for_budget: get(row, table, "paused_for_budget")?,
        updated_at: Some(time(row, table, "updated_at")?),
    })
}

/// `Ok` when the agent exists and is not deleted, else `NotFound` (entity `agent`).
pub(crate) async fn agent_exists(connection: &mut PgConnection, agent: &AgentId) -> Result<()> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM agents WHERE id = $1 AND deleted_at IS NULL")
        .bind(agent.to_string())
        .fetch_optional(connection)
        .await
        .store()?;
    found.map(drop).ok_or(StoreError::NotFound { entity: "agent" })
}

/// The agent's account, all zero when it has none yet; `NotFound` for an unknown or deleted agent.
pub(crate) async fn fetch_account(connection: &mut PgConnection, agent: &AgentId) -> Result<BudgetAccount> {
    let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM budget_accounts WHERE agent_id = $1"))
        .bind(agent.to_string())
        .fetch_optional(&mut *connection)
        .await
        .store()?;
    match row {
        Some(row) => account_from_row(&row),
        None => {
            agent_exists(connection, agent).await?;
            Ok(BudgetAccount::empty(*agent))
        }
    }
}

/// Locks the agent's account row, creating it (at `create_at`) when asked and missing.
pub(crate) async fn lock_account(
    connection: &mut PgConnection,
    agent: &AgentId,
    create_at: Option<Timestamp>,
) -> Result<()> {
    if let Some(at) = create_at {
        agent_exists(connection, agent).await?;
        sqlx::query("INSERT INTO budget_accounts (agent_id, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(agent.to_string())
            .bind(at.unix_micros())
            .execute(&mut *connection)
            .await
            .store()?;
    }
    sqlx::query("SELECT 1 FROM budget_accounts WHERE agent_id = $1 FOR UPDATE")
        .bind(agent.to_string())
        .fetch_optional(connection)
        .await
        .store()
        .map(drop)
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

/// Applies `movement` to its account (whose row the caller has locked) and writes its ledger row;
/// returns the account after.
pub(crate) async fn apply(connection: &mut PgConnection, movement: &Movement<'_>) -> Result<BudgetAccount> {
    let row = sqlx::query(&format!(
        "UPDATE budget_accounts SET allocated = allocated + $2, reserved = reserved + $3, spent = spent + $4,
             updated_at = $5 WHERE agent_id = $1 RETURNING {ACCOUNT_COLUMNS}"
    ))
    .bind(movement.agent.to_string())
    .bind(movement.allocated)
    .bind(movement.reserved)
    .bind(movement.spent)
    .bind(movement.at.unix_micros())
    .fetch_optional(&mut *connection)
    .await
    .store()?
    .ok_or(StoreError::NotFound { entity: "agent" })?;
    let account = account_from_row(&row)?;
    sqlx::query(
        "INSERT INTO budget_ledger (agent_id, kind, lease_id, allocated_delta, reserved_delta, spent_delta,
             allocated_after, actor, reason, request_id, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(movement.agent.to_string())
    .bind(movement.kind.as_str())
    .bind(movement.lease.map(ToString::to_string))
    .bind(movement.allocated)
    .bind(movement.reserved)
    .bind(movement.spent)
    .bind(account.allocated)
    .bind(movement.actor)
    .bind(movement.reason)
    .bind(movement.request.map(ToString::to_string))
    .bind(movement.at.unix_micros())
    .execute(connection)
    .await
    .store()?;
    Ok(account)
}

pub(crate) async fn set_paused(connection: &mut PgConnection, agent: &AgentId, paused: bool) -> Result<()> {
    sqlx::query("UPDATE budget_accounts SET paused_for_budget = $2 WHERE agent_id = $1")
        .bind(agent.to_string())
        .bind(paused)
        .execute(connection)
        .await
        .store()
        .map(drop)
}

/// Sets an allocation (absolute) with its ledger row: shared by a direct change and an approval.
pub(crate) async fn allocate(connection: &mut PgConnection, change: &AllocationChange) -> Result<BudgetAccount> {
    lock_account(connection, &change.agent, Some(change.at)).await?;
    let account = fetch_account(connection, &change.agent).await?;
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
    apply(connection, &movement).await?;
    if delta > 0 {
        set_paused(connection, &change.agent, false).await?;
    }
    fetch_account(connection, &change.agent).await
}

pub(crate) const LEDGER_COLUMNS: &str = "sequence, agent_id, kind, lease_id, allocated_delta, reserved_delta, \
     spent_delta, allocated_after, actor, reason, request_id, at";

pub(crate) fn ledger_from_row(row: &PgRow) -> Result<LedgerEntry> {
    let table = "budget_ledger";
    let text = |column: &str| -> Result<String> { get(row, table, column) };
    let optional = |column: &str| -> Result<Option<String>> { get(row, table, column) };
    Ok(LedgerEntry {
        sequence: get(row, table, "sequence")?,
        agent: parsed(table, "agent_id", AgentId::parse(&text("agent_id")?))?,
        kind: parsed(table, "kind", text("kind")?.parse::<LedgerKind>())?,
        lease: parsed(table, "lease_id", optional("lease_id")?.as_deref().map(LeaseId::parse).transpose())?,
        allocated_delta: get(row, table, "allocated_delta")?,
        reserved_delta: get(row, table, "reserved_delta")?,
        spent_delta: get(row, table, "spent_delta")?,
        allocated_after: get(row, table, "allocated_after")?,
        actor: text("actor")?,
        reason: optional("reason")?,
        request: parsed(
            table,
            "request_id",
            optional("request_id")?.as_deref().map(BudgetRequestId::parse).transpose(),
        )?,
        at: time(row, table, "at")?,
    })
}

/// The budget invariants, as queries that return the first offender's id. Sums are NUMERIC, so a
/// corrupt row is reported rather than overflowing the check.
const CHECKS: [(&str, &str); 9] = [
    (
        "the account differs from the sum of its ledger rows",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT agent_id, sum(allocated_delta) AS al,
             sum(reserved_delta) AS re, sum(spent_delta) AS sp FROM budget_ledger GROUP BY agent_id) l USING (agent_id)
         WHERE a.allocated != coalesce(l.al, 0) OR a.reserved != coalesce(l.re, 0) OR a.spent != coalesce(l.sp, 0)
         ORDER BY a.agent_id LIMIT 1",
    ),
    (
        "spent + reserved exceeds allocated",
        "SELECT agent_id FROM budget_accounts WHERE spent::numeric + reserved > allocated LIMIT 1",
    ),
    (
        "reserved differs from what its open leases have neither spent nor delegated",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT account_id,
                 sum(granted::numeric - reported - delegated) AS open
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
        "SELECT l.id FROM budget_leases l LEFT JOIN (SELECT lease_id, sum(cost) AS c FROM budget_reports
             GROUP BY lease_id) r ON r.lease_id = l.id WHERE l.reported != coalesce(r.c, 0) ORDER BY l.id LIMIT 1",
    ),
    (
        "a lease reported or delegated more than its grant",
        "SELECT id FROM budget_leases WHERE reported::numeric + delegated > granted ORDER BY id LIMIT 1",
    ),
    (
        "a closed lease did not return exactly its remainder",
        "SELECT id FROM budget_leases
         WHERE state != 'open' AND returned::numeric != granted::numeric - reported - delegated ORDER BY id LIMIT 1",
    ),
    (
        "a lease's delegated amount differs from what its child leases hold",
        "SELECT p.id FROM budget_leases p LEFT JOIN (SELECT parent_id, sum(granted::numeric - returned) AS held
             FROM budget_leases WHERE parent_id IS NOT NULL GROUP BY parent_id) c ON c.parent_id = p.id
         WHERE p.delegated != coalesce(c.held, 0) ORDER BY p.id LIMIT 1",
    ),
    (
        "a child lease is open under a closed parent",
        "SELECT c.id FROM budget_leases c JOIN budget_leases p ON p.id = c.parent_id
         WHERE c.state = 'open' AND p.state != 'open' ORDER BY c.id LIMIT 1",
    ),
];

/// The first violated invariant, described, or `None`.
pub(crate) async fn check(connection: &mut PgConnection) -> Result<Option<String>> {
    for (what, sql) in CHECKS {
        let offender: Option<String> = sqlx::query_scalar(sql).fetch_optional(&mut *connection).await.store()?;
        if let Some(offender) = offender {
            return Ok(Some(format!("{offender}: {what}")));
        }
    }
    Ok(None)
}

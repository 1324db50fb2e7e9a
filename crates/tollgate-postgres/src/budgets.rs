//! Agent budgets on PostgreSQL: accounts, leases and the ledger. Every movement locks the agent's
//! account row first (`FOR UPDATE`), so movements of one agent apply one after the other, each
//! checking and writing one state; the table CHECKs (`spent + reserved <= allocated`,
//! `reported <= granted`) hold whoever writes.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{AllocationChange, LeaseOpen, LeaseOpened, LeaseReport, Reported, Result, StoreError};
use tollgate_types::{
    Actor, AgentId, AuditEvent, BudgetAccount, BudgetRequestId, LeaseId, LeaseRecord, LeaseState, LedgerKind,
    ProviderName, Timestamp, TokenId,
};

use crate::error::PgResultExt;
use crate::record::record_in;
use crate::rows::{get, optional_time, parsed, time};
use crate::store::PgTx;

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

pub(crate) const LEASE_COLUMNS: &str = "id, agent_id, credential_id, provider, granted, reported, returned, state, \
     refreshed_from, created_at, expires_at, closed_at";

pub(crate) fn lease_from_row(row: &PgRow) -> Result<LeaseRecord> {
    let table = "budget_leases";
    let text = |column: &str| -> Result<String> { get(row, table, column) };
    let refreshed_from: Option<String> = get(row, table, "refreshed_from")?;
    Ok(LeaseRecord {
        id: parsed(table, "id", LeaseId::parse(&text("id")?))?,
        agent: parsed(table, "agent_id", AgentId::parse(&text("agent_id")?))?,
        credential: parsed(table, "credential_id", TokenId::parse(&text("credential_id")?))?,
        provider: parsed(table, "provider", ProviderName::parse(&text("provider")?))?,
        granted: get(row, table, "granted")?,
        reported: get(row, table, "reported")?,
        returned: get(row, table, "returned")?,
        state: parsed(table, "state", text("state")?.parse::<LeaseState>())?,
        refreshed_from: parsed(table, "refreshed_from", refreshed_from.as_deref().map(LeaseId::parse).transpose())?,
        created_at: time(row, table, "created_at")?,
        expires_at: time(row, table, "expires_at")?,
        closed_at: optional_time(row, table, "closed_at")?,
    })
}

/// The lease `id` (locked for the transaction with `lock`), or `NotFound`.
pub(crate) async fn fetch_lease(connection: &mut PgConnection, id: &LeaseId, lock: bool) -> Result<LeaseRecord> {
    let sql =
        format!("SELECT {LEASE_COLUMNS} FROM budget_leases WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(lease_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "lease" })
}

/// The lease `id` of `agent` (another agent's is `NotFound`), locked, after locking its agent's
/// account (the order every movement takes its locks in).
pub(crate) async fn lock_lease(tx: &mut PgTx, id: &LeaseId, agent: Option<&AgentId>) -> Result<LeaseRecord> {
    let lease = fetch_lease(tx.conn(), id, false).await?;
    if agent.is_some_and(|agent| *agent != lease.agent) {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    lock_account(tx.conn(), &lease.agent, None).await?;
    fetch_lease(tx.conn(), id, true).await
}

async fn agent_exists(connection: &mut PgConnection, agent: &AgentId) -> Result<()> {
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
async fn lock_account(connection: &mut PgConnection, agent: &AgentId, create_at: Option<Timestamp>) -> Result<()> {
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
struct Movement<'a> {
    agent: &'a AgentId,
    kind: LedgerKind,
    lease: Option<&'a LeaseId>,
    allocated: i64,
    reserved: i64,
    spent: i64,
    actor: &'a str,
    reason: Option<&'a str>,
    request: Option<&'a BudgetRequestId>,
    at: Timestamp,
}

async fn apply(connection: &mut PgConnection, movement: &Movement<'_>) -> Result<BudgetAccount> {
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

async fn set_paused(connection: &mut PgConnection, agent: &AgentId, paused: bool) -> Result<()> {
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

/// Closes an open lease as `state` (the caller holds its locks), returning its remainder; returns
/// what was returned.
pub(crate) async fn close(
    connection: &mut PgConnection,
    lease: &LeaseRecord,
    state: LeaseState,
    actor: &str,
    at: Timestamp,
) -> Result<i64> {
    let remaining = lease.remaining();
    sqlx::query("UPDATE budget_leases SET state = $2, returned = $3, closed_at = $4 WHERE id = $1 AND state = 'open'")
        .bind(lease.id.to_string())
        .bind(state.as_str())
        .bind(remaining)
        .bind(at.unix_micros())
        .execute(&mut *connection)
        .await
        .store()?;
    let movement = Movement {
        agent: &lease.agent,
        kind: LedgerKind::Release,
        lease: Some(&lease.id),
        allocated: 0,
        reserved: -remaining,
        spent: 0,
        actor,
        reason: Some(state.as_str()),
        request: None,
        at,
    };
    apply(connection, &movement).await?;
    Ok(remaining)
}

/// Expires the overdue open leases of `agent` (whose account the caller has locked), each with its
/// audit event; returns how many.
pub(crate) async fn expire_overdue(tx: &mut PgTx, agent: &AgentId, now: Timestamp) -> Result<u64> {
    let rows = sqlx::query(&format!(
        "SELECT {LEASE_COLUMNS} FROM budget_leases WHERE state = 'open' AND expires_at <= $1 AND agent_id = $2
         ORDER BY id FOR UPDATE"
    ))
    .bind(now.unix_micros())
    .bind(agent.to_string())
    .fetch_all(tx.conn())
    .await
    .store()?;
    let overdue = rows.iter().map(lease_from_row).collect::<Result<Vec<_>>>()?;
    for lease in &overdue {
        let returned = close(tx.conn(), lease, LeaseState::Expired, Actor::system().as_str(), now).await?;
        let mut event = AuditEvent::new(Actor::system(), "budget.lease.expire", lease.id, now);
        event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
        tx.audit(event);
    }
    Ok(overdue.len() as u64)
}

/// Expires the lease itself (locked, with its account) when it is overdue; returns it as it is after.
pub(crate) async fn expire_if_overdue(tx: &mut PgTx, lease: LeaseRecord, now: Timestamp) -> Result<LeaseRecord> {
    if lease.state == LeaseState::Open && lease.expires_at <= now {
        expire_overdue(tx, &lease.agent, now).await?;
        return fetch_lease(tx.conn(), &lease.id, false).await;
    }
    Ok(lease)
}

pub(crate) async fn open_in(tx: &mut PgTx, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
    lock_account(tx.conn(), &open.agent, Some(open.at)).await?;
    expire_overdue(tx, &open.agent, open.at).await?;
    let replaced = match &open.refresh_of {
        Some(id) => {
            let lease = fetch_lease(tx.conn(), id, true).await?;
            if lease.agent != open.agent {
                return Err(StoreError::NotFound { entity: "lease" });
            }
            if lease.state != LeaseState::Open {
                return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
            }
            Some(lease)
        }
        None => None,
    };
    let account = fetch_account(tx.conn(), &open.agent).await?;
    let available = account.available().saturating_add(replaced.as_ref().map_or(0, LeaseRecord::remaining));
    if available < open.min_grant.max(1) {
        set_paused(tx.conn(), &open.agent, true).await?;
        return Ok(LeaseOpened::Exhausted(fetch_account(tx.conn(), &open.agent).await?));
    }
    let actor =
        audits.first().map_or_else(|| Actor::system().as_str().to_owned(), |event| event.actor.as_str().to_owned());
    if let Some(lease) = &replaced {
        close(tx.conn(), lease, LeaseState::Refreshed, &actor, open.at).await?;
    }
    let granted = open.requested.clamp(1, available);
    sqlx::query(
        "INSERT INTO budget_leases (id, agent_id, credential_id, provider, granted, refreshed_from, created_at,
             expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(open.id.to_string())
    .bind(open.agent.to_string())
    .bind(open.credential.to_string())
    .bind(open.provider.as_str())
    .bind(granted)
    .bind(open.refresh_of.map(|id| id.to_string()))
    .bind(open.at.unix_micros())
    .bind(open.expires_at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let movement = Movement {
        agent: &open.agent,
        kind: LedgerKind::Open,
        lease: Some(&open.id),
        allocated: 0,
        reserved: granted,
        spent: 0,
        actor: &actor,
        reason: None,
        request: None,
        at: open.at,
    };
    let account = apply(tx.conn(), &movement).await?;
    for event in audits {
        let mut event = event.clone();
        if event.action == "budget.lease.open" {
            event.after =
                Some(serde_json::json!({ "agent": open.agent, "granted": granted, "provider": open.provider }));
        }
        tx.audit(event);
    }
    Ok(LeaseOpened::Opened(fetch_lease(tx.conn(), &open.id, false).await?, account))
}

pub(crate) async fn report_in(tx: &mut PgTx, report: &LeaseReport, audit: &AuditEvent) -> Result<Reported> {
    let lease = lock_lease(tx, &report.lease, Some(&report.agent)).await?;
    let lease = expire_if_overdue(tx, lease, report.at).await?;
    let repeat: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM budget_reports WHERE lease_id = $1 AND request_id = $2")
            .bind(report.lease.to_string())
            .bind(&report.request_id)
            .fetch_optional(tx.conn())
            .await
            .store()?;
    if repeat.is_some() {
        return Ok(Reported::Duplicate(lease));
    }
    if lease.state != LeaseState::Open {
        return Ok(Reported::Closed(lease));
    }
    if lease.reported.saturating_add(report.cost) > lease.granted {
        return Ok(Reported::Exhausted(lease));
    }
    sqlx::query("INSERT INTO budget_reports (lease_id, request_id, cost, at) VALUES ($1, $2, $3, $4)")
        .bind(report.lease.to_string())
        .bind(&report.request_id)
        .bind(report.cost)
        .bind(report.at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    sqlx::query("UPDATE budget_leases SET reported = reported + $2 WHERE id = $1")
        .bind(report.lease.to_string())
        .bind(report.cost)
        .execute(tx.conn())
        .await
        .store()?;
    let movement = Movement {
        agent: &report.agent,
        kind: LedgerKind::Report,
        lease: Some(&report.lease),
        allocated: 0,
        reserved: -report.cost,
        spent: report.cost,
        actor: audit.actor.as_str(),
        reason: None,
        request: None,
        at: report.at,
    };
    apply(tx.conn(), &movement).await?;
    record_in(tx.conn(), std::slice::from_ref(&report.usage), &[], &[]).await?;
    tx.audit(audit.clone());
    Ok(Reported::Recorded(fetch_lease(tx.conn(), &report.lease, false).await?))
}

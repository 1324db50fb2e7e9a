//! Agent budgets on PostgreSQL: leases (opened, delegated, reported on, closed, expired), over the
//! ledger of `budget_ledger`. Every movement locks the row of the account it moves first (`FOR
//! UPDATE`: a lease's `account`, which for a delegated lease is its root lease's agent), then the
//! leases it changes, so the movements of one account apply one after the other, each checking and
//! writing one state; a lease tree never spans two accounts. The table CHECKs (`spent + reserved
//! <= allocated`, `reported + delegated <= granted`) hold whoever writes.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{LeaseOpen, LeaseOpened, LeaseReport, Reported, Result, StoreError};
use tollgate_types::{
    Actor, AgentId, AuditEvent, LeaseId, LeaseRecord, LeaseState, LedgerKind, ProviderName, Timestamp, TokenId,
};

// Declared here rather than in `lib.rs`, which this change leaves alone; it is a module of the
// crate's own in all but name.

use crate::budget_ledger::{Movement, agent_exists, apply, fetch_account, lock_account, set_paused};

use crate::error::PgResultExt;
use crate::record::record_in;
use crate::rows::{get, optional_time, parsed, time};
use crate::store::PgTx;

pub(crate) const LEASE_COLUMNS: &str = "id, agent_id, account_id, parent_id, credential_id, provider, granted, \
     reported, delegated, returned, state, refreshed_from, created_at, expires_at, closed_at";

pub(crate) fn lease_from_row(row: &PgRow) -> Result<LeaseRecord> {
    let table = "budget_leases";
    let text = |column: &str| -> Result<String> { get(row, table, column) };
    let lease_id = |column: &str| -> Result<Option<LeaseId>> {
        let value: Option<String> = get(row, table, column)?;
        parsed(table, column, value.as_deref().map(LeaseId::parse).transpose())
    };
    Ok(LeaseRecord {
        id: parsed(table, "id", LeaseId::parse(&text("id")?))?,
        agent: parsed(table, "agent_id", AgentId::parse(&text("agent_id")?))?,
        account: parsed(table, "account_id", AgentId::parse(&text("account_id")?))?,
        parent: lease_id("parent_id")?,
        delegated: get(row, table, "delegated")?,
        credential: parsed(table, "credential_id", TokenId::parse(&text("credential_id")?))?,
        provider: parsed(table, "provider", ProviderName::parse(&text("provider")?))?,
        granted: get(row, table, "granted")?,
        reported: get(row, table, "reported")?,
        returned: get(row, table, "returned")?,
        state: parsed(table, "state", text("state")?.parse::<LeaseState>())?,
        refreshed_from: lease_id("refreshed_from")?,
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

/// The lease `id` of `agent` (another agent's is `NotFound`), locked, after locking the account it
/// spends (the order every movement takes its locks in; a lease's account never changes).
pub(crate) async fn lock_lease(tx: &mut PgTx, id: &LeaseId, agent: Option<&AgentId>) -> Result<LeaseRecord> {
    let lease = fetch_lease(tx.conn(), id, false).await?;
    if agent.is_some_and(|agent| *agent != lease.agent) {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    lock_account(tx.conn(), &lease.account, None).await?;
    fetch_lease(tx.conn(), id, true).await
}

/// Closes the open lease `id` as `state` (the caller holds its account's lock) after its open
/// descendants (as `state`, but `revoked` for a refresh), returning each one's remainder to its
/// parent lease and the root's to the account; returns what `id` returned (0 when already closed).
pub(crate) async fn close(
    connection: &mut PgConnection,
    id: &LeaseId,
    state: LeaseState,
    actor: &str,
    at: Timestamp,
) -> Result<i64> {
    // Deepest first, so each lease's children have given back before it closes.
    let tree: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE tree (id, depth) AS (
             SELECT id, 0 FROM budget_leases WHERE id = $1
             UNION ALL
             SELECT l.id, t.depth + 1 FROM budget_leases l JOIN tree t ON l.parent_id = t.id WHERE l.state = 'open'
         )
         SELECT id FROM tree ORDER BY depth DESC, id",
    )
    .bind(id.to_string())
    .fetch_all(&mut *connection)
    .await
    .store()?;
    let child_state = if state == LeaseState::Refreshed { LeaseState::Revoked } else { state };
    let mut returned = 0;
    for member in &tree {
        let member = parsed("budget_leases", "id", LeaseId::parse(member))?;
        let state = if member == *id { state } else { child_state };
        returned = close_one(connection, &member, state, actor, at).await?;
    }
    Ok(returned)
}

/// Closes one open lease whose open children are closed; returns what it returned.
async fn close_one(
    connection: &mut PgConnection,
    id: &LeaseId,
    state: LeaseState,
    actor: &str,
    at: Timestamp,
) -> Result<i64> {
    let lease = fetch_lease(connection, id, true).await?;
    if lease.state != LeaseState::Open {
        return Ok(0);
    }
    let remaining = lease.remaining();
    sqlx::query("UPDATE budget_leases SET state = $2, returned = $3, closed_at = $4 WHERE id = $1 AND state = 'open'")
        .bind(id.to_string())
        .bind(state.as_str())
        .bind(remaining)
        .bind(at.unix_micros())
        .execute(&mut *connection)
        .await
        .store()?;
    // A delegated lease gives back to its parent lease; the account's reservation does not change.
    let reserved = match &lease.parent {
        Some(parent) => {
            sqlx::query("UPDATE budget_leases SET delegated = delegated - $2 WHERE id = $1")
                .bind(parent.to_string())
                .bind(remaining)
                .execute(&mut *connection)
                .await
                .store()?;
            0
        }
        None => -remaining,
    };
    let movement = Movement {
        agent: &lease.account,
        kind: LedgerKind::Release,
        lease: Some(id),
        allocated: 0,
        reserved,
        spent: 0,
        actor,
        reason: Some(state.as_str()),
        request: None,
        at,
    };
    apply(connection, &movement).await?;
    Ok(remaining)
}

/// Expires the overdue open leases spending `account` (whose row the caller has locked), each
/// with its audit event; returns how many.
pub(crate) async fn expire_overdue(tx: &mut PgTx, account: &AgentId, now: Timestamp) -> Result<u64> {
    // Newest first: a child (never expiring after its parent) is expired, with its own event,
    // before its parent is.
    let rows = sqlx::query(&format!(
        "SELECT {LEASE_COLUMNS} FROM budget_leases WHERE state = 'open' AND expires_at <= $1 AND account_id = $2
         ORDER BY id DESC FOR UPDATE"
    ))
    .bind(now.unix_micros())
    .bind(account.to_string())
    .fetch_all(tx.conn())
    .await
    .store()?;
    let overdue = rows.iter().map(lease_from_row).collect::<Result<Vec<_>>>()?;
    // Each was open under the account's lock, and is closed now: by itself, or (returning 0 here)
    // by an overdue parent listed before it.
    for lease in &overdue {
        let returned = close(tx.conn(), &lease.id, LeaseState::Expired, Actor::system().as_str(), now).await?;
        let mut event = AuditEvent::new(Actor::system(), "budget.lease.expire", lease.id, now);
        event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
        tx.audit(event);
    }
    Ok(overdue.len() as u64)
}

/// Expires the lease itself (locked, with its account) when it is overdue; returns it as it is after.
pub(crate) async fn expire_if_overdue(tx: &mut PgTx, lease: LeaseRecord, now: Timestamp) -> Result<LeaseRecord> {
    if lease.state == LeaseState::Open && lease.expires_at <= now {
        expire_overdue(tx, &lease.account, now).await?;
        return fetch_lease(tx.conn(), &lease.id, false).await;
    }
    Ok(lease)
}

async fn insert_lease(
    connection: &mut PgConnection,
    open: &LeaseOpen,
    account: &AgentId,
    parent: Option<&LeaseId>,
    granted: i64,
    expires_at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO budget_leases (id, agent_id, account_id, parent_id, credential_id, provider, granted,
             refreshed_from, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(open.id.to_string())
    .bind(open.agent.to_string())
    .bind(account.to_string())
    .bind(parent.map(ToString::to_string))
    .bind(open.credential.to_string())
    .bind(open.provider.as_str())
    .bind(granted)
    .bind(open.refresh_of.map(|id| id.to_string()))
    .bind(open.at.unix_micros())
    .bind(expires_at.unix_micros())
    .execute(connection)
    .await
    .store()
    .map(drop)
}

fn actor_of(audits: &[AuditEvent]) -> String {
    audits.first().map_or_else(|| Actor::system().as_str().to_owned(), |event| event.actor.as_str().to_owned())
}

/// Queues the opening's audit events, the opening (or delegation) itself with what was granted.
fn queue_opening(tx: &mut PgTx, audits: &[AuditEvent], open: &LeaseOpen, granted: i64) {
    for event in audits {
        let mut event = event.clone();
        if event.action == "budget.lease.open" || event.action == "budget.lease.delegate" {
            event.after =
                Some(serde_json::json!({ "agent": open.agent, "granted": granted, "provider": open.provider }));
        }
        tx.audit(event);
    }
}

/// Carves a child lease out of the open lease `parent` of `delegator`, under the lock of the
/// account that lease spends.
async fn delegate_in(
    tx: &mut PgTx,
    open: &LeaseOpen,
    parent: &LeaseId,
    delegator: &AgentId,
    audits: &[AuditEvent],
) -> Result<LeaseOpened> {
    let lease = lock_lease(tx, parent, Some(delegator)).await?;
    let lease = expire_if_overdue(tx, lease, open.at).await?;
    if lease.state != LeaseState::Open {
        return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
    }
    agent_exists(tx.conn(), &open.agent).await?;
    let free = lease.remaining();
    if free < open.min_grant.max(1) {
        return Ok(LeaseOpened::Exhausted(fetch_account(tx.conn(), &lease.account).await?));
    }
    let granted = open.requested.clamp(1, free);
    let expires_at = open.expires_at.min(lease.expires_at);
    if expires_at <= open.at {
        return Err(StoreError::Conflict("the parent lease expires now".to_owned()));
    }
    sqlx::query("UPDATE budget_leases SET delegated = delegated + $2 WHERE id = $1")
        .bind(parent.to_string())
        .bind(granted)
        .execute(tx.conn())
        .await
        .store()?;
    insert_lease(tx.conn(), open, &lease.account, Some(parent), granted, expires_at).await?;
    let (actor, reason) = (actor_of(audits), format!("out of {parent}"));
    let movement = Movement {
        agent: &lease.account,
        kind: LedgerKind::Delegate,
        lease: Some(&open.id),
        allocated: 0,
        reserved: 0,
        spent: 0,
        actor: &actor,
        reason: Some(&reason),
        request: None,
        at: open.at,
    };
    let account = apply(tx.conn(), &movement).await?;
    queue_opening(tx, audits, open, granted);
    Ok(LeaseOpened::Opened(fetch_lease(tx.conn(), &open.id, false).await?, account))
}

/// The open, undelegated lease `id` of `agent` a refresh replaces (the caller holds the agent's
/// account lock).
async fn refreshed_lease(tx: &mut PgTx, id: &LeaseId, agent: &AgentId) -> Result<LeaseRecord> {
    let lease = fetch_lease(tx.conn(), id, false).await?;
    if lease.agent != *agent {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    // Lock it only under the lock of the account it spends: a lease delegated to this agent out of
    // another's spends that one, and is refused below anyway.
    let lease = if lease.account == *agent { fetch_lease(tx.conn(), id, true).await? } else { lease };
    if lease.state != LeaseState::Open {
        return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
    }
    if lease.parent.is_some() {
        return Err(StoreError::Conflict("a delegated lease is not refreshed: its parent delegates anew".to_owned()));
    }
    Ok(lease)
}

pub(crate) async fn open_in(tx: &mut PgTx, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
    if let Some((parent, delegator)) = &open.delegate_from {
        return delegate_in(tx, open, parent, delegator, audits).await;
    }
    lock_account(tx.conn(), &open.agent, Some(open.at)).await?;
    expire_overdue(tx, &open.agent, open.at).await?;
    let replaced = match &open.refresh_of {
        Some(id) => Some(refreshed_lease(tx, id, &open.agent).await?),
        None => None,
    };
    let account = fetch_account(tx.conn(), &open.agent).await?;
    let available = account.available().saturating_add(replaced.as_ref().map_or(0, LeaseRecord::remaining));
    if available < open.min_grant.max(1) {
        set_paused(tx.conn(), &open.agent, true).await?;
        return Ok(LeaseOpened::Exhausted(fetch_account(tx.conn(), &open.agent).await?));
    }
    let actor = actor_of(audits);
    if let Some(lease) = &replaced {
        close(tx.conn(), &lease.id, LeaseState::Refreshed, &actor, open.at).await?;
    }
    let granted = open.requested.clamp(1, available);
    insert_lease(tx.conn(), open, &open.agent, None, granted, open.expires_at).await?;
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
    queue_opening(tx, audits, open, granted);
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
    if report.cost > lease.remaining() {
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
        agent: &lease.account,
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

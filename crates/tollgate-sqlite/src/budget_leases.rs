//! Budget leases on SQLite, inside a write job: opening (or refreshing) one, delegating part of one
//! to a child agent's, reporting against one, closing one (its open children first) and expiring
//! overdue ones. Each writes its ledger rows through `budget_ledger.rs`.

use rusqlite::{Connection, Row, params};
use tollgate_store::{LeaseOpen, LeaseOpened, LeaseReport, Reported, Result, StoreError};
use tollgate_types::{
    Actor, AgentId, AuditEvent, LeaseId, LeaseRecord, LeaseState, LedgerKind, ProviderName, Timestamp, TokenId,
};

use crate::audit::append;
use crate::budget_ledger::{Movement, apply, ensure_account, fetch_account};
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::record::{Encoded, record_in};
use crate::writer::Tx;

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budget_leases.{name}"), error))
}

pub(crate) const LEASE_COLUMNS: &str = "id, agent_id, account_id, parent_id, credential_id, provider, granted, reported, \
     delegated, returned, state, refreshed_from, created_at, expires_at, closed_at";

pub(crate) fn lease_from_row(row: &Row<'_>) -> Result<LeaseRecord> {
    let at = |index, name| Column { index, name };
    let lease_id = |index, name| -> Result<Option<LeaseId>> {
        column(name, row.optional_text(at(index, name))?.as_deref().map(LeaseId::parse).transpose())
    };
    Ok(LeaseRecord {
        id: column("id", LeaseId::parse(&row.text(at(0, "id"))?))?,
        agent: column("agent_id", AgentId::parse(&row.text(at(1, "agent_id"))?))?,
        account: column("account_id", AgentId::parse(&row.text(at(2, "account_id"))?))?,
        parent: lease_id(3, "parent_id")?,
        credential: column("credential_id", TokenId::parse(&row.text(at(4, "credential_id"))?))?,
        provider: column("provider", ProviderName::parse(&row.text(at(5, "provider"))?))?,
        granted: row.integer(at(6, "granted"))?,
        reported: row.integer(at(7, "reported"))?,
        delegated: row.integer(at(8, "delegated"))?,
        returned: row.integer(at(9, "returned"))?,
        state: column("state", row.text(at(10, "state"))?.parse::<LeaseState>())?,
        refreshed_from: lease_id(11, "refreshed_from")?,
        created_at: Timestamp::from_unix_micros(row.integer(at(12, "created_at"))?),
        expires_at: Timestamp::from_unix_micros(row.integer(at(13, "expires_at"))?),
        closed_at: row.optional_integer(at(14, "closed_at"))?.map(Timestamp::from_unix_micros),
    })
}

pub(crate) fn fetch_lease(connection: &Connection, id: &LeaseId) -> Result<LeaseRecord> {
    let sql = format!("SELECT {LEASE_COLUMNS} FROM budget_leases WHERE id = ?");
    one(connection, "lease", &sql, [id.to_string()], lease_from_row)
}

/// The lease `id` of `agent` (another agent's is `NotFound`).
pub(crate) fn lease_of(connection: &Connection, id: &LeaseId, agent: Option<&AgentId>) -> Result<LeaseRecord> {
    let lease = fetch_lease(connection, id)?;
    if agent.is_some_and(|agent| *agent != lease.agent) {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    Ok(lease)
}

/// Closes an open lease as `state` after its open child leases, returning its remainder to the
/// account (or, for a delegated lease, to its parent lease); returns what it returned.
pub(crate) fn close(tx: &mut Tx<'_>, id: &LeaseId, state: LeaseState, actor: &str, at: Timestamp) -> Result<i64> {
    let children = collect(
        tx.connection,
        "SELECT id FROM budget_leases WHERE parent_id = ? AND state = 'open' ORDER BY id",
        [id.to_string()],
        |row| column("id", LeaseId::parse(&row.text(Column { index: 0, name: "id" })?)),
    )?;
    let child_state = if state == LeaseState::Refreshed { LeaseState::Revoked } else { state };
    for child in &children {
        close(tx, child, child_state, actor, at)?;
    }
    let lease = fetch_lease(tx.connection, id)?;
    if lease.state != LeaseState::Open {
        return Ok(0);
    }
    let remaining = lease.remaining();
    execute(
        tx.connection,
        "UPDATE budget_leases SET state = ?2, returned = ?3, closed_at = ?4 WHERE id = ?1 AND state = 'open'",
        params![id.to_string(), state.as_str(), remaining, at.unix_micros()],
    )?;
    // A delegated lease gives back to its parent lease; the account's reservation does not change.
    let reserved = match &lease.parent {
        Some(parent) => {
            execute(
                tx.connection,
                "UPDATE budget_leases SET delegated = delegated - ?2 WHERE id = ?1",
                params![parent.to_string(), remaining],
            )?;
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
    apply(tx.connection, &movement)?;
    Ok(remaining)
}

/// Expires overdue open leases (of `account`, or all), each with its audit event; returns how many.
pub(crate) fn expire_overdue(tx: &mut Tx<'_>, account: Option<&AgentId>, now: Timestamp) -> Result<u64> {
    let overdue = collect(
        tx.connection,
        &format!(
            "SELECT {LEASE_COLUMNS} FROM budget_leases
             WHERE state = 'open' AND expires_at <= ?1 AND (?2 IS NULL OR account_id = ?2) ORDER BY id DESC"
        ),
        params![now.unix_micros(), account.map(ToString::to_string)],
        lease_from_row,
    )?;
    let mut expired = 0;
    for lease in &overdue {
        let returned = close(tx, &lease.id, LeaseState::Expired, Actor::system().as_str(), now)?;
        if fetch_lease(tx.connection, &lease.id)?.closed_at == Some(now) {
            let mut event = AuditEvent::new(Actor::system(), "budget.lease.expire", lease.id, now);
            event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
            append(tx, &event)?;
            expired += 1;
        }
    }
    Ok(expired)
}

/// Expires the lease itself when it is overdue; returns it as it is after.
pub(crate) fn expire_if_overdue(tx: &mut Tx<'_>, lease: LeaseRecord, now: Timestamp) -> Result<LeaseRecord> {
    if lease.state == LeaseState::Open && lease.expires_at <= now {
        expire_overdue(tx, Some(&lease.account), now)?;
        return fetch_lease(tx.connection, &lease.id);
    }
    Ok(lease)
}

fn insert_lease(
    tx: &mut Tx<'_>,
    open: &LeaseOpen,
    account: &AgentId,
    parent: Option<&LeaseId>,
    granted: i64,
    expires_at: Timestamp,
) -> Result<()> {
    execute(
        tx.connection,
        "INSERT INTO budget_leases (id, agent_id, account_id, parent_id, credential_id, provider, granted,
             refreshed_from, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            open.id.to_string(),
            open.agent.to_string(),
            account.to_string(),
            parent.map(ToString::to_string),
            open.credential.to_string(),
            open.provider.as_str(),
            granted,
            open.refresh_of.map(|id| id.to_string()),
            open.at.unix_micros(),
            expires_at.unix_micros(),
        ],
    )?;
    Ok(())
}

fn actor_of(audits: &[AuditEvent]) -> String {
    audits.first().map_or_else(|| Actor::system().as_str().to_owned(), |event| event.actor.as_str().to_owned())
}

fn append_opening(tx: &mut Tx<'_>, audits: &[AuditEvent], open: &LeaseOpen, granted: i64) -> Result<()> {
    for event in audits {
        let mut event = event.clone();
        if event.action == "budget.lease.open" || event.action == "budget.lease.delegate" {
            event.after =
                Some(serde_json::json!({ "agent": open.agent, "granted": granted, "provider": open.provider }));
        }
        append(tx, &event)?;
    }
    Ok(())
}

/// Carves a child lease out of an open lease of the delegating agent.
fn delegate_in(
    tx: &mut Tx<'_>,
    open: &LeaseOpen,
    parent: &LeaseId,
    delegator: &AgentId,
    audits: &[AuditEvent],
) -> Result<LeaseOpened> {
    let lease = lease_of(tx.connection, parent, Some(delegator))?;
    let lease = expire_if_overdue(tx, lease, open.at)?;
    if lease.state != LeaseState::Open {
        return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
    }
    first(tx.connection, "SELECT 1 FROM agents WHERE id = ? AND deleted_at IS NULL", [open.agent.to_string()], |_| {
        Ok(())
    })?
    .ok_or(StoreError::NotFound { entity: "agent" })?;
    let free = lease.remaining();
    if free < open.min_grant.max(1) {
        return Ok(LeaseOpened::Exhausted(fetch_account(tx.connection, &lease.account)?));
    }
    let granted = open.requested.clamp(1, free);
    let expires_at = open.expires_at.min(lease.expires_at);
    if expires_at <= open.at {
        return Err(StoreError::Conflict("the parent lease expires now".to_owned()));
    }
    execute(
        tx.connection,
        "UPDATE budget_leases SET delegated = delegated + ?2 WHERE id = ?1",
        params![parent.to_string(), granted],
    )?;
    insert_lease(tx, open, &lease.account, Some(parent), granted, expires_at)?;
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
    let account = apply(tx.connection, &movement)?;
    append_opening(tx, audits, open, granted)?;
    Ok(LeaseOpened::Opened(fetch_lease(tx.connection, &open.id)?, account))
}

pub(crate) fn open_in(tx: &mut Tx<'_>, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
    if let Some((parent, delegator)) = &open.delegate_from {
        return delegate_in(tx, open, parent, delegator, audits);
    }
    ensure_account(tx.connection, &open.agent, open.at)?;
    expire_overdue(tx, Some(&open.agent), open.at)?;
    let replaced = match &open.refresh_of {
        Some(id) => {
            let lease = lease_of(tx.connection, id, Some(&open.agent))?;
            if lease.state != LeaseState::Open {
                return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
            }
            if lease.parent.is_some() {
                return Err(StoreError::Conflict(
                    "a delegated lease is not refreshed: its parent delegates anew".to_owned(),
                ));
            }
            Some(lease)
        }
        None => None,
    };
    let account = fetch_account(tx.connection, &open.agent)?;
    let available = account.available().saturating_add(replaced.as_ref().map_or(0, LeaseRecord::remaining));
    if available < open.min_grant.max(1) {
        execute(
            tx.connection,
            "UPDATE budget_accounts SET paused_for_budget = 1 WHERE agent_id = ?",
            [open.agent.to_string()],
        )?;
        return Ok(LeaseOpened::Exhausted(fetch_account(tx.connection, &open.agent)?));
    }
    let actor = actor_of(audits);
    if let Some(lease) = &replaced {
        close(tx, &lease.id, LeaseState::Refreshed, &actor, open.at)?;
    }
    let granted = open.requested.clamp(1, available);
    insert_lease(tx, open, &open.agent, None, granted, open.expires_at)?;
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
    let account = apply(tx.connection, &movement)?;
    append_opening(tx, audits, open, granted)?;
    Ok(LeaseOpened::Opened(fetch_lease(tx.connection, &open.id)?, account))
}

pub(crate) fn report_in(
    tx: &mut Tx<'_>,
    report: &LeaseReport,
    encoded: Encoded,
    audit: &AuditEvent,
) -> Result<Reported> {
    let lease = lease_of(tx.connection, &report.lease, Some(&report.agent))?;
    let mut lease = expire_if_overdue(tx, lease, report.at)?;
    let fits = lease.state == LeaseState::Open && report.cost <= lease.remaining();
    if !fits {
        // A repeat of an accepted report is a duplicate whatever became of the lease since.
        let repeat = first(
            tx.connection,
            "SELECT 1 FROM budget_reports WHERE lease_id = ? AND request_id = ?",
            params![report.lease.to_string(), &report.request_id],
            |_| Ok(()),
        )?;
        return Ok(match (repeat, lease.state) {
            (Some(()), _) => Reported::Duplicate(lease),
            (None, LeaseState::Open) => Reported::Exhausted(lease),
            (None, _) => Reported::Closed(lease),
        });
    }
    let inserted = execute(
        tx.connection,
        "INSERT OR IGNORE INTO budget_reports (lease_id, request_id, cost, at) VALUES (?, ?, ?, ?)",
        params![report.lease.to_string(), &report.request_id, report.cost, report.at.unix_micros()],
    )?;
    if inserted == 0 {
        return Ok(Reported::Duplicate(lease));
    }
    execute(
        tx.connection,
        "UPDATE budget_leases SET reported = reported + ?2 WHERE id = ?1",
        params![report.lease.to_string(), report.cost],
    )?;
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
    apply(tx.connection, &movement)?;
    record_in(tx, std::slice::from_ref(&report.usage), encoded, &[], &[])?;
    append(tx, audit)?;
    lease.reported += report.cost;
    Ok(Reported::Recorded(lease))
}

//! Agent budgets on SQLite: leases (opened, delegated, reported on, closed, expired) and the trait
//! that ties them to the ledger (`budget_ledger.rs`). The one writer serializes every movement, so
//! a movement's checks and its writes see one state; the table CHECKs (`spent + reserved <=
//! allocated`, `reported + delegated <= granted`) hold whoever writes.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    AllocationChange, BudgetStore, LeaseClose, LeaseFilter, LeaseOpen, LeaseOpened, LeaseReport, Page, PageRequest,
    Reported, Result, StoreError,
};
use tollgate_types::{
    Actor, AgentId, AuditEvent, BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState,
    LedgerEntry, LedgerKind, ProviderName, Timestamp, TokenId,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::budget_ledger::{Movement, allocate, apply, ensure_account, fetch_account};
use crate::budget_requests;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::record::{Encoded, record_in};
use crate::writer::Tx;

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budget_leases.{name}"), error))
}

const LEASE_COLUMNS: &str = "id, agent_id, account_id, parent_id, credential_id, provider, granted, reported, \
     delegated, returned, state, refreshed_from, created_at, expires_at, closed_at";

fn lease_from_row(row: &Row<'_>) -> Result<LeaseRecord> {
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

fn fetch_lease(connection: &Connection, id: &LeaseId) -> Result<LeaseRecord> {
    let sql = format!("SELECT {LEASE_COLUMNS} FROM budget_leases WHERE id = ?");
    one(connection, "lease", &sql, [id.to_string()], lease_from_row)
}

/// The lease `id` of `agent` (another agent's is `NotFound`).
fn lease_of(connection: &Connection, id: &LeaseId, agent: Option<&AgentId>) -> Result<LeaseRecord> {
    let lease = fetch_lease(connection, id)?;
    if agent.is_some_and(|agent| *agent != lease.agent) {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    Ok(lease)
}

/// Closes an open lease as `state` after its open child leases, returning its remainder to the
/// account (or, for a delegated lease, to its parent lease); returns what it returned.
fn close(tx: &mut Tx<'_>, id: &LeaseId, state: LeaseState, actor: &str, at: Timestamp) -> Result<i64> {
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
fn expire_overdue(tx: &mut Tx<'_>, account: Option<&AgentId>, now: Timestamp) -> Result<u64> {
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
fn expire_if_overdue(tx: &mut Tx<'_>, lease: LeaseRecord, now: Timestamp) -> Result<LeaseRecord> {
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

fn open_in(tx: &mut Tx<'_>, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
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

fn report_in(tx: &mut Tx<'_>, report: &LeaseReport, encoded: Encoded, audit: &AuditEvent) -> Result<Reported> {
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

fn ledger_from_row(row: &Row<'_>) -> Result<LedgerEntry> {
    let at = |index, name| Column { index, name };
    Ok(LedgerEntry {
        sequence: row.integer(at(0, "sequence"))?,
        agent: column("agent_id", AgentId::parse(&row.text(at(1, "agent_id"))?))?,
        kind: column("kind", row.text(at(2, "kind"))?.parse::<LedgerKind>())?,
        lease: column("lease_id", row.optional_text(at(3, "lease_id"))?.as_deref().map(LeaseId::parse).transpose())?,
        allocated_delta: row.integer(at(4, "allocated_delta"))?,
        reserved_delta: row.integer(at(5, "reserved_delta"))?,
        spent_delta: row.integer(at(6, "spent_delta"))?,
        allocated_after: row.integer(at(7, "allocated_after"))?,
        actor: row.text(at(8, "actor"))?,
        reason: row.optional_text(at(9, "reason"))?,
        request: column(
            "request_id",
            row.optional_text(at(10, "request_id"))?.as_deref().map(BudgetRequestId::parse).transpose(),
        )?,
        at: Timestamp::from_unix_micros(row.integer(at(11, "at"))?),
    })
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn budget_account(&self, agent: &AgentId) -> Result<BudgetAccount> {
        let agent = *agent;
        self.point(move |connection| fetch_account(connection, &agent)).await
    }

    async fn set_allocation(&self, change: &AllocationChange, audit: &AuditEvent) -> Result<BudgetAccount> {
        let (change, audit) = (change.clone(), audit.clone());
        self.write(move |tx| {
            let account = allocate(tx, &change)?;
            append(tx, &audit)?;
            Ok(account)
        })
        .await
    }

    async fn open_lease(&self, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
        let (open, audits) = (open.clone(), audits.to_vec());
        self.write(move |tx| open_in(tx, &open, &audits)).await
    }

    async fn report_lease(&self, report: &LeaseReport, audit: &AuditEvent) -> Result<Reported> {
        let (report, audit) = (report.clone(), audit.clone());
        let encoded = Encoded::of(std::slice::from_ref(&report.usage));
        self.write(move |tx| report_in(tx, &report, encoded, &audit)).await
    }

    async fn close_lease(
        &self,
        lease: &LeaseId,
        agent: Option<&AgentId>,
        how: LeaseClose,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(LeaseRecord, i64)> {
        let (id, agent, audit) = (*lease, agent.copied(), audit.clone());
        self.write(move |tx| {
            let lease = lease_of(tx.connection, &id, agent.as_ref())?;
            let lease = expire_if_overdue(tx, lease, at)?;
            if lease.state != LeaseState::Open {
                return Ok((lease, 0));
            }
            let state = match how {
                LeaseClose::Return => LeaseState::Returned,
                LeaseClose::Revoke => LeaseState::Revoked,
            };
            let returned = close(tx, &lease.id, state, audit.actor.as_str(), at)?;
            let mut audit = audit;
            audit.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
            append(tx, &audit)?;
            Ok((fetch_lease(tx.connection, &id)?, returned))
        })
        .await
    }

    async fn expire_leases(&self, now: Timestamp) -> Result<u64> {
        self.write(move |tx| expire_overdue(tx, None, now)).await
    }

    async fn budget_lease(&self, id: &LeaseId, now: Timestamp) -> Result<LeaseRecord> {
        let id = *id;
        let lease = self.point(move |connection| fetch_lease(connection, &id)).await?;
        if lease.state == LeaseState::Open && lease.expires_at <= now {
            return self
                .write(move |tx| {
                    let lease = fetch_lease(tx.connection, &id)?;
                    expire_if_overdue(tx, lease, now)
                })
                .await;
        }
        Ok(lease)
    }

    async fn list_leases(&self, filter: &LeaseFilter, page: &PageRequest) -> Result<Page<LeaseRecord>> {
        let before = match &page.cursor {
            Some(cursor) => LeaseId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(),
        };
        let (filter, limit) = (filter.clone(), page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM budget_leases
                         WHERE id < ?1 AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR state = ?3)
                               AND (?4 IS NULL OR agent_id IN (SELECT id FROM agents WHERE owner_id = ?4)
                                    OR account_id IN (SELECT id FROM agents WHERE owner_id = ?4))
                         ORDER BY id DESC LIMIT ?5"
                    ),
                    params![
                        before,
                        filter.agent.map(|id| id.to_string()),
                        filter.state.map(LeaseState::as_str),
                        filter.owner.map(|id| id.to_string()),
                        i64::from(limit) + 1
                    ],
                    lease_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |lease| lease.id.to_string()))
    }

    async fn ledger(&self, agent: &AgentId, allocations_only: bool, page: &PageRequest) -> Result<Page<LedgerEntry>> {
        let before = match &page.cursor {
            Some(cursor) => cursor.parse::<i64>().map_err(|_| StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let (agent, limit) = (*agent, page.limit);
        let items = self
            .scan(move |connection| {
                fetch_account(connection, &agent)?;
                collect(
                    connection,
                    "SELECT sequence, agent_id, kind, lease_id, allocated_delta, reserved_delta, spent_delta,
                         allocated_after, actor, reason, request_id, at
                     FROM budget_ledger WHERE agent_id = ?1 AND sequence < ?2 AND (?3 = 0 OR kind = 'allocate')
                     ORDER BY sequence DESC LIMIT ?4",
                    params![agent.to_string(), before, allocations_only, i64::from(limit) + 1],
                    ledger_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |entry| entry.sequence.to_string()))
    }

    async fn insert_budget_request(
        &self,
        insert: &tollgate_store::BudgetRequestInsert,
        audit: &AuditEvent,
    ) -> Result<BudgetRequestRecord> {
        budget_requests::insert(self, insert, audit).await
    }

    async fn budget_request(&self, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
        budget_requests::get(self, id).await
    }

    async fn list_budget_requests(
        &self,
        filter: &tollgate_store::BudgetRequestFilter,
        page: &PageRequest,
    ) -> Result<Page<BudgetRequestRecord>> {
        budget_requests::list(self, filter, page).await
    }

    async fn decide_budget_request(
        &self,
        decision: &tollgate_store::BudgetDecision,
        audit: &AuditEvent,
    ) -> Result<BudgetRequestRecord> {
        budget_requests::decide(self, decision, audit).await
    }

    async fn check_budgets(&self) -> Result<Option<String>> {
        self.scan(crate::budget_ledger::check).await
    }
}

//! Agent budgets on SQLite: accounts, leases and the ledger. The one writer serializes every
//! movement, so a movement's checks and its writes see one state; the table CHECKs (`spent +
//! reserved <= allocated`, `reported <= granted`) hold whoever writes.

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
use crate::budget_requests;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::record::{Encoded, record_in};
use crate::writer::Tx;

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budgets.{name}"), error))
}

const ACCOUNT_COLUMNS: &str = "agent_id, allocated, reserved, spent, paused_for_budget, updated_at";

fn account_from_row(row: &Row<'_>) -> Result<BudgetAccount> {
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

const LEASE_COLUMNS: &str = "id, agent_id, credential_id, provider, granted, reported, returned, state, refreshed_from, \
     created_at, expires_at, closed_at";

fn lease_from_row(row: &Row<'_>) -> Result<LeaseRecord> {
    let at = |index, name| Column { index, name };
    Ok(LeaseRecord {
        id: column("id", LeaseId::parse(&row.text(at(0, "id"))?))?,
        agent: column("agent_id", AgentId::parse(&row.text(at(1, "agent_id"))?))?,
        credential: column("credential_id", TokenId::parse(&row.text(at(2, "credential_id"))?))?,
        provider: column("provider", ProviderName::parse(&row.text(at(3, "provider"))?))?,
        granted: row.integer(at(4, "granted"))?,
        reported: row.integer(at(5, "reported"))?,
        returned: row.integer(at(6, "returned"))?,
        state: column("state", row.text(at(7, "state"))?.parse::<LeaseState>())?,
        refreshed_from: column(
            "refreshed_from",
            row.optional_text(at(8, "refreshed_from"))?.as_deref().map(LeaseId::parse).transpose(),
        )?,
        created_at: Timestamp::from_unix_micros(row.integer(at(9, "created_at"))?),
        expires_at: Timestamp::from_unix_micros(row.integer(at(10, "expires_at"))?),
        closed_at: row.optional_integer(at(11, "closed_at"))?.map(Timestamp::from_unix_micros),
    })
}

fn fetch_lease(connection: &Connection, id: &LeaseId) -> Result<LeaseRecord> {
    one(
        connection,
        "lease",
        &format!("SELECT {LEASE_COLUMNS} FROM budget_leases WHERE id = ?"),
        [id.to_string()],
        lease_from_row,
    )
}

/// The lease `id` of `agent` (another agent's is `NotFound`).
fn lease_of(connection: &Connection, id: &LeaseId, agent: Option<&AgentId>) -> Result<LeaseRecord> {
    let lease = fetch_lease(connection, id)?;
    if agent.is_some_and(|agent| *agent != lease.agent) {
        return Err(StoreError::NotFound { entity: "lease" });
    }
    Ok(lease)
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
fn ensure_account(connection: &Connection, agent: &AgentId, at: Timestamp) -> Result<()> {
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

/// Closes an open lease as `state`, returning its remainder; returns what was returned.
fn close(tx: &mut Tx<'_>, lease: &LeaseRecord, state: LeaseState, actor: &str, at: Timestamp) -> Result<i64> {
    let remaining = lease.remaining();
    execute(
        tx.connection,
        "UPDATE budget_leases SET state = ?2, returned = ?3, closed_at = ?4 WHERE id = ?1 AND state = 'open'",
        params![lease.id.to_string(), state.as_str(), remaining, at.unix_micros()],
    )?;
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
    apply(tx.connection, &movement)?;
    Ok(remaining)
}

/// Expires overdue open leases (of `agent`, or all), each with its audit event; returns how many.
fn expire_overdue(tx: &mut Tx<'_>, agent: Option<&AgentId>, now: Timestamp) -> Result<u64> {
    let overdue = collect(
        tx.connection,
        &format!(
            "SELECT {LEASE_COLUMNS} FROM budget_leases
             WHERE state = 'open' AND expires_at <= ?1 AND (?2 IS NULL OR agent_id = ?2) ORDER BY id"
        ),
        params![now.unix_micros(), agent.map(ToString::to_string)],
        lease_from_row,
    )?;
    for lease in &overdue {
        let returned = close(tx, lease, LeaseState::Expired, Actor::system().as_str(), now)?;
        let mut event = AuditEvent::new(Actor::system(), "budget.lease.expire", lease.id, now);
        event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
        append(tx, &event)?;
    }
    Ok(overdue.len() as u64)
}

/// Expires the lease itself when it is overdue; returns it as it is after.
fn expire_if_overdue(tx: &mut Tx<'_>, lease: LeaseRecord, now: Timestamp) -> Result<LeaseRecord> {
    if lease.state == LeaseState::Open && lease.expires_at <= now {
        expire_overdue(tx, Some(&lease.agent), now)?;
        return fetch_lease(tx.connection, &lease.id);
    }
    Ok(lease)
}

fn open_in(tx: &mut Tx<'_>, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
    ensure_account(tx.connection, &open.agent, open.at)?;
    expire_overdue(tx, Some(&open.agent), open.at)?;
    let replaced = match &open.refresh_of {
        Some(id) => {
            let lease = lease_of(tx.connection, id, Some(&open.agent))?;
            if lease.state != LeaseState::Open {
                return Err(StoreError::Conflict(format!("the lease is {}", lease.state)));
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
    let actor =
        audits.first().map_or_else(|| Actor::system().as_str().to_owned(), |event| event.actor.as_str().to_owned());
    if let Some(lease) = &replaced {
        close(tx, lease, LeaseState::Refreshed, &actor, open.at)?;
    }
    let granted = open.requested.clamp(1, available);
    execute(
        tx.connection,
        "INSERT INTO budget_leases (id, agent_id, credential_id, provider, granted, refreshed_from, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            open.id.to_string(),
            open.agent.to_string(),
            open.credential.to_string(),
            open.provider.as_str(),
            granted,
            open.refresh_of.map(|id| id.to_string()),
            open.at.unix_micros(),
            open.expires_at.unix_micros(),
        ],
    )?;
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
    for event in audits {
        let mut event = event.clone();
        if event.action == "budget.lease.open" {
            event.after =
                Some(serde_json::json!({ "agent": open.agent, "granted": granted, "provider": open.provider }));
        }
        append(tx, &event)?;
    }
    Ok(LeaseOpened::Opened(fetch_lease(tx.connection, &open.id)?, account))
}

fn report_in(tx: &mut Tx<'_>, report: &LeaseReport, encoded: Encoded, audit: &AuditEvent) -> Result<Reported> {
    let lease = lease_of(tx.connection, &report.lease, Some(&report.agent))?;
    let mut lease = expire_if_overdue(tx, lease, report.at)?;
    let fits = lease.state == LeaseState::Open && lease.reported.saturating_add(report.cost) <= lease.granted;
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

/// The budget invariants, as queries that return the first offender's description.
const CHECKS: [(&str, &str); 7] = [
    (
        "the account differs from the sum of its ledger rows",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT agent_id, sum(allocated_delta) AS al,
             sum(reserved_delta) AS re, sum(spent_delta) AS sp FROM budget_ledger GROUP BY agent_id) l USING (agent_id)
         WHERE a.allocated != coalesce(l.al, 0) OR a.reserved != coalesce(l.re, 0) OR a.spent != coalesce(l.sp, 0)
         ORDER BY a.agent_id LIMIT 1",
    ),
    ("spent + reserved exceeds allocated", "SELECT agent_id FROM budget_accounts WHERE spent + reserved > allocated LIMIT 1"),
    (
        "reserved differs from the unspent grants of open leases",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT agent_id, sum(granted - reported) AS open
             FROM budget_leases WHERE state = 'open' GROUP BY agent_id) l USING (agent_id)
         WHERE a.reserved != coalesce(l.open, 0) ORDER BY a.agent_id LIMIT 1",
    ),
    (
        "spent differs from the costs reported against its leases",
        "SELECT a.agent_id FROM budget_accounts a LEFT JOIN (SELECT agent_id, sum(reported) AS sp
             FROM budget_leases GROUP BY agent_id) l USING (agent_id)
         WHERE a.spent != coalesce(l.sp, 0) ORDER BY a.agent_id LIMIT 1",
    ),
    (
        "a lease's reported cost differs from the sum of its reports",
        "SELECT l.id FROM budget_leases l LEFT JOIN (SELECT lease_id, sum(cost) AS c FROM budget_reports GROUP BY lease_id) r
             ON r.lease_id = l.id WHERE l.reported != coalesce(r.c, 0) ORDER BY l.id LIMIT 1",
    ),
    ("a lease reported more than its grant", "SELECT id FROM budget_leases WHERE reported > granted LIMIT 1"),
    (
        "a closed lease did not return exactly its remainder",
        "SELECT id FROM budget_leases WHERE state != 'open' AND returned != granted - reported LIMIT 1",
    ),
];

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
            let returned = close(tx, &lease, state, audit.actor.as_str(), at)?;
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
                               AND (?4 IS NULL OR agent_id IN (SELECT id FROM agents WHERE owner_id = ?4))
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
        self.scan(|connection| {
            for (what, sql) in CHECKS {
                if let Some(offender) = first(connection, sql, [], |row| row.text(Column { index: 0, name: "id" }))? {
                    return Ok(Some(format!("{offender}: {what}")));
                }
            }
            Ok(None)
        })
        .await
    }
}

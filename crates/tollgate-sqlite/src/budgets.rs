//! Agent budgets on SQLite: the store trait over the leases (`budget_leases.rs`), the ledger
//! (`budget_ledger.rs`) and change requests (`budget_requests.rs`). The one writer serializes every
//! movement, so a movement's checks and its writes see one state; the table CHECKs (`spent +
//! reserved <= allocated`, `reported + delegated <= granted`) hold whoever writes.

use async_trait::async_trait;
use rusqlite::{Row, params};
use tollgate_store::{
    AllocationChange, BudgetStore, LeaseClose, LeaseFilter, LeaseOpen, LeaseOpened, LeaseReport, Page, PageRequest,
    Reported, Result, StoreError,
};
use tollgate_types::{
    AgentId, AuditEvent, BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState,
    LedgerEntry, LedgerKind, Timestamp,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::budget_leases::{
    LEASE_COLUMNS, close, expire_if_overdue, expire_overdue, fetch_lease, lease_from_row, lease_of, open_in, report_in,
};
use crate::budget_ledger::{allocate, fetch_account};
use crate::budget_requests;
use crate::columns::{Column, Columns, collect};
use crate::error::corrupt;
use crate::record::Encoded;

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budget_ledger.{name}"), error))
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

//! `BudgetStore` on PostgreSQL: each movement one transaction (see `budgets` for the locking),
//! the lists, and the invariant checks behind `tollgate budget verify`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tollgate_store::{
    AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, BudgetStore, LeaseClose, LeaseFilter,
    LeaseOpen, LeaseOpened, LeaseReport, Page, PageRequest, Reported, Result, StoreError,
};
use tollgate_types::{
    AgentId, AuditEvent, BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState,
    LedgerEntry, LedgerKind, Timestamp,
};

use crate::PgStore;
use crate::budget_requests;
use crate::budgets::{
    LEASE_COLUMNS, allocate, close, expire_if_overdue, expire_overdue, fetch_account, fetch_lease, lease_from_row,
    lock_lease, open_in, report_in,
};
use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};
use crate::store::retrying;

/// The budget invariants, as queries that return the first offender's id.
const CHECKS: [(&str, &str); 7] = [
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
        "SELECT l.id FROM budget_leases l LEFT JOIN (SELECT lease_id, sum(cost) AS c FROM budget_reports
             GROUP BY lease_id) r ON r.lease_id = l.id WHERE l.reported != coalesce(r.c, 0) ORDER BY l.id LIMIT 1",
    ),
    ("a lease reported more than its grant", "SELECT id FROM budget_leases WHERE reported > granted LIMIT 1"),
    (
        "a closed lease did not return exactly its remainder",
        "SELECT id FROM budget_leases WHERE state != 'open' AND returned != granted - reported LIMIT 1",
    ),
];

fn ledger_from_row(row: &PgRow) -> Result<LedgerEntry> {
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

async fn close_one(
    store: &PgStore,
    id: &LeaseId,
    agent: Option<&AgentId>,
    how: LeaseClose,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<(LeaseRecord, i64)> {
    let mut tx = store.begin().await?;
    let lease = lock_lease(&mut tx, id, agent).await?;
    let lease = expire_if_overdue(&mut tx, lease, at).await?;
    if lease.state != LeaseState::Open {
        tx.commit().await?;
        return Ok((lease, 0));
    }
    let state = match how {
        LeaseClose::Return => LeaseState::Returned,
        LeaseClose::Revoke => LeaseState::Revoked,
    };
    let returned = close(tx.conn(), &lease, state, audit.actor.as_str(), at).await?;
    let mut event = audit.clone();
    event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
    tx.audit(event);
    let lease = fetch_lease(tx.conn(), id, false).await?;
    tx.commit().await?;
    Ok((lease, returned))
}

/// Expires every overdue open lease, agent by agent in id order (each under its account's lock).
async fn expire_all(store: &PgStore, now: Timestamp) -> Result<u64> {
    let mut tx = store.begin().await?;
    let agents: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT agent_id FROM budget_leases WHERE state = 'open' AND expires_at <= $1 ORDER BY agent_id",
    )
    .bind(now.unix_micros())
    .fetch_all(tx.conn())
    .await
    .store()?;
    let agents: BTreeSet<AgentId> =
        agents.iter().map(|agent| parsed("budget_leases", "agent_id", AgentId::parse(agent))).collect::<Result<_>>()?;
    let mut expired = 0;
    for agent in &agents {
        sqlx::query("SELECT 1 FROM budget_accounts WHERE agent_id = $1 FOR UPDATE")
            .bind(agent.to_string())
            .fetch_optional(tx.conn())
            .await
            .store()?;
        expired += expire_overdue(&mut tx, agent, now).await?;
    }
    tx.commit().await?;
    Ok(expired)
}

#[async_trait]
impl BudgetStore for PgStore {
    async fn budget_account(&self, agent: &AgentId) -> Result<BudgetAccount> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_account(&mut connection, agent).await
    }

    async fn set_allocation(&self, change: &AllocationChange, audit: &AuditEvent) -> Result<BudgetAccount> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let account = allocate(tx.conn(), change).await?;
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(account)
        })
        .await
    }

    async fn open_lease(&self, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let opened = open_in(&mut tx, open, audits).await?;
            tx.commit().await?;
            Ok(opened)
        })
        .await
    }

    async fn report_lease(&self, report: &LeaseReport, audit: &AuditEvent) -> Result<Reported> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let reported = report_in(&mut tx, report, audit).await?;
            tx.commit().await?;
            Ok(reported)
        })
        .await
    }

    async fn close_lease(
        &self,
        lease: &LeaseId,
        agent: Option<&AgentId>,
        how: LeaseClose,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(LeaseRecord, i64)> {
        retrying(move || close_one(self, lease, agent, how, at, audit)).await
    }

    async fn expire_leases(&self, now: Timestamp) -> Result<u64> {
        retrying(move || expire_all(self, now)).await
    }

    async fn budget_lease(&self, id: &LeaseId, now: Timestamp) -> Result<LeaseRecord> {
        let lease = {
            let mut connection = self.pool().acquire().await.store()?;
            fetch_lease(&mut connection, id, false).await?
        };
        if lease.state == LeaseState::Open && lease.expires_at <= now {
            return retrying(move || async move {
                let mut tx = self.begin().await?;
                let lease = lock_lease(&mut tx, id, None).await?;
                let lease = expire_if_overdue(&mut tx, lease, now).await?;
                tx.commit().await?;
                Ok(lease)
            })
            .await;
        }
        Ok(lease)
    }

    async fn list_leases(&self, filter: &LeaseFilter, page: &PageRequest) -> Result<Page<LeaseRecord>> {
        let before = match &page.cursor {
            Some(cursor) => LeaseId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `bls_…` id (ids are in the "C" collation)
        };
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM budget_leases
             WHERE id < $1 AND ($2::text IS NULL OR agent_id = $2) AND ($3::text IS NULL OR state = $3)
                   AND ($4::text IS NULL OR agent_id IN (SELECT id FROM agents WHERE owner_id = $4))
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(before)
        .bind(filter.agent.map(|id| id.to_string()))
        .bind(filter.state.map(LeaseState::as_str))
        .bind(filter.owner.map(|id| id.to_string()))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(lease_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |lease| lease.id.to_string()))
    }

    async fn ledger(&self, agent: &AgentId, allocations_only: bool, page: &PageRequest) -> Result<Page<LedgerEntry>> {
        let before = match &page.cursor {
            Some(cursor) => cursor.parse::<i64>().map_err(|_| StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let mut connection = self.pool().acquire().await.store()?;
        fetch_account(&mut connection, agent).await?;
        let rows = sqlx::query(
            "SELECT sequence, agent_id, kind, lease_id, allocated_delta, reserved_delta, spent_delta,
                 allocated_after, actor, reason, request_id, at
             FROM budget_ledger WHERE agent_id = $1 AND sequence < $2 AND (NOT $3 OR kind = 'allocate')
             ORDER BY sequence DESC LIMIT $4",
        )
        .bind(agent.to_string())
        .bind(before)
        .bind(allocations_only)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *connection)
        .await
        .store()?;
        let items = rows.iter().map(ledger_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |entry| entry.sequence.to_string()))
    }

    async fn insert_budget_request(
        &self,
        insert: &BudgetRequestInsert,
        audit: &AuditEvent,
    ) -> Result<BudgetRequestRecord> {
        budget_requests::insert(self, insert, audit).await
    }

    async fn budget_request(&self, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
        budget_requests::get_one(self, id).await
    }

    async fn list_budget_requests(
        &self,
        filter: &BudgetRequestFilter,
        page: &PageRequest,
    ) -> Result<Page<BudgetRequestRecord>> {
        budget_requests::list(self, filter, page).await
    }

    async fn decide_budget_request(
        &self,
        decision: &BudgetDecision,
        audit: &AuditEvent,
    ) -> Result<BudgetRequestRecord> {
        budget_requests::decide(self, decision, audit).await
    }

    async fn check_budgets(&self) -> Result<Option<String>> {
        let mut connection = self.pool().acquire().await.store()?;
        for (what, sql) in CHECKS {
            let offender: Option<String> = sqlx::query_scalar(sql).fetch_optional(&mut *connection).await.store()?;
            if let Some(offender) = offender {
                return Ok(Some(format!("{offender}: {what}")));
            }
        }
        Ok(None)
    }
}

//! `BudgetStore` on PostgreSQL: each movement one transaction (see `budgets` for the locking),
//! the lists, and the invariant checks behind `tollgate budget verify` (in `budget_ledger`).

use std::collections::BTreeSet;

use async_trait::async_trait;
use tollgate_store::{
    AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, BudgetStore, LeaseClose, LeaseFilter,
    LeaseOpen, LeaseOpened, LeaseReport, Page, PageRequest, Reported, Result, StoreError,
};
use tollgate_types::{
    AgentId, AuditEvent, BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState,
    LedgerEntry, Timestamp,
};

use crate::PgStore;
use crate::budget_ledger::{LEDGER_COLUMNS, allocate, check, fetch_account, ledger_from_row};
use crate::budget_requests;
use crate::budgets::{
    LEASE_COLUMNS, close, expire_if_overdue, expire_overdue, fetch_lease, lease_from_row, lock_lease, open_in,
    report_in,
};
use crate::error::PgResultExt;
use crate::rows::parsed;
use crate::store::retrying;

async fn close_lease_in(
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
    let returned = close(tx.conn(), &lease.id, state, audit.actor.as_str(), at).await?;
    let mut event = audit.clone();
    event.after = Some(serde_json::json!({ "agent": lease.agent, "returned": returned }));
    tx.audit(event);
    let lease = fetch_lease(tx.conn(), id, false).await?;
    tx.commit().await?;
    Ok((lease, returned))
}

/// Expires every overdue open lease, account by account in id order (each under its lock).
async fn expire_all(store: &PgStore, now: Timestamp) -> Result<u64> {
    let mut tx = store.begin().await?;
    let accounts: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM budget_leases WHERE state = 'open' AND expires_at <= $1 ORDER BY account_id",
    )
    .bind(now.unix_micros())
    .fetch_all(tx.conn())
    .await
    .store()?;
    let accounts: BTreeSet<AgentId> = accounts
        .iter()
        .map(|account| parsed("budget_leases", "account_id", AgentId::parse(account)))
        .collect::<Result<_>>()?;
    let mut expired = 0;
    for account in &accounts {
        sqlx::query("SELECT 1 FROM budget_accounts WHERE agent_id = $1 FOR UPDATE")
            .bind(account.to_string())
            .fetch_optional(tx.conn())
            .await
            .store()?;
        expired += expire_overdue(&mut tx, account, now).await?;
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
        retrying(move || close_lease_in(self, lease, agent, how, at, audit)).await
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
                   AND ($4::text IS NULL OR agent_id IN (SELECT id FROM agents WHERE owner_id = $4)
                        OR account_id IN (SELECT id FROM agents WHERE owner_id = $4))
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
        let rows = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM budget_ledger
             WHERE agent_id = $1 AND sequence < $2 AND (NOT $3 OR kind = 'allocate')
             ORDER BY sequence DESC LIMIT $4"
        ))
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
        check(&mut connection).await
    }
}

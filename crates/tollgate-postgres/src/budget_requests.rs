//! Budget change requests on PostgreSQL: made by an agent's owner, decided by an admin; an approval
//! sets the allocation in the same transaction as the decision (the request's row is locked, so
//! two decisions on one request cannot both pass).

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, Page, PageRequest, Result, StoreError,
};
use tollgate_types::{AgentId, AuditEvent, BudgetRequestId, BudgetRequestRecord, OwnerId, RequestState};

use crate::PgStore;
use crate::budget_ledger::allocate;
use crate::error::PgResultExt;
use crate::rows::{get, optional_time, parsed, time};
use crate::store::retrying;

const COLUMNS: &str = "id, agent_id, requester, requester_owner, requested_allocation, justification, state, decided_by, \
     decision_reason, created_at, decided_at";
const TABLE: &str = "budget_requests";

fn request_from_row(row: &PgRow) -> Result<BudgetRequestRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, column) };
    let requester_owner: Option<String> = get(row, TABLE, "requester_owner")?;
    Ok(BudgetRequestRecord {
        id: parsed(TABLE, "id", BudgetRequestId::parse(&text("id")?))?,
        agent: parsed(TABLE, "agent_id", AgentId::parse(&text("agent_id")?))?,
        requester: text("requester")?,
        requester_owner: parsed(TABLE, "requester_owner", requester_owner.as_deref().map(OwnerId::parse).transpose())?,
        requested_allocation: get(row, TABLE, "requested_allocation")?,
        justification: text("justification")?,
        state: parsed(TABLE, "state", text("state")?.parse::<RequestState>())?,
        decided_by: get(row, TABLE, "decided_by")?,
        decision_reason: get(row, TABLE, "decision_reason")?,
        created_at: time(row, TABLE, "created_at")?,
        decided_at: optional_time(row, TABLE, "decided_at")?,
    })
}

async fn fetch(connection: &mut PgConnection, id: &BudgetRequestId, lock: bool) -> Result<BudgetRequestRecord> {
    let sql = format!("SELECT {COLUMNS} FROM budget_requests WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(request_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "budget_request" })
}

pub(crate) async fn insert(
    store: &PgStore,
    insert: &BudgetRequestInsert,
    audit: &AuditEvent,
) -> Result<BudgetRequestRecord> {
    retrying(move || async move {
        let mut tx = store.begin().await?;
        let agent: Option<i32> = sqlx::query_scalar("SELECT 1 FROM agents WHERE id = $1 AND deleted_at IS NULL")
            .bind(insert.agent.to_string())
            .fetch_optional(tx.conn())
            .await
            .store()?;
        agent.ok_or(StoreError::NotFound { entity: "agent" })?;
        sqlx::query(
            "INSERT INTO budget_requests (id, agent_id, requester, requester_owner, requested_allocation,
                 justification, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(insert.id.to_string())
        .bind(insert.agent.to_string())
        .bind(&insert.requester)
        .bind(insert.requester_owner.map(|owner| owner.to_string()))
        .bind(insert.requested_allocation)
        .bind(&insert.justification)
        .bind(insert.at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
        let record = fetch(tx.conn(), &insert.id, false).await?;
        tx.audit(audit.clone());
        tx.commit().await?;
        Ok(record)
    })
    .await
}

pub(crate) async fn get_one(store: &PgStore, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
    let mut connection = store.pool().acquire().await.store()?;
    fetch(&mut connection, id, false).await
}

pub(crate) async fn list(
    store: &PgStore,
    filter: &BudgetRequestFilter,
    page: &PageRequest,
) -> Result<Page<BudgetRequestRecord>> {
    let before = match &page.cursor {
        Some(cursor) => BudgetRequestId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
        None => "~".to_owned(), // sorts after every `brq_…` id (ids are in the "C" collation)
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM budget_requests
         WHERE id < $1 AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR requester_owner = $3
                    OR agent_id IN (SELECT id FROM agents WHERE owner_id = $3))
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(before)
    .bind(filter.state.map(RequestState::as_str))
    .bind(filter.owner.map(|owner| owner.to_string()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(store.pool())
    .await
    .store()?;
    let items = rows.iter().map(request_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |request| request.id.to_string()))
}

pub(crate) async fn decide(
    store: &PgStore,
    decision: &BudgetDecision,
    audit: &AuditEvent,
) -> Result<BudgetRequestRecord> {
    retrying(move || async move {
        let mut tx = store.begin().await?;
        let request = fetch(tx.conn(), &decision.id, true).await?;
        if request.state != RequestState::Pending {
            return Err(StoreError::Conflict(format!("the request is already {}", request.state)));
        }
        if decision.state == RequestState::Approved {
            let change = AllocationChange {
                agent: request.agent,
                allocated: request.requested_allocation,
                actor: decision.actor.clone(),
                reason: decision.reason.clone().or_else(|| Some(request.justification.clone())),
                request: Some(request.id),
                at: decision.at,
            };
            allocate(tx.conn(), &change).await?;
        }
        sqlx::query(
            "UPDATE budget_requests SET state = $2, decided_by = $3, decision_reason = $4, decided_at = $5
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(decision.id.to_string())
        .bind(decision.state.as_str())
        .bind(&decision.actor)
        .bind(decision.reason.as_deref())
        .bind(decision.at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
        let record = fetch(tx.conn(), &decision.id, false).await?;
        tx.audit(audit.clone());
        tx.commit().await?;
        Ok(record)
    })
    .await
}

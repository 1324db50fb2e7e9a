//! Budget change requests on SQLite: made by an agent's owner, decided by an admin; an approval
//! sets the allocation in the same transaction as the decision.

use rusqlite::{Connection, Row, params};
use tollgate_store::{
    AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, Page, PageRequest, Result, StoreError,
};
use tollgate_types::{AgentId, AuditEvent, BudgetRequestId, BudgetRequestRecord, OwnerId, RequestState, Timestamp};

use crate::SqliteStore;
use crate::audit::append;
use crate::budget_ledger::allocate;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;

const COLUMNS: &str = "id, agent_id, requester, requester_owner, requested_allocation, justification, state, decided_by, \
     decision_reason, created_at, decided_at";

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("budget_requests.{name}"), error))
}

fn request_from_row(row: &Row<'_>) -> Result<BudgetRequestRecord> {
    let at = |index, name| Column { index, name };
    Ok(BudgetRequestRecord {
        id: column("id", BudgetRequestId::parse(&row.text(at(0, "id"))?))?,
        agent: column("agent_id", AgentId::parse(&row.text(at(1, "agent_id"))?))?,
        requester: row.text(at(2, "requester"))?,
        requester_owner: column(
            "requester_owner",
            row.optional_text(at(3, "requester_owner"))?.as_deref().map(OwnerId::parse).transpose(),
        )?,
        requested_allocation: row.integer(at(4, "requested_allocation"))?,
        justification: row.text(at(5, "justification"))?,
        state: column("state", row.text(at(6, "state"))?.parse::<RequestState>())?,
        decided_by: row.optional_text(at(7, "decided_by"))?,
        decision_reason: row.optional_text(at(8, "decision_reason"))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(9, "created_at"))?),
        decided_at: row.optional_integer(at(10, "decided_at"))?.map(Timestamp::from_unix_micros),
    })
}

fn fetch(connection: &Connection, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
    one(
        connection,
        "budget_request",
        &format!("SELECT {COLUMNS} FROM budget_requests WHERE id = ?"),
        [id.to_string()],
        request_from_row,
    )
}

pub(crate) async fn insert(
    store: &SqliteStore,
    insert: &BudgetRequestInsert,
    audit: &AuditEvent,
) -> Result<BudgetRequestRecord> {
    let (insert, audit) = (insert.clone(), audit.clone());
    store
        .write(move |tx| {
            first(
                tx.connection,
                "SELECT 1 FROM agents WHERE id = ? AND deleted_at IS NULL",
                [insert.agent.to_string()],
                |_| Ok(()),
            )?
            .ok_or(StoreError::NotFound { entity: "agent" })?;
            execute(
                tx.connection,
                "INSERT INTO budget_requests (id, agent_id, requester, requester_owner, requested_allocation,
                     justification, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    insert.agent.to_string(),
                    &insert.requester,
                    insert.requester_owner.map(|owner| owner.to_string()),
                    insert.requested_allocation,
                    &insert.justification,
                    insert.at.unix_micros(),
                ],
            )?;
            let record = fetch(tx.connection, &insert.id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
}

pub(crate) async fn get(store: &SqliteStore, id: &BudgetRequestId) -> Result<BudgetRequestRecord> {
    let id = *id;
    store.point(move |connection| fetch(connection, &id)).await
}

pub(crate) async fn list(
    store: &SqliteStore,
    filter: &BudgetRequestFilter,
    page: &PageRequest,
) -> Result<Page<BudgetRequestRecord>> {
    let before = match &page.cursor {
        Some(cursor) => BudgetRequestId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
        None => "~".to_owned(),
    };
    let (filter, limit) = (filter.clone(), page.limit);
    let items = store
        .scan(move |connection| {
            collect(
                connection,
                &format!(
                    "SELECT {COLUMNS} FROM budget_requests
                     WHERE id < ?1 AND (?2 IS NULL OR state = ?2)
                           AND (?3 IS NULL OR requester_owner = ?3
                                OR agent_id IN (SELECT id FROM agents WHERE owner_id = ?3))
                     ORDER BY id DESC LIMIT ?4"
                ),
                params![
                    before,
                    filter.state.map(RequestState::as_str),
                    filter.owner.map(|owner| owner.to_string()),
                    i64::from(limit) + 1
                ],
                request_from_row,
            )
        })
        .await?;
    Ok(Page::from_overfetch(items, limit, |request| request.id.to_string()))
}

pub(crate) async fn decide(
    store: &SqliteStore,
    decision: &BudgetDecision,
    audit: &AuditEvent,
) -> Result<BudgetRequestRecord> {
    let (decision, audit) = (decision.clone(), audit.clone());
    store
        .write(move |tx| {
            let request = fetch(tx.connection, &decision.id)?;
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
                allocate(tx, &change)?;
            }
            execute(
                tx.connection,
                "UPDATE budget_requests SET state = ?2, decided_by = ?3, decision_reason = ?4, decided_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
                params![
                    decision.id.to_string(),
                    decision.state.as_str(),
                    &decision.actor,
                    decision.reason.as_deref(),
                    decision.at.unix_micros()
                ],
            )?;
            let record = fetch(tx.connection, &decision.id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
}

//! Request traces on SQLite: one row each, attributed from the token row in the same statement.

use async_trait::async_trait;
use rusqlite::{Row, params};
use tollgate_store::{Page, PageRequest, Result, StoreError, TraceFilter, TraceInsert, TraceStore, TracesPurged};
use tollgate_types::{
    AgentId, Endpoint, Microdollars, ModelName, OwnerId, ProjectId, ProviderName, Timestamp, TokenId, TraceId,
    TraceRecord,
};

use crate::SqliteStore;
use crate::columns::{Column, Columns, collect, execute, one, scalar};
use crate::error::corrupt;

const COLUMNS: &str = "id, token_id, agent_id, owner_id, project_id, at, endpoint, provider, model, status, \
                       latency_ms, input_tokens, output_tokens, cost_micros, request_payload, response_payload, \
                       payload_bytes, truncated";

fn parsed<T>(column: &'static str, text: Option<String>, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
    text.map(|text| parse(&text).ok_or_else(|| corrupt(column, "not a valid value"))).transpose()
}

fn count(row: &Row<'_>, index: usize, name: &'static str) -> Result<u32> {
    u32::try_from(row.integer(Column { index, name })?).map_err(|error| corrupt(name, error))
}

fn trace_from_row(row: &Row<'_>) -> Result<TraceRecord> {
    let text = |index, name| row.optional_text(Column { index, name });
    Ok(TraceRecord {
        id: parsed("traces.id", text(0, "traces.id")?, |id| TraceId::parse(id).ok())?
            .ok_or_else(|| corrupt("traces.id", "missing"))?,
        token_id: parsed("traces.token_id", text(1, "traces.token_id")?, |id| TokenId::parse(id).ok())?
            .ok_or_else(|| corrupt("traces.token_id", "missing"))?,
        agent_id: parsed("traces.agent_id", text(2, "traces.agent_id")?, |id| AgentId::parse(id).ok())?,
        owner: parsed("traces.owner_id", text(3, "traces.owner_id")?, |id| OwnerId::parse(id).ok())?,
        project_id: parsed("traces.project_id", text(4, "traces.project_id")?, |id| ProjectId::parse(id).ok())?,
        at: Timestamp::from_unix_micros(row.integer(Column { index: 5, name: "traces.at" })?),
        endpoint: parsed("traces.endpoint", text(6, "traces.endpoint")?, |text| Endpoint::parse(text).ok())?,
        provider: parsed("traces.provider", text(7, "traces.provider")?, |text| ProviderName::parse(text).ok())?,
        model: parsed("traces.model", text(8, "traces.model")?, |text| ModelName::parse(text).ok())?,
        status: u16::try_from(row.integer(Column { index: 9, name: "traces.status" })?)
            .map_err(|error| corrupt("traces.status", error))?,
        latency_ms: row
            .optional_integer(Column { index: 10, name: "traces.latency_ms" })?
            .map(|latency| u32::try_from(latency).map_err(|error| corrupt("traces.latency_ms", error)))
            .transpose()?,
        input_tokens: count(row, 11, "traces.input_tokens")?,
        output_tokens: count(row, 12, "traces.output_tokens")?,
        cost: Microdollars::from_micros(row.integer(Column { index: 13, name: "traces.cost_micros" })?),
        request: text(14, "traces.request_payload")?,
        response: text(15, "traces.response_payload")?,
        payload_bytes: u64::try_from(row.integer(Column { index: 16, name: "traces.payload_bytes" })?).unwrap_or(0),
        truncated: row.integer(Column { index: 17, name: "traces.truncated" })? == 1,
    })
}

#[async_trait]
impl TraceStore for SqliteStore {
    async fn insert_trace(&self, insert: &TraceInsert) -> Result<TraceRecord> {
        let insert = insert.clone();
        self.write(move |tx| {
            let trace = &insert.trace;
            let sql = format!(
                "INSERT INTO traces ({COLUMNS})
                 SELECT ?1, t.id, t.agent_id, t.owner_id, t.project_id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                        ?13, ?14
                 FROM tokens t WHERE t.id = ?15
                 RETURNING {COLUMNS}"
            );
            let rows = collect(
                tx.connection,
                &sql,
                params![
                    insert.id.to_string(),
                    trace.at.unix_micros(),
                    trace.endpoint.as_ref().map(Endpoint::as_str),
                    trace.provider.as_ref().map(ProviderName::as_str),
                    trace.model.as_ref().map(ModelName::as_str),
                    i64::from(trace.status),
                    trace.latency_ms.map(i64::from),
                    i64::from(trace.input_tokens),
                    i64::from(trace.output_tokens),
                    trace.cost.micros(),
                    trace.request,
                    trace.response,
                    i64::try_from(insert.payload_bytes()).unwrap_or(i64::MAX),
                    insert.truncated,
                    trace.token_id.to_string(),
                ],
                trace_from_row,
            )?;
            rows.into_iter().next().ok_or(StoreError::NotFound { entity: "token" })
        })
        .await
    }

    async fn trace(&self, id: &TraceId) -> Result<TraceRecord> {
        let id = id.to_string();
        self.scan(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM traces WHERE id = ?1");
            one(connection, "trace", &sql, params![id], trace_from_row)
        })
        .await
    }

    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceRecord>> {
        let before = page.cursor.as_deref().map(TraceId::parse).transpose().map_err(|_| StoreError::InvalidCursor)?;
        let filter = filter.clone();
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let items = self
            .scan(move |connection| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM traces
                     WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR token_id = ?2) AND (?3 IS NULL OR owner_id = ?3)
                       AND (?4 IS NULL OR agent_id = ?4) AND (?5 IS NULL OR provider = ?5) AND (?6 IS NULL OR model = ?6)
                       AND (?7 IS NULL OR status >= ?7) AND (?8 IS NULL OR status <= ?8)
                       AND (?9 IS NULL OR at >= ?9) AND (?10 IS NULL OR at < ?10)
                     ORDER BY id DESC LIMIT ?11"
                );
                collect(
                    connection,
                    &sql,
                    params![
                        before.map(|id| id.to_string()),
                        filter.token_id.map(|id| id.to_string()),
                        filter.owner.map(|id| id.to_string()),
                        filter.agent.map(|id| id.to_string()),
                        filter.provider.as_ref().map(ProviderName::as_str),
                        filter.model.as_ref().map(ModelName::as_str),
                        filter.min_status.map(i64::from),
                        filter.max_status.map(i64::from),
                        filter.since.map(Timestamp::unix_micros),
                        filter.until.map(Timestamp::unix_micros),
                        i64::from(limit) + 1,
                    ],
                    trace_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |trace| trace.id.to_string()))
    }

    async fn purge_traces(&self, before: Timestamp, max_payload_bytes: u64) -> Result<TracesPurged> {
        let max = i64::try_from(max_payload_bytes).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let by_age = execute(tx.connection, "DELETE FROM traces WHERE at < ?1", params![before.unix_micros()])?;
            // Newest first, the running total of payload bytes: what passes the maximum goes.
            let by_size = execute(
                tx.connection,
                "DELETE FROM traces WHERE id IN (
                    SELECT id FROM (SELECT id, sum(payload_bytes) OVER (ORDER BY id DESC) AS kept FROM traces)
                    WHERE kept > ?1)",
                params![max],
            )?;
            Ok(TracesPurged { by_age, by_size })
        })
        .await
    }

    async fn trace_payload_bytes(&self) -> Result<u64> {
        self.scan(|connection| {
            let total: i64 = scalar(connection, "SELECT coalesce(sum(payload_bytes), 0) FROM traces", [])?;
            Ok(u64::try_from(total).unwrap_or(0))
        })
        .await
    }
}

//! Request traces on PostgreSQL: one row each, attributed from the token row in the same statement.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tollgate_store::{Page, PageRequest, Result, StoreError, TraceFilter, TraceInsert, TraceStore, TracesPurged};
use tollgate_types::{
    AgentId, Endpoint, Microdollars, ModelName, OwnerId, ProjectId, ProviderName, Timestamp, TokenId, TraceId,
    TraceRecord,
};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};
use crate::store::retrying;

const TABLE: &str = "traces";
const COLUMNS: &str = "id, token_id, agent_id, owner_id, project_id, at, endpoint, provider, model, status, \
                       latency_ms, input_tokens, output_tokens, cost_micros, request_payload, response_payload, \
                       payload_bytes, truncated";

fn optional<T, E: std::fmt::Display>(
    row: &PgRow,
    column: &str,
    parse: impl Fn(&str) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    get::<Option<String>>(row, TABLE, column)?.map(|text| parsed(TABLE, column, parse(&text))).transpose()
}

fn small<T: TryFrom<i64>>(row: &PgRow, column: &str) -> Result<T>
where
    T::Error: std::fmt::Display,
{
    parsed(TABLE, column, T::try_from(get::<i64>(row, TABLE, column)?))
}

fn trace_from_row(row: &PgRow) -> Result<TraceRecord> {
    Ok(TraceRecord {
        id: parsed(TABLE, "id", TraceId::parse(&get::<String>(row, TABLE, "id")?))?,
        token_id: parsed(TABLE, "token_id", TokenId::parse(&get::<String>(row, TABLE, "token_id")?))?,
        agent_id: optional(row, "agent_id", AgentId::parse)?,
        owner: optional(row, "owner_id", OwnerId::parse)?,
        project_id: optional(row, "project_id", ProjectId::parse)?,
        at: time(row, TABLE, "at")?,
        endpoint: optional(row, "endpoint", Endpoint::parse)?,
        provider: optional(row, "provider", ProviderName::parse)?,
        model: optional(row, "model", ModelName::parse)?,
        status: small(row, "status")?,
        latency_ms: get::<Option<i64>>(row, TABLE, "latency_ms")?
            .map(|latency| parsed(TABLE, "latency_ms", u32::try_from(latency)))
            .transpose()?,
        input_tokens: small(row, "input_tokens")?,
        output_tokens: small(row, "output_tokens")?,
        cost: Microdollars::from_micros(get(row, TABLE, "cost_micros")?),
        request: get(row, TABLE, "request_payload")?,
        response: get(row, TABLE, "response_payload")?,
        payload_bytes: small(row, "payload_bytes")?,
        truncated: get(row, TABLE, "truncated")?,
    })
}

#[async_trait]
impl TraceStore for PgStore {
    async fn insert_trace(&self, insert: &TraceInsert) -> Result<TraceRecord> {
        let sql = format!(
            "INSERT INTO traces ({COLUMNS})
             SELECT $1, t.id, t.agent_id, t.owner_id, t.project_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                    $14
             FROM tokens t WHERE t.id = $15
             RETURNING {COLUMNS}"
        );
        let sql = &sql;
        let row = retrying(move || async move {
            let trace = &insert.trace;
            sqlx::query(sql)
                .bind(insert.id.to_string())
                .bind(trace.at.unix_micros())
                .bind(trace.endpoint.as_ref().map(Endpoint::as_str))
                .bind(trace.provider.as_ref().map(ProviderName::as_str))
                .bind(trace.model.as_ref().map(ModelName::as_str))
                .bind(i64::from(trace.status))
                .bind(trace.latency_ms.map(i64::from))
                .bind(i64::from(trace.input_tokens))
                .bind(i64::from(trace.output_tokens))
                .bind(trace.cost.micros())
                .bind(trace.request.as_deref())
                .bind(trace.response.as_deref())
                .bind(i64::try_from(insert.payload_bytes()).unwrap_or(i64::MAX))
                .bind(insert.truncated)
                .bind(trace.token_id.to_string())
                .fetch_optional(self.pool())
                .await
                .store()
        })
        .await?;
        trace_from_row(&row.ok_or(StoreError::NotFound { entity: "token" })?)
    }

    async fn trace(&self, id: &TraceId) -> Result<TraceRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM traces WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .store()?;
        trace_from_row(&row.ok_or(StoreError::NotFound { entity: "trace" })?)
    }

    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceRecord>> {
        let before = page.cursor.as_deref().map(TraceId::parse).transpose().map_err(|_| StoreError::InvalidCursor)?;
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM traces
             WHERE ($1::text IS NULL OR id < $1) AND ($2::text IS NULL OR token_id = $2)
               AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR agent_id = $4)
               AND ($5::text IS NULL OR provider = $5) AND ($6::text IS NULL OR model = $6)
               AND ($7::bigint IS NULL OR status >= $7) AND ($8::bigint IS NULL OR status <= $8)
               AND ($9::bigint IS NULL OR at >= $9) AND ($10::bigint IS NULL OR at < $10)
             ORDER BY id DESC LIMIT $11"
        ))
        .bind(before.map(|id| id.to_string()))
        .bind(filter.token_id.map(|id| id.to_string()))
        .bind(filter.owner.map(|id| id.to_string()))
        .bind(filter.agent.map(|id| id.to_string()))
        .bind(filter.provider.as_ref().map(ProviderName::as_str))
        .bind(filter.model.as_ref().map(ModelName::as_str))
        .bind(filter.min_status.map(i64::from))
        .bind(filter.max_status.map(i64::from))
        .bind(filter.since.map(Timestamp::unix_micros))
        .bind(filter.until.map(Timestamp::unix_micros))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(trace_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |trace| trace.id.to_string()))
    }

    async fn purge_traces(&self, before: Timestamp, max_payload_bytes: u64) -> Result<TracesPurged> {
        let max = i64::try_from(max_payload_bytes).unwrap_or(i64::MAX);
        retrying(move || async move {
            let mut tx = self.pool().begin().await.store()?;
            let by_age =
                sqlx::query("DELETE FROM traces WHERE at < $1").bind(before.unix_micros()).execute(&mut *tx).await.store()?;
            // Newest first, the running total of payload bytes: what passes the maximum goes.
            let by_size = sqlx::query(
                "DELETE FROM traces WHERE id IN (
                    SELECT id FROM (SELECT id, sum(payload_bytes) OVER (ORDER BY id DESC) AS kept FROM traces) AS running
                    WHERE kept > $1)",
            )
            .bind(max)
            .execute(&mut *tx)
            .await
            .store()?;
            tx.commit().await.store()?;
            Ok(TracesPurged { by_age: by_age.rows_affected(), by_size: by_size.rows_affected() })
        })
        .await
    }

    async fn trace_payload_bytes(&self) -> Result<u64> {
        let total: i64 = sqlx::query_scalar("SELECT coalesce(sum(payload_bytes), 0)::bigint FROM traces")
            .fetch_one(self.pool())
            .await
            .store()?;
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

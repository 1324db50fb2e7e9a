//! Model price overrides on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tollgate_store::{PriceRecord, PriceStore, Result, StoreError};
use tollgate_types::{AuditEvent, Microdollars, ModelName, ModelPrice, ProviderName, Timestamp};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};
use crate::store::retrying;

const COLUMNS: &str = "provider, model, input_per_million_micros, output_per_million_micros, updated_at";
const TABLE: &str = "model_prices";

fn price_from_row(row: &PgRow) -> Result<PriceRecord> {
    let price = ModelPrice::new(
        parsed(TABLE, "provider", ProviderName::parse(&get::<String>(row, TABLE, "provider")?))?,
        parsed(TABLE, "model", ModelName::parse(&get::<String>(row, TABLE, "model")?))?,
        Microdollars::from_micros(get(row, TABLE, "input_per_million_micros")?),
        Microdollars::from_micros(get(row, TABLE, "output_per_million_micros")?),
    );
    Ok(PriceRecord { price: parsed(TABLE, "price", price)?, updated_at: time(row, TABLE, "updated_at")? })
}

async fn put(store: &PgStore, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO model_prices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, model) DO UPDATE SET
            input_per_million_micros = excluded.input_per_million_micros,
            output_per_million_micros = excluded.output_per_million_micros, updated_at = excluded.updated_at
         RETURNING {COLUMNS}"
    ))
    .bind(price.provider().as_str())
    .bind(price.model().as_str())
    .bind(price.input_per_million().micros())
    .bind(price.output_per_million().micros())
    .bind(at.unix_micros())
    .fetch_one(tx.conn())
    .await
    .store()?;
    let record = price_from_row(&row)?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn delete(
    store: &PgStore,
    provider: &ProviderName,
    model: &ModelName,
    audit: &AuditEvent,
) -> Result<PriceRecord> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!("DELETE FROM model_prices WHERE provider = $1 AND model = $2 RETURNING {COLUMNS}"))
        .bind(provider.as_str())
        .bind(model.as_str())
        .fetch_optional(tx.conn())
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "price" })?;
    let record = price_from_row(&row)?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

#[async_trait]
impl PriceStore for PgStore {
    async fn put_price(&self, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord> {
        retrying(move || put(self, price, at, audit)).await
    }

    async fn delete_price(
        &self,
        provider: &ProviderName,
        model: &ModelName,
        audit: &AuditEvent,
    ) -> Result<PriceRecord> {
        retrying(move || delete(self, provider, model, audit)).await
    }

    async fn prices(&self) -> Result<Vec<PriceRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM model_prices ORDER BY provider, model"))
            .fetch_all(self.pool())
            .await
            .store()?;
        rows.iter().map(price_from_row).collect()
    }
}

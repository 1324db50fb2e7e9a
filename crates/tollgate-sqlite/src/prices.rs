//! Model price overrides on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tollgate_store::{PriceRecord, PriceStore, Result, StoreError};
use tollgate_types::{AuditEvent, Microdollars, ModelName, ModelPrice, ProviderName, Timestamp};

use crate::SqliteStore;
use crate::audit::append;
use crate::error::{SqlxResultExt, corrupt};

const COLUMNS: &str = "provider, model, input_per_million_micros, output_per_million_micros, updated_at";

fn price_from_row(row: &SqliteRow) -> Result<PriceRecord> {
    let price = ModelPrice::new(
        ProviderName::parse(row.get("provider")).map_err(|e| corrupt("model_prices.provider", e))?,
        ModelName::parse(row.get("model")).map_err(|e| corrupt("model_prices.model", e))?,
        Microdollars::from_micros(row.get("input_per_million_micros")),
        Microdollars::from_micros(row.get("output_per_million_micros")),
    )
    .map_err(|e| corrupt("model_prices", e))?;
    Ok(PriceRecord { price, updated_at: Timestamp::from_unix_micros(row.get("updated_at")) })
}

#[async_trait]
impl PriceStore for SqliteStore {
    async fn put_price(&self, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO model_prices ({COLUMNS}) VALUES (?, ?, ?, ?, ?)
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
        .fetch_one(&mut *transaction)
        .await
        .store()?;
        let record = price_from_row(&row)?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn delete_price(
        &self,
        provider: &ProviderName,
        model: &ModelName,
        audit: &AuditEvent,
    ) -> Result<PriceRecord> {
        let mut transaction = self.write().await?;
        let row =
            sqlx::query(&format!("DELETE FROM model_prices WHERE provider = ? AND model = ? RETURNING {COLUMNS}"))
                .bind(provider.as_str())
                .bind(model.as_str())
                .fetch_optional(&mut *transaction)
                .await
                .store()?
                .ok_or(StoreError::NotFound { entity: "price" })?;
        let record = price_from_row(&row)?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(record)
    }

    async fn prices(&self) -> Result<Vec<PriceRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM model_prices ORDER BY provider, model"))
            .fetch_all(&self.reader)
            .await
            .store()?;
        rows.iter().map(price_from_row).collect()
    }
}

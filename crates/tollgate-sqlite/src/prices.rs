//! Model price overrides on SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};
use tollgate_store::{PriceRecord, PriceStore, Result};
use tollgate_types::{AuditEvent, Microdollars, ModelName, ModelPrice, ProviderName, Timestamp};

use crate::SqliteStore;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, one};
use crate::error::corrupt;

const COLUMNS: &str = "provider, model, input_per_million_micros, output_per_million_micros, updated_at";
const NAMES: [&str; 5] = ["provider", "model", "input_per_million_micros", "output_per_million_micros", "updated_at"];

fn at(index: usize) -> Column {
    Column { index, name: NAMES[index] }
}

fn price_from_row(row: &Row<'_>) -> Result<PriceRecord> {
    let price = ModelPrice::new(
        ProviderName::parse(&row.text(at(0))?).map_err(|e| corrupt("model_prices.provider", e))?,
        ModelName::parse(&row.text(at(1))?).map_err(|e| corrupt("model_prices.model", e))?,
        Microdollars::from_micros(row.integer(at(2))?),
        Microdollars::from_micros(row.integer(at(3))?),
    )
    .map_err(|e| corrupt("model_prices", e))?;
    Ok(PriceRecord { price, updated_at: Timestamp::from_unix_micros(row.integer(at(4))?) })
}

#[async_trait]
impl PriceStore for SqliteStore {
    async fn put_price(&self, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord> {
        let (price, audit) = (price.clone(), audit.clone());
        self.write(move |tx| {
            let record = one(
                tx.connection,
                "price",
                &format!(
                    "INSERT INTO model_prices ({COLUMNS}) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (provider, model) DO UPDATE SET
                        input_per_million_micros = excluded.input_per_million_micros,
                        output_per_million_micros = excluded.output_per_million_micros, updated_at = excluded.updated_at
                     RETURNING {COLUMNS}"
                ),
                params![
                    price.provider().as_str(),
                    price.model().as_str(),
                    price.input_per_million().micros(),
                    price.output_per_million().micros(),
                    at.unix_micros()
                ],
                price_from_row,
            )?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn delete_price(
        &self,
        provider: &ProviderName,
        model: &ModelName,
        audit: &AuditEvent,
    ) -> Result<PriceRecord> {
        let (provider, model, audit) = (provider.clone(), model.clone(), audit.clone());
        self.write(move |tx| {
            let record = one(
                tx.connection,
                "price",
                &format!("DELETE FROM model_prices WHERE provider = ? AND model = ? RETURNING {COLUMNS}"),
                params![provider.as_str(), model.as_str()],
                price_from_row,
            )?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn prices(&self) -> Result<Vec<PriceRecord>> {
        self.scan(|connection| {
            collect(
                connection,
                &format!("SELECT {COLUMNS} FROM model_prices ORDER BY provider, model"),
                [],
                price_from_row,
            )
        })
        .await
    }
}

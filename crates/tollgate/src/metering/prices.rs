//! The price table: list prices shipped with tollgate (`prices.toml`), an operator's TOML file, and
//! overrides stored in the database, in rising precedence. Lookups are in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tollgate_store::PriceRecord;
use tollgate_types::{Microdollars, ModelName, ModelPrice, ProviderName, Timestamp, ValidationError};

/// The list prices tollgate ships with.
const SHIPPED_PRICES: &str = include_str!("../../prices.toml");

/// Where a price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// tollgate's shipped list prices.
    Shipped,
    /// The operator's price file.
    File,
    /// An override stored in the database (`tollgate price set`).
    Stored,
}

impl PriceSource {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::File => "file",
            Self::Stored => "stored",
        }
    }
}

/// A price in effect and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceEntry {
    /// The price.
    #[serde(flatten)]
    pub price: ModelPrice,
    /// Its source.
    pub source: PriceSource,
    /// When a stored override was last set.
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlPrice {
    input: toml::Value,
    output: toml::Value,
}

fn dollars(
    provider: &str,
    model: &str,
    side: &'static str,
    value: &toml::Value,
) -> Result<Microdollars, ValidationError> {
    let toml::Value::String(text) = value else {
        return Err(ValidationError::new(
            "prices",
            format!("{provider}/{model} {side}: must be a quoted decimal such as \"2.50\" (numbers would be floats)"),
        ));
    };
    Microdollars::parse_dollars("prices", text)
        .map_err(|error| ValidationError::new("prices", format!("{provider}/{model} {side}: {}", error.reason)))
}

/// Parses a price file: `[provider]` tables of `"model" = { input = "2.50", output = "10.00" }`,
/// dollars per million tokens as quoted decimals. Errors name the provider, model and side.
///
/// ```
/// let prices = tollgate::parse_price_toml("[acme]\n\"fast-1\" = { input = \"0.10\", output = \"0.40\" }\n").unwrap();
/// assert_eq!(prices[0].input_per_million().micros(), 100_000);
/// assert!(tollgate::parse_price_toml("[acme]\n\"fast-1\" = { input = 0.1, output = \"0.40\" }\n").is_err());
/// ```
pub fn parse_price_toml(text: &str) -> Result<Vec<ModelPrice>, ValidationError> {
    let table: BTreeMap<String, BTreeMap<String, TomlPrice>> =
        toml::from_str(text).map_err(|error| ValidationError::new("prices", error.message().to_owned()))?;
    let mut prices = Vec::new();
    for (provider, models) in &table {
        let provider_name = ProviderName::parse(provider)
            .map_err(|error| ValidationError::new("prices", format!("provider {provider:?}: {}", error.reason)))?;
        for (model, price) in models {
            let model_name = ModelName::parse(model)
                .map_err(|error| ValidationError::new("prices", format!("model {model:?}: {}", error.reason)))?;
            let input = dollars(provider, model, "input", &price.input)?;
            let output = dollars(provider, model, "output", &price.output)?;
            let price = ModelPrice::new(provider_name.clone(), model_name, input, output)
                .map_err(|error| ValidationError::new("prices", format!("{provider}/{model}: {error}")))?;
            prices.push(price);
        }
    }
    Ok(prices)
}

/// The shipped list prices.
pub(crate) fn shipped_prices() -> Vec<ModelPrice> {
    parse_price_toml(SHIPPED_PRICES).expect("the shipped prices.toml is valid (checked by a test)")
}

type Table = HashMap<String, HashMap<String, PriceEntry>>;

/// Every price in effect, by provider then model, so lookups borrow `&str` and allocate nothing.
#[derive(Debug)]
pub(crate) struct PriceBook {
    base: Vec<PriceEntry>,
    table: RwLock<Arc<Table>>,
}

impl PriceBook {
    /// Shipped prices, overridden by `file` prices.
    pub(crate) fn new(file: &[ModelPrice]) -> Self {
        let shipped = shipped_prices().into_iter().map(|price| (price, PriceSource::Shipped));
        let file = file.iter().cloned().map(|price| (price, PriceSource::File));
        let base = shipped.chain(file).map(|(price, source)| PriceEntry { price, source, updated_at: None }).collect();
        let book = Self { base, table: RwLock::new(Arc::default()) };
        book.apply_stored(&[]);
        book
    }

    /// Rebuilds the table with `stored` overrides on top of the shipped and file prices.
    pub(crate) fn apply_stored(&self, stored: &[PriceRecord]) {
        let mut table = Table::new();
        let stored = stored.iter().map(|record| PriceEntry {
            price: record.price.clone(),
            source: PriceSource::Stored,
            updated_at: Some(record.updated_at),
        });
        for entry in self.base.iter().cloned().chain(stored) {
            let provider = entry.price.provider().as_str().to_owned();
            table.entry(provider).or_default().insert(entry.price.model().as_str().to_owned(), entry);
        }
        *self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(table);
    }

    fn snapshot(&self) -> Arc<Table> {
        Arc::clone(&self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The cost of a call, or `None` when the model has no price.
    pub(crate) fn cost(
        &self,
        provider: &str,
        model: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Option<Microdollars> {
        let table = self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = table.get(provider)?.get(model)?;
        Some(entry.price.cost(input_tokens, output_tokens))
    }

    /// The price of one model.
    pub(crate) fn price(&self, provider: &str, model: &str) -> Option<PriceEntry> {
        self.snapshot().get(provider)?.get(model).cloned()
    }

    /// Every price in effect, ordered by provider and model.
    pub(crate) fn entries(&self) -> Vec<PriceEntry> {
        let mut entries: Vec<PriceEntry> =
            self.snapshot().values().flat_map(|models| models.values().cloned()).collect();
        entries.sort_by(|left, right| {
            (left.price.provider(), left.price.model()).cmp(&(right.price.provider(), right.price.model()))
        });
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prices_parse_and_cover_the_required_models() {
        let book = PriceBook::new(&[]);
        for (provider, model) in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini")] {
            assert!(book.price(provider, model).is_some(), "{provider}/{model}");
        }
        let count =
            |provider: &str| book.entries().iter().filter(|entry| entry.price.provider().as_str() == provider).count();
        assert!(count("anthropic") >= 2 && count("google") >= 2);
        // gpt-4o-mini: $0.15 / $0.60 per million tokens.
        assert_eq!(book.cost("openai", "gpt-4o-mini", 1_000_000, 1_000_000), Some(Microdollars::from_micros(750_000)));
        assert_eq!(book.cost("openai", "gpt-4o-mini", 1, 0), Some(Microdollars::from_micros(1)));
        assert_eq!(book.cost("openai", "no-such-model", 1, 0), None);
    }

    #[test]
    fn file_then_stored_prices_override_shipped_ones() {
        let file = parse_price_toml("[openai]\n\"gpt-4o\" = { input = \"1.00\", output = \"2.00\" }\n").unwrap();
        let book = PriceBook::new(&file);
        let entry = book.price("openai", "gpt-4o").unwrap();
        assert_eq!((entry.source, entry.price.input_per_million().micros()), (PriceSource::File, 1_000_000));
        let stored = PriceRecord {
            price: ModelPrice::new(
                ProviderName::parse("openai").unwrap(),
                ModelName::parse("gpt-4o").unwrap(),
                Microdollars::from_micros(5),
                Microdollars::from_micros(6),
            )
            .unwrap(),
            updated_at: Timestamp::from_unix_micros(9),
        };
        book.apply_stored(&[stored]);
        let entry = book.price("openai", "gpt-4o").unwrap();
        assert_eq!((entry.source, entry.updated_at), (PriceSource::Stored, Some(Timestamp::from_unix_micros(9))));
        book.apply_stored(&[]);
        assert_eq!(book.price("openai", "gpt-4o").unwrap().source, PriceSource::File);
    }

    #[test]
    fn bad_price_files_say_what_is_wrong() {
        for (text, needle) in [
            ("[openai]\n\"gpt-4o\" = { input = 2.5, output = \"10\" }\n", "quoted decimal"),
            ("[openai]\n\"gpt-4o\" = { input = \"-1\", output = \"10\" }\n", "negative"),
            ("[openai]\n\"GPT 4\" = { input = \"1\", output = \"10\" }\n", "model"),
            ("[openai]\n\"gpt-4o\" = { input = \"1\" }\n", "output"),
            ("[openai]\n\"gpt-4o\" = { input = \"1\", output = \"1\", cached = \"1\" }\n", "cached"),
            ("not toml at all", ""),
        ] {
            let error = parse_price_toml(text).unwrap_err();
            assert_eq!(error.field, "prices");
            assert!(error.reason.contains(needle), "{text}: {}", error.reason);
        }
    }
}

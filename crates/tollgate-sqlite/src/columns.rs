//! Reading a row's columns by name, whichever driver produced the row: token rows come from sqlx
//! everywhere and from rusqlite on the verify hot path (see `hash_reader.rs`), decoded by one function.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tollgate_store::{Result, StoreError};

/// The column reads a row decoder needs. A value of the wrong type is a corrupt row, named by column.
pub(crate) trait Columns {
    /// A TEXT column.
    fn text(&self, name: &str) -> Result<String>;
    /// A nullable TEXT column.
    fn optional_text(&self, name: &str) -> Result<Option<String>>;
    /// An INTEGER column.
    fn integer(&self, name: &str) -> Result<i64>;
    /// A nullable INTEGER column.
    fn optional_integer(&self, name: &str) -> Result<Option<i64>>;
}

fn wrong_type(name: &str, error: impl std::fmt::Display) -> StoreError {
    crate::error::corrupt(name, error)
}

impl Columns for SqliteRow {
    fn text(&self, name: &str) -> Result<String> {
        self.try_get(name).map_err(|error| wrong_type(name, error))
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>> {
        self.try_get(name).map_err(|error| wrong_type(name, error))
    }

    fn integer(&self, name: &str) -> Result<i64> {
        self.try_get(name).map_err(|error| wrong_type(name, error))
    }

    fn optional_integer(&self, name: &str) -> Result<Option<i64>> {
        self.try_get(name).map_err(|error| wrong_type(name, error))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String> {
        self.get(name).map_err(|error| wrong_type(name, error))
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>> {
        self.get(name).map_err(|error| wrong_type(name, error))
    }

    fn integer(&self, name: &str) -> Result<i64> {
        self.get(name).map_err(|error| wrong_type(name, error))
    }

    fn optional_integer(&self, name: &str) -> Result<Option<i64>> {
        self.get(name).map_err(|error| wrong_type(name, error))
    }
}

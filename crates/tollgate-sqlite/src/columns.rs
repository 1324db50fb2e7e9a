//! Reading a row's columns by position, whichever driver produced the row: token rows come from sqlx
//! everywhere and from rusqlite on the verify hot path (see `hash_reader.rs`), decoded by one function.
//! Positions, not names: looking a name up compares it with every column name, twenty times a row.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tollgate_store::{Result, StoreError};

/// A column of a SELECT list: its position, and its name for errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) index: usize,
    pub(crate) name: &'static str,
}

/// The column reads a row decoder needs. A value of the wrong type is a corrupt row, named by column.
pub(crate) trait Columns {
    /// A TEXT column.
    fn text(&self, column: Column) -> Result<String>;
    /// A nullable TEXT column.
    fn optional_text(&self, column: Column) -> Result<Option<String>>;
    /// An INTEGER column.
    fn integer(&self, column: Column) -> Result<i64>;
    /// A nullable INTEGER column.
    fn optional_integer(&self, column: Column) -> Result<Option<i64>>;
}

fn wrong_type(name: &str, error: impl std::fmt::Display) -> StoreError {
    crate::error::corrupt(name, error)
}

impl Columns for SqliteRow {
    fn text(&self, column: Column) -> Result<String> {
        self.try_get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn optional_text(&self, column: Column) -> Result<Option<String>> {
        self.try_get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn integer(&self, column: Column) -> Result<i64> {
        self.try_get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn optional_integer(&self, column: Column) -> Result<Option<i64>> {
        self.try_get(column.index).map_err(|error| wrong_type(column.name, error))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: Column) -> Result<String> {
        self.get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn optional_text(&self, column: Column) -> Result<Option<String>> {
        self.get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn integer(&self, column: Column) -> Result<i64> {
        self.get(column.index).map_err(|error| wrong_type(column.name, error))
    }

    fn optional_integer(&self, column: Column) -> Result<Option<i64>> {
        self.get(column.index).map_err(|error| wrong_type(column.name, error))
    }
}

//! Reading rows: columns by position (looking a name up compares it with every column name, twenty
//! times a row), a value of the wrong type reported as a corrupt row named by column, and the two
//! shapes every query takes (all rows, or the first).

use rusqlite::types::FromSql;
use rusqlite::{Connection, Row};
use tollgate_store::{Result, StoreError};

use crate::error::SqliteResultExt;

/// A column of a SELECT list: its position, and its name for errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) index: usize,
    pub(crate) name: &'static str,
}

/// Typed column reads; a value of the wrong type is a corrupt row.
pub(crate) trait Columns {
    /// The value at `column`.
    fn value<T: FromSql>(&self, column: Column) -> Result<T>;

    /// A TEXT column.
    fn text(&self, column: Column) -> Result<String> {
        self.value(column)
    }
    /// A nullable TEXT column.
    fn optional_text(&self, column: Column) -> Result<Option<String>> {
        self.value(column)
    }
    /// An INTEGER column.
    fn integer(&self, column: Column) -> Result<i64> {
        self.value(column)
    }
    /// A nullable INTEGER column.
    fn optional_integer(&self, column: Column) -> Result<Option<i64>> {
        self.value(column)
    }
}

impl Columns for Row<'_> {
    fn value<T: FromSql>(&self, column: Column) -> Result<T> {
        self.get(column.index).map_err(|error| crate::error::corrupt(column.name, error))
    }
}

/// Reads every row of a query with `decode`.
pub(crate) fn collect<T>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql).store()?;
    let mut rows = statement.query(parameters).store()?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().store()? {
        items.push(decode(row)?);
    }
    Ok(items)
}

/// Reads the first row of a query with `decode`, or `None`.
pub(crate) fn first<T>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = connection.prepare_cached(sql).store()?;
    let mut rows = statement.query(parameters).store()?;
    match rows.next().store()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// The first row of a query, or `NotFound` naming `entity`.
pub(crate) fn one<T>(
    connection: &Connection,
    entity: &'static str,
    sql: &str,
    parameters: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<T> {
    first(connection, sql, parameters, decode)?.ok_or(StoreError::NotFound { entity })
}

/// Runs a statement; returns how many rows it changed.
pub(crate) fn execute(connection: &Connection, sql: &str, parameters: impl rusqlite::Params) -> Result<u64> {
    let changed = connection.prepare_cached(sql).store()?.execute(parameters).store()?;
    Ok(u64::try_from(changed).unwrap_or(u64::MAX))
}

/// A single value from the first row (`SELECT count(*) …`, `… RETURNING id`).
pub(crate) fn scalar<T: FromSql>(connection: &Connection, sql: &str, parameters: impl rusqlite::Params) -> Result<T> {
    connection.prepare_cached(sql).store()?.query_row(parameters, |row| row.get(0)).store()
}

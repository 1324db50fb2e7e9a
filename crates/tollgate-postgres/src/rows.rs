//! Reading rows: typed columns by name, a value of the wrong type or one that no longer parses
//! reported as a corrupt row naming its column, and the conversions every module shares.

use sqlx::postgres::{PgRow, Postgres};
use sqlx::{Decode, Row, Type};
use tollgate_store::Result;
use tollgate_types::Timestamp;

use crate::error::corrupt;

/// The value of `column` (named `table.column` in errors).
pub(crate) fn get<'r, T>(row: &'r PgRow, table: &str, column: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column).map_err(|error| corrupt(&format!("{table}.{column}"), error))
}

/// A stored text parsed into a domain type; a failure names the column.
pub(crate) fn parsed<T, E: std::fmt::Display>(
    table: &str,
    column: &str,
    parsed: std::result::Result<T, E>,
) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("{table}.{column}"), error))
}

/// A BIGINT time column.
pub(crate) fn time(row: &PgRow, table: &str, column: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_unix_micros(get(row, table, column)?))
}

/// A nullable BIGINT time column.
pub(crate) fn optional_time(row: &PgRow, table: &str, column: &str) -> Result<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, table, column)?.map(Timestamp::from_unix_micros))
}

/// A count or sum read back as BIGINT (never negative in tollgate's tables).
pub(crate) fn count(row: &PgRow, table: &str, column: &str) -> Result<u64> {
    Ok(u64::try_from(get::<i64>(row, table, column)?).unwrap_or(0))
}

/// A 32-byte hash column.
pub(crate) fn hash(row: &PgRow, table: &str, column: &str) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = get(row, table, column)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt(&format!("{table}.{column}"), "not 32 bytes"))
}

/// A JSON column (selected as text) parsed into `T`.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &PgRow, table: &str, column: &str) -> Result<T> {
    let text: String = get(row, table, column)?;
    parsed(table, column, serde_json::from_str(&text))
}

/// `value` as JSON text (lists of names, which always serialize).
pub(crate) fn json_text<S: serde::Serialize + ?Sized>(value: &S) -> String {
    serde_json::to_string(value).expect("lists of strings always serialize")
}

/// A count for a BIGINT parameter (saturating: tollgate's counts are far below 2^63).
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

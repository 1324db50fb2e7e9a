//! Moving a whole database from one backend to another: every table's rows as JSON maps keyed by
//! column name, read in pages by primary key and loaded back value for value (`tollgate export` and
//! `tollgate import`).
//!
//! The row format is the same on every backend, so a dump of SQLite loads into PostgreSQL and back:
//! integers are JSON numbers, text is a string, NULL is `null`, bytes are `{"$bytes":"<hex>"}`,
//! booleans are `true`/`false` (SQLite stores them as 0 and 1: [`DUMP_BOOLEAN_COLUMNS`] names them),
//! reals are numbers. JSON columns kept as written (PostgreSQL `JSON`, SQLite text) are strings
//! holding that exact text — the audit log's hashes cover it —, and the columns PostgreSQL keeps as
//! `JSONB` ([`DUMP_JSON_VALUE_COLUMNS`]), whose text it normalizes, are the JSON value itself.
//! Secrets' plaintext is in no table, so it is in no dump: hashes and wrapped keys move as stored.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{ColumnKind, DumpValue, Result, StoreError};

/// One row: column name → value, in the format the module documentation describes.
pub type DumpRow = Map<String, Value>;

/// Every table of the schema except the migrations' own bookkeeping, in the order a load needs: a
/// table comes after every table its foreign keys name (a conformance case checks both against the
/// backend's catalog). Rows of one table refer to rows of their own table only in key order (a
/// budget lease names leases made before it, and ids are time-ordered).
pub const DUMP_TABLES: &[&str] = &[
    "users",
    "service_accounts",
    "projects",
    "project_members",
    "provider_keys",
    "agents",
    "tokens",
    "token_rate_limits",
    "sessions",
    "refresh_tokens",
    "usage_series",
    "usage_event_blocks",
    "usage_event_ids",
    "usage_rollups",
    "usage_dead_letters",
    "quota_limits",
    "quota_counters",
    "quota_holders",
    "quota_leases",
    "quota_reservations",
    "model_prices",
    "budget_accounts",
    "budget_leases",
    "budget_reports",
    "budget_ledger",
    "budget_requests",
    "traces",
    "login_throttle",
    "audit_log",
];

/// The boolean columns: PostgreSQL `BOOLEAN`, SQLite `INTEGER` holding 0 or 1.
pub const DUMP_BOOLEAN_COLUMNS: &[(&str, &str)] = &[
    ("users", "must_change_password"),
    ("quota_limits", "shadow"),
    ("provider_keys", "enabled"),
    ("budget_accounts", "paused_for_budget"),
    ("traces", "truncated"),
];

/// The JSON columns dumped as their value: PostgreSQL `JSONB` (which keeps a value, not a text),
/// SQLite `TEXT`. They never hold JSON `null`, which a dump could not tell from NULL.
pub const DUMP_JSON_VALUE_COLUMNS: &[(&str, &str)] = &[("usage_event_blocks", "data")];

/// `name` as the static name of a table a dump holds, or a `Conflict` naming it. Backends build SQL
/// only from names this returns and column names read from their catalog.
pub fn dump_table(name: &str) -> Result<&'static str> {
    DUMP_TABLES
        .iter()
        .copied()
        .find(|table| *table == name)
        .ok_or_else(|| StoreError::Conflict(format!("table {name:?} is not one a dump holds")))
}

/// A column as the backend's catalog has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Its name.
    pub name: String,
    /// How its values appear in a dump.
    pub kind: ColumnKind,
}

/// A table as the backend's catalog has it: what a dump reads and a load checks rows against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    name: String,
    columns: Vec<ColumnSchema>,
    key: Vec<String>,
    references: Vec<String>,
}

impl TableSchema {
    /// A table with its columns (kept sorted by name, the order of a dump's rows), its primary key
    /// columns in key order, and the tables its foreign keys name.
    pub fn new(name: String, mut columns: Vec<ColumnSchema>, key: Vec<String>, mut references: Vec<String>) -> Self {
        columns.sort_by(|left, right| left.name.cmp(&right.name));
        references.sort();
        references.dedup();
        Self { name, columns, key, references }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its columns, by name.
    pub fn columns(&self) -> &[ColumnSchema] {
        &self.columns
    }

    /// Its primary key's columns, in key order.
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The tables its foreign keys name, by name.
    pub fn references(&self) -> &[String] {
        &self.references
    }

    /// The kind of `column`, if the table has it.
    pub fn kind_of(&self, column: &str) -> Option<ColumnKind> {
        self.columns.iter().find(|candidate| candidate.name == column).map(|candidate| candidate.kind)
    }

    /// The values to bind for `row`, in [`columns`](Self::columns) order: a `Conflict` naming the
    /// column when the row lacks one of the table's columns, has one the table lacks, or holds a
    /// value that does not fit (never the value itself: it may be a hash).
    pub fn values_of(&self, row: &DumpRow) -> Result<Vec<DumpValue>> {
        if let Some(unknown) = row.keys().find(|column| self.kind_of(column).is_none()) {
            return Err(StoreError::Conflict(format!("table {} has no column {unknown:?}", self.name)));
        }
        self.columns
            .iter()
            .map(|column| {
                let value = row.get(&column.name).ok_or_else(|| {
                    StoreError::Conflict(format!("{}.{}: the row has no value for it", self.name, column.name))
                })?;
                DumpValue::from_json(value, column.kind)
                    .map_err(|reason| StoreError::Conflict(format!("{}.{}: {reason}", self.name, column.name)))
            })
            .collect()
    }

    /// The dump's row for stored `values` in [`columns`](Self::columns) order; `Corrupt` naming the
    /// column whose value does not fit.
    pub fn row_of(&self, values: Vec<DumpValue>) -> Result<DumpRow> {
        let mut row = DumpRow::new();
        for (column, value) in self.columns.iter().zip(values) {
            let json = value
                .into_json(column.kind)
                .map_err(|reason| StoreError::Corrupt(format!("{}.{}: {reason}", self.name, column.name)))?;
            row.insert(column.name.clone(), json);
        }
        Ok(row)
    }

    /// The cursor after the row whose stored `values` (in [`columns`](Self::columns) order) are given.
    pub fn cursor_after(&self, values: &[DumpValue]) -> DumpCursor {
        let key = self
            .key
            .iter()
            .filter_map(|key| self.columns.iter().position(|column| &column.name == key))
            .filter_map(|index| values.get(index).cloned())
            .collect();
        DumpCursor { key }
    }
}

/// Where a page of [`DumpStore::dump_rows`] ended: the primary key of its last row.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpCursor {
    key: Vec<DumpValue>,
}

impl DumpCursor {
    /// The key's values, in key order, as the backend read them.
    pub fn key(&self) -> &[DumpValue] {
        &self.key
    }
}

/// Reading and loading whole tables, for moving a database to another backend. A load is meant for
/// an empty database (the CLI refuses any other): the rows were checked when first written, so rules
/// about *issuing* a row (a token's owner must be active, and a member of its project) are not
/// checked again, while every rule about rows at rest (keys, foreign keys, CHECKs, one namespace of
/// owner names, the append-only logs) still is.
#[async_trait]
pub trait DumpStore: Send + Sync {
    /// The tables a dump holds, in load order: [`DUMP_TABLES`] (here for callers that hold only a
    /// `dyn Store`).
    fn dump_tables(&self) -> &'static [&'static str] {
        DUMP_TABLES
    }

    /// Every table of the database's schema as its catalog has it, except the migrations'
    /// bookkeeping (for checking [`DUMP_TABLES`] against the schema).
    async fn dump_schema(&self) -> Result<Vec<TableSchema>>;

    /// At most `limit` rows of `table` after `after`, in primary-key order (text compared bytewise),
    /// and the cursor for the next page (`None` after the last row).
    async fn dump_rows(
        &self,
        table: &str,
        after: Option<&DumpCursor>,
        limit: u32,
    ) -> Result<(Vec<DumpRow>, Option<DumpCursor>)>;

    /// Inserts exactly `rows` into `table` in one transaction; returns how many. Each row must have
    /// every column of the table and no other (a `Conflict` names the table or column otherwise).
    /// Identity columns continue after the largest value loaded.
    async fn load_rows(&self, table: &str, rows: &[DumpRow]) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_are_checked_against_the_table_and_errors_name_the_column_not_the_value() {
        let table = TableSchema::new(
            "tokens".to_owned(),
            vec![
                ColumnSchema { name: "id".to_owned(), kind: ColumnKind::Text },
                ColumnSchema { name: "hash".to_owned(), kind: ColumnKind::Bytes },
            ],
            vec!["id".to_owned()],
            Vec::new(),
        );
        let row = |value: Value| value.as_object().cloned().expect("an object");
        let good = row(json!({ "id": "tok_1", "hash": { "$bytes": "0a" } }));
        assert_eq!(table.values_of(&good).unwrap(), [DumpValue::Bytes(vec![10]), DumpValue::Text("tok_1".to_owned())]);
        let stored = table.values_of(&good).unwrap();
        assert_eq!(table.row_of(stored.clone()).unwrap(), good);
        assert_eq!(table.cursor_after(&stored).key(), [DumpValue::Text("tok_1".to_owned())]);
        for (bad, named) in [
            (json!({ "id": "tok_1" }), "tokens.hash"),
            (json!({ "id": "tok_1", "hash": null, "extra\"; DROP TABLE users": 1 }), "DROP TABLE users"),
            (json!({ "id": "tok_1", "hash": "secret-looking-value" }), "tokens.hash"),
        ] {
            let message = table.values_of(&row(bad)).unwrap_err().to_string();
            assert!(message.contains(named), "{message}");
            assert!(!message.contains("secret-looking-value"), "{message}");
        }
        assert!(dump_table("tokens").is_ok());
        assert!(dump_table("_tollgate_migrations").unwrap_err().to_string().contains("_tollgate_migrations"));
    }

    #[test]
    fn declared_columns_are_in_listed_tables() {
        for (table, _) in DUMP_BOOLEAN_COLUMNS.iter().chain(DUMP_JSON_VALUE_COLUMNS) {
            assert!(DUMP_TABLES.contains(table), "{table}");
        }
        let mut names = DUMP_TABLES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DUMP_TABLES.len(), "no table listed twice");
    }
}

//! Dumping and loading whole tables on SQLite (`tollgate export`/`import`): the catalog read from
//! `sqlite_master` and the table pragmas, rows decoded generically by storage class, pages by
//! primary key (text compared bytewise), loads as one write job per batch.

use async_trait::async_trait;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params_from_iter};
use tollgate_store::{
    ColumnKind, ColumnSchema, DumpCursor, DumpRow, DumpStore, DumpValue, Result, StoreError, TableSchema, dump_table,
};

use crate::SqliteStore;
use crate::audit::AuditHead;
use crate::columns::{collect, execute};
use crate::error::SqliteResultExt;

/// Triggers that check a row as it is *issued* (a token's owner is active and a member of its
/// project), not rows at rest: a revoked token of an owner suspended since is a valid row that
/// they would refuse. A load drops them and creates them again from their own SQL in the same job.
const ISSUE_TRIGGERS: &[(&str, &str)] =
    &[("tokens", "tokens_owner_must_be_active"), ("tokens", "tokens_project_needs_a_member")];

/// An identifier in double quotes (catalog names only; never a value).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn kind_of(table: &str, column: &str, declared: &str) -> Result<ColumnKind> {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" => Ok(ColumnKind::of_integer_column(table, column)),
        "TEXT" => Ok(ColumnKind::of_text_column(table, column)),
        "BLOB" => Ok(ColumnKind::Bytes),
        "REAL" => Ok(ColumnKind::Real),
        _ => Err(StoreError::Corrupt(format!("{table}.{column}: type {declared} is not one a dump can hold"))),
    }
}

/// `table` as the catalog has it; a `Conflict` when the database has no such table.
fn catalog(connection: &Connection, table: &str) -> Result<TableSchema> {
    let mut key: Vec<(i64, String)> = Vec::new();
    let mut columns = Vec::new();
    let rows = collect(connection, "SELECT name, type, pk FROM pragma_table_info(?1)", [table], |row| {
        Ok((row.get::<_, String>(0).store()?, row.get::<_, String>(1).store()?, row.get::<_, i64>(2).store()?))
    })?;
    for (name, declared, key_position) in rows {
        if key_position > 0 {
            key.push((key_position, name.clone()));
        }
        columns.push(ColumnSchema { kind: kind_of(table, &name, &declared)?, name });
    }
    if columns.is_empty() {
        return Err(StoreError::Conflict(format!("table {table:?} is not in the database's schema")));
    }
    key.sort();
    let references =
        collect(connection, "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)", [table], |row| {
            row.get::<_, String>(0).store()
        })?;
    Ok(TableSchema::new(table.to_owned(), columns, key.into_iter().map(|(_, name)| name).collect(), references))
}

fn stored_value(table: &TableSchema, index: usize, value: ValueRef<'_>) -> Result<DumpValue> {
    Ok(match value {
        ValueRef::Null => DumpValue::Null,
        ValueRef::Integer(value) => DumpValue::Integer(value),
        ValueRef::Real(value) => DumpValue::Real(value),
        ValueRef::Text(bytes) => DumpValue::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
            let column = table.columns().get(index).map_or("?", |column| column.name.as_str());
            StoreError::Corrupt(format!("{}.{column}: text that is not UTF-8", table.name()))
        })?),
        ValueRef::Blob(bytes) => DumpValue::Bytes(bytes.to_vec()),
    })
}

fn bound(value: DumpValue) -> Value {
    match value {
        DumpValue::Null => Value::Null,
        DumpValue::Integer(value) => Value::Integer(value),
        DumpValue::Real(value) => Value::Real(value),
        DumpValue::Text(text) => Value::Text(text),
        DumpValue::Bytes(bytes) => Value::Blob(bytes),
        DumpValue::Boolean(value) => Value::Integer(i64::from(value)),
    }
}

/// One page of `table` after `after`, read in one statement.
fn page(
    connection: &Connection,
    table: &TableSchema,
    after: Option<DumpCursor>,
    limit: u32,
) -> Result<(Vec<DumpRow>, Option<DumpCursor>)> {
    if table.key().is_empty() {
        return Err(StoreError::Corrupt(format!("table {} has no primary key to page by", table.name())));
    }
    let select: Vec<String> = table.columns().iter().map(|column| quoted(&column.name)).collect();
    let key: Vec<String> = table.key().iter().map(|column| format!("{} COLLATE BINARY", quoted(column))).collect();
    let mut parameters: Vec<Value> = Vec::new();
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), quoted(table.name()));
    if let Some(cursor) = after {
        let placeholders = vec!["?"; cursor.key().len()].join(", ");
        sql.push_str(&format!(" WHERE ({}) > ({placeholders})", key.join(", ")));
        parameters.extend(cursor.key().iter().cloned().map(bound));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT ?", key.join(", ")));
    parameters.push(Value::Integer(i64::from(limit) + 1));
    let mut stored = collect(connection, &sql, params_from_iter(parameters), |row| {
        (0..table.columns().len())
            .map(|index| stored_value(table, index, row.get_ref(index).store()?))
            .collect::<Result<Vec<_>>>()
    })?;
    let more = stored.len() > limit as usize;
    stored.truncate(limit as usize);
    let next = if more { stored.last().map(|values| table.cursor_after(values)) } else { None };
    let rows = stored.into_iter().map(|values| table.row_of(values)).collect::<Result<Vec<_>>>()?;
    Ok((rows, next))
}

/// Inserts `rows` (already checked against `table`) with the issue-time triggers of the table
/// dropped for the inserts and created again afterwards.
fn insert(connection: &Connection, table: &TableSchema, rows: Vec<Vec<DumpValue>>) -> Result<u64> {
    let names: Vec<&str> =
        ISSUE_TRIGGERS.iter().filter(|(of, _)| *of == table.name()).map(|(_, trigger)| *trigger).collect();
    let mut suspended: Vec<(String, String)> = Vec::new();
    for trigger in names {
        let found = collect(
            connection,
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND name = ?2",
            [table.name(), trigger],
            |row| Ok((row.get::<_, String>(0).store()?, row.get::<_, String>(1).store()?)),
        )?;
        suspended.extend(found);
    }
    for (name, _) in &suspended {
        connection.execute_batch(&format!("DROP TRIGGER {}", quoted(name))).store()?;
    }
    let columns: Vec<String> = table.columns().iter().map(|column| quoted(&column.name)).collect();
    let placeholders = vec!["?"; columns.len()].join(", ");
    let sql = format!("INSERT INTO {} ({}) VALUES ({placeholders})", quoted(table.name()), columns.join(", "));
    let mut inserted = 0;
    for values in rows {
        inserted += execute(connection, &sql, params_from_iter(values.into_iter().map(bound)))?;
    }
    for (_, sql) in &suspended {
        connection.execute_batch(sql).store()?;
    }
    Ok(inserted)
}

#[async_trait]
impl DumpStore for SqliteStore {
    async fn dump_schema(&self) -> Result<Vec<TableSchema>> {
        self.scan(|connection| {
            let names = collect(
                connection,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                   AND name <> '_tollgate_migrations' ORDER BY name",
                [],
                |row| row.get::<_, String>(0).store(),
            )?;
            names.iter().map(|name| catalog(connection, name)).collect()
        })
        .await
    }

    async fn dump_rows(
        &self,
        table: &str,
        after: Option<&DumpCursor>,
        limit: u32,
    ) -> Result<(Vec<DumpRow>, Option<DumpCursor>)> {
        let table = dump_table(table)?;
        let after = after.cloned();
        let limit = limit.max(1);
        self.scan(move |connection| page(connection, &catalog(connection, table)?, after, limit)).await
    }

    async fn load_rows(&self, table: &str, rows: &[DumpRow]) -> Result<u64> {
        let table = dump_table(table)?;
        let schema = self.scan(move |connection| catalog(connection, table)).await?;
        let values = rows.iter().map(|row| schema.values_of(row)).collect::<Result<Vec<_>>>()?;
        self.write(move |tx| {
            let inserted = insert(tx.connection, &schema, values)?;
            if schema.name() == "audit_log" {
                // The chain's head moved: the next append reads it from the table.
                *tx.audit_head = AuditHead::Unknown;
            }
            Ok(inserted)
        })
        .await
    }
}

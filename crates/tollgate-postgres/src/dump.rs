//! Dumping and loading whole tables on PostgreSQL (`tollgate export`/`import`): the catalog read
//! from `pg_catalog` (the store's schema), rows decoded generically by their column's type, pages by
//! primary key (text in the "C" collation, bytewise as on SQLite), loads as one transaction per
//! batch that also moves identity columns past what it loaded.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column as _, Postgres, Row as _, TypeInfo as _};
use tollgate_store::{
    ColumnKind, ColumnSchema, DumpCursor, DumpRow, DumpStore, DumpValue, Result, StoreError, TableSchema, dump_table,
};

use crate::PgStore;
use crate::error::PgResultExt;

/// Triggers that check a row as it is *issued* (a token's owner is active and a member of its
/// project), not rows at rest: a revoked token of an owner suspended since is a valid row that
/// they would refuse. A load disables them for its own transaction.
const ISSUE_TRIGGERS: &[(&str, &str)] =
    &[("tokens", "tokens_owner_must_be_active"), ("tokens", "tokens_project_needs_a_member")];

/// The most parameters one statement binds (the protocol allows 65,535).
const MAX_PARAMETERS: usize = 60_000;

const COLUMNS: &str =
    "SELECT c.relname::text AS table_name, a.attname::text AS column_name, t.typname::text AS type_name,
            coalesce((SELECT key.position FROM unnest(k.indkey::int2[]) WITH ORDINALITY AS key (attnum, position)
                      WHERE key.attnum = a.attnum), 0)::int8 AS key_position,
            a.attidentity IN ('a', 'd') AS identity
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_index k ON k.indrelid = c.oid AND k.indisprimary
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> '_tollgate_migrations'
       AND ($1::text IS NULL OR c.relname = $1)
     ORDER BY c.relname, a.attnum";

const REFERENCES: &str = "SELECT c.relname::text, f.relname::text
     FROM pg_constraint k
     JOIN pg_class c ON c.oid = k.conrelid
     JOIN pg_class f ON f.oid = k.confrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE k.contype = 'f' AND n.nspname = current_schema() AND ($1::text IS NULL OR c.relname = $1)";

/// A table as the catalog has it, with what binding needs beyond the portable schema.
#[derive(Debug)]
struct Catalog {
    schema: TableSchema,
    /// Each column's own type (in `schema.columns()` order), which bound values are cast to.
    casts: Vec<&'static str>,
    identity: Vec<String>,
}

/// An identifier in double quotes (catalog names only; never a value).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The dump kind and the SQL type of a column of type `type_name`.
fn column_type(table: &str, column: &str, type_name: &str) -> Result<(ColumnKind, &'static str)> {
    Ok(match type_name {
        "int2" => (ColumnKind::Integer, "smallint"),
        "int4" => (ColumnKind::Integer, "integer"),
        "int8" => (ColumnKind::Integer, "bigint"),
        "float4" => (ColumnKind::Real, "real"),
        "float8" => (ColumnKind::Real, "double precision"),
        "text" | "varchar" => (ColumnKind::Text, "text"),
        // JSON keeps the text as written (the audit log's hashes cover it): a dump keeps the text.
        "json" => (ColumnKind::Text, "json"),
        "jsonb" => (ColumnKind::JsonValue, "jsonb"),
        "bytea" => (ColumnKind::Bytes, "bytea"),
        "bool" => (ColumnKind::Boolean, "boolean"),
        _ => {
            return Err(StoreError::Corrupt(format!("{table}.{column}: type {type_name} is not one a dump can hold")));
        }
    })
}

impl PgStore {
    /// The tables of the store's schema (only `table`, when given), by name.
    async fn catalog(&self, table: Option<&str>) -> Result<Vec<Catalog>> {
        let rows = sqlx::query(COLUMNS).bind(table).fetch_all(self.pool()).await.store()?;
        let references: Vec<(String, String)> =
            sqlx::query_as(REFERENCES).bind(table).fetch_all(self.pool()).await.store()?;
        let mut tables: Vec<(String, Vec<PgRow>)> = Vec::new();
        for row in rows {
            let name: String = row.try_get("table_name").store()?;
            match tables.last_mut() {
                Some((last, columns)) if *last == name => columns.push(row),
                _ => tables.push((name, vec![row])),
            }
        }
        tables
            .into_iter()
            .map(|(name, rows)| {
                let mut columns = Vec::new();
                let mut casts = HashMap::new();
                let mut key = Vec::new();
                let mut identity = Vec::new();
                for row in rows {
                    let column: String = row.try_get("column_name").store()?;
                    let (kind, cast) = column_type(&name, &column, &row.try_get::<String, _>("type_name").store()?)?;
                    let key_position: i64 = row.try_get("key_position").store()?;
                    if key_position > 0 {
                        key.push((key_position, column.clone()));
                    }
                    if row.try_get::<bool, _>("identity").store()? {
                        identity.push(column.clone());
                    }
                    casts.insert(column.clone(), cast);
                    columns.push(ColumnSchema { name: column, kind });
                }
                key.sort();
                let referenced =
                    references.iter().filter(|(from, _)| *from == name).map(|(_, to)| to.clone()).collect();
                let schema =
                    TableSchema::new(name, columns, key.into_iter().map(|(_, name)| name).collect(), referenced);
                let casts = schema.columns().iter().map(|column| casts[&column.name]).collect();
                Ok(Catalog { schema, casts, identity })
            })
            .collect()
    }

    /// `table` as the catalog has it; a `Conflict` when the schema has no such table.
    async fn table(&self, table: &'static str) -> Result<Catalog> {
        self.catalog(Some(table))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Conflict(format!("table {table:?} is not in the database's schema")))
    }
}

/// The select-list entry for `column`: values of one type per kind, whatever the column's own type.
fn selected(column: &ColumnSchema) -> String {
    let name = quoted(&column.name);
    match column.kind {
        ColumnKind::Integer => format!("{name}::int8 AS {name}"),
        ColumnKind::Real => format!("{name}::float8 AS {name}"),
        ColumnKind::Text | ColumnKind::JsonValue => format!("{name}::text AS {name}"),
        _ => name,
    }
}

/// The value at `index`, decoded by the type the row reports for it.
fn stored_value(row: &PgRow, table: &str, index: usize) -> Result<DumpValue> {
    let column = row.column(index);
    let corrupt = |error: sqlx::Error| StoreError::Corrupt(format!("{table}.{}: {error}", column.name()));
    let value = match column.type_info().name() {
        "INT8" => row.try_get::<Option<i64>, _>(index).map_err(corrupt)?.map(DumpValue::Integer),
        "FLOAT8" => row.try_get::<Option<f64>, _>(index).map_err(corrupt)?.map(DumpValue::Real),
        "TEXT" => row.try_get::<Option<String>, _>(index).map_err(corrupt)?.map(DumpValue::Text),
        "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(index).map_err(corrupt)?.map(DumpValue::Bytes),
        "BOOL" => row.try_get::<Option<bool>, _>(index).map_err(corrupt)?.map(DumpValue::Boolean),
        other => {
            return Err(StoreError::Corrupt(format!(
                "{table}.{}: type {other} is not one a dump reads",
                column.name()
            )));
        }
    };
    Ok(value.unwrap_or(DumpValue::Null))
}

/// Binds `value` (of a column of `kind`) as the one type that kind is bound as.
fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    kind: ColumnKind,
    value: DumpValue,
) -> Result<Query<'q, Postgres, PgArguments>> {
    Ok(match (kind, value) {
        (ColumnKind::Integer, DumpValue::Integer(value)) => query.bind(value),
        (ColumnKind::Integer, DumpValue::Null) => query.bind(None::<i64>),
        (ColumnKind::Real, DumpValue::Real(value)) => query.bind(value),
        (ColumnKind::Real, DumpValue::Null) => query.bind(None::<f64>),
        (ColumnKind::Text | ColumnKind::JsonValue, DumpValue::Text(text)) => query.bind(text),
        (ColumnKind::Text | ColumnKind::JsonValue, DumpValue::Null) => query.bind(None::<String>),
        (ColumnKind::Bytes, DumpValue::Bytes(bytes)) => query.bind(bytes),
        (ColumnKind::Bytes, DumpValue::Null) => query.bind(None::<Vec<u8>>),
        (ColumnKind::Boolean, DumpValue::Boolean(value)) => query.bind(value),
        (ColumnKind::Boolean, DumpValue::Null) => query.bind(None::<bool>),
        (kind, _) => return Err(StoreError::Conflict(format!("a value does not fit a column of kind {kind:?}"))),
    })
}

/// The SQL type a key of `kind` is compared as.
fn key_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Integer => "int8",
        ColumnKind::Real => "float8",
        ColumnKind::Bytes => "bytea",
        ColumnKind::Boolean => "boolean",
        _ => "text",
    }
}

#[async_trait]
impl DumpStore for PgStore {
    async fn dump_schema(&self) -> Result<Vec<TableSchema>> {
        Ok(self.catalog(None).await?.into_iter().map(|table| table.schema).collect())
    }

    async fn dump_rows(
        &self,
        table: &str,
        after: Option<&DumpCursor>,
        limit: u32,
    ) -> Result<(Vec<DumpRow>, Option<DumpCursor>)> {
        let catalog = self.table(dump_table(table)?).await?;
        let schema = &catalog.schema;
        let limit = limit.max(1);
        let mut keys = Vec::new();
        for column in schema.key() {
            let kind = schema.kind_of(column).unwrap_or(ColumnKind::Text);
            let collation = if kind == ColumnKind::Text { " COLLATE \"C\"" } else { "" };
            keys.push((format!("{}{collation}", quoted(column)), kind));
        }
        if keys.is_empty() {
            return Err(StoreError::Corrupt(format!("table {} has no primary key to page by", schema.name())));
        }
        let select: Vec<String> = schema.columns().iter().map(selected).collect();
        let order: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), quoted(schema.name()));
        let mut parameters = 0;
        if after.is_some() {
            let placeholders: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(index, (_, kind))| format!("${}::{}", index + 1, key_type(*kind)))
                .collect();
            sql.push_str(&format!(" WHERE ({}) > ({})", order.join(", "), placeholders.join(", ")));
            parameters = keys.len();
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT ${}", order.join(", "), parameters + 1));
        let mut query = sqlx::query(&sql);
        if let Some(cursor) = after {
            for ((_, kind), value) in keys.iter().zip(cursor.key()) {
                query = bind(query, *kind, value.clone())?;
            }
        }
        let rows = query.bind(i64::from(limit) + 1).fetch_all(self.pool()).await.store()?;
        let mut stored = rows
            .iter()
            .map(|row| (0..row.len()).map(|index| stored_value(row, schema.name(), index)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let more = stored.len() > limit as usize;
        stored.truncate(limit as usize);
        let next = if more { stored.last().map(|values| schema.cursor_after(values)) } else { None };
        let rows = stored.into_iter().map(|values| schema.row_of(values)).collect::<Result<Vec<_>>>()?;
        Ok((rows, next))
    }

    async fn load_rows(&self, table: &str, rows: &[DumpRow]) -> Result<u64> {
        let catalog = self.table(dump_table(table)?).await?;
        let schema = &catalog.schema;
        let values = rows.iter().map(|row| schema.values_of(row)).collect::<Result<Vec<_>>>()?;
        let table_sql = quoted(schema.name());
        let mut tx = self.begin().await?;
        let issue_triggers: Vec<&str> =
            ISSUE_TRIGGERS.iter().filter(|(of, _)| *of == schema.name()).map(|(_, name)| *name).collect();
        let suspended: Vec<String> =
            sqlx::query_scalar("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = ANY($2)")
                .bind(&table_sql)
                .bind(&issue_triggers)
                .fetch_all(tx.conn())
                .await
                .store()?;
        for trigger in &suspended {
            let sql = format!("ALTER TABLE {table_sql} DISABLE TRIGGER {}", quoted(trigger));
            sqlx::query(&sql).execute(tx.conn()).await.store()?;
        }
        let columns: Vec<String> = schema.columns().iter().map(|column| quoted(&column.name)).collect();
        let per_statement = (MAX_PARAMETERS / columns.len().max(1)).max(1);
        let mut inserted = 0;
        let mut rows = values.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<DumpValue>> = rows.by_ref().take(per_statement).collect();
            let tuples: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let first = row * columns.len();
                    let placeholders: Vec<String> = catalog
                        .casts
                        .iter()
                        .enumerate()
                        .map(|(index, cast)| format!("${}::{cast}", first + index + 1))
                        .collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!("INSERT INTO {table_sql} ({}) VALUES {}", columns.join(", "), tuples.join(", "));
            let mut query = sqlx::query(&sql);
            for row in chunk {
                for (column, value) in schema.columns().iter().zip(row) {
                    query = bind(query, column.kind, value)?;
                }
            }
            inserted += query.execute(tx.conn()).await.store()?.rows_affected();
        }
        for column in &catalog.identity {
            // New rows take ids after the loaded ones.
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), loaded.largest)
                 FROM (SELECT max({}) AS largest FROM {table_sql}) AS loaded WHERE loaded.largest IS NOT NULL",
                quoted(column)
            );
            sqlx::query(&sql).bind(&table_sql).bind(column).execute(tx.conn()).await.store()?;
        }
        for trigger in &suspended {
            let sql = format!("ALTER TABLE {table_sql} ENABLE TRIGGER {}", quoted(trigger));
            sqlx::query(&sql).execute(tx.conn()).await.store()?;
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

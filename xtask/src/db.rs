//! Reading development databases with plain SQL (sqlx, already compiled for the workspace), and the
//! development marker. Writes of tollgate data never happen here: they go through the `tollgate` binary.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

/// The table that marks a development database. `cargo xtask reset` creates it; `seed` refuses a
/// database without it; the schema validator ignores it (it is no part of the migrations).
pub(crate) const MARKER_TABLE: &str = "_tollgate_dev_marker";

/// The table in which `tollgate migrate` records applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "_tollgate_migrations";

/// What the development marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// When `reset` created the database (Unix microseconds).
    pub created_at: i64,
    /// The instant the fixture's relative times count from (Unix microseconds), set by the first seed.
    pub seed_anchor: Option<i64>,
}

/// Runs `future` on a small runtime of its own (xtask is otherwise synchronous).
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting an async runtime")?
        .block_on(future)
}

/// Opens an existing database file (never creates one).
pub(crate) async fn connect(path: &Path) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("while opening {}", path.display()))
}

/// Runs `work` on a connection to `path` and closes it.
pub(crate) fn with_connection<T>(
    path: &Path,
    work: impl AsyncFnOnce(&mut SqliteConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    block_on(async {
        let mut connection = connect(path).await?;
        let result = work(&mut connection).await;
        connection.close().await.ok();
        result
    })
}

/// Whether a table exists.
pub(crate) async fn has_table(connection: &mut SqliteConnection, name: &str) -> anyhow::Result<bool> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
        .bind(name)
        .fetch_one(&mut *connection)
        .await
        .context("while reading sqlite_master")?;
    Ok(count > 0)
}

/// The development marker of the database at `path`; `None` when it is not a development database.
pub fn read_marker(path: &Path) -> anyhow::Result<Option<Marker>> {
    with_connection(path, async |connection| marker(connection).await)
}

pub(crate) async fn marker(connection: &mut SqliteConnection) -> anyhow::Result<Option<Marker>> {
    if !has_table(connection, MARKER_TABLE).await? {
        return Ok(None);
    }
    let row: Option<SqliteRow> =
        sqlx::query(&format!("SELECT created_at, seed_anchor FROM {MARKER_TABLE} WHERE id = 1"))
            .fetch_optional(&mut *connection)
            .await
            .context("while reading the development marker")?;
    Ok(row.map(|row| Marker { created_at: row.get("created_at"), seed_anchor: row.get("seed_anchor") }))
}

/// Marks the database at `path` as a development database created at `now_micros`.
pub(crate) fn write_marker(path: &Path, now_micros: i64) -> anyhow::Result<()> {
    with_connection(path, async |connection| {
        sqlx::raw_sql(&format!(
            "CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                created_at  INTEGER NOT NULL,
                seed_anchor INTEGER
            ) STRICT"
        ))
        .execute(&mut *connection)
        .await?;
        sqlx::query(&format!("INSERT OR IGNORE INTO {MARKER_TABLE} (id, created_at) VALUES (1, ?)"))
            .bind(now_micros)
            .execute(&mut *connection)
            .await?;
        Ok(())
    })
    .context("while writing the development marker")
}

/// Records the seed anchor unless one is set; returns the anchor in force.
pub(crate) fn set_seed_anchor(path: &Path, anchor_micros: i64) -> anyhow::Result<i64> {
    with_connection(path, async |connection| {
        sqlx::query(&format!("UPDATE {MARKER_TABLE} SET seed_anchor = ? WHERE id = 1 AND seed_anchor IS NULL"))
            .bind(anchor_micros)
            .execute(&mut *connection)
            .await?;
        let anchor: Option<i64> = sqlx::query_scalar(&format!("SELECT seed_anchor FROM {MARKER_TABLE} WHERE id = 1"))
            .fetch_one(&mut *connection)
            .await?;
        anchor.context("the development marker has no seed anchor")
    })
}

/// Tables holding rows, other than SQLite's and tollgate's bookkeeping: `(name, rows)`.
pub(crate) async fn tables_with_rows(connection: &mut SqliteConnection) -> anyhow::Result<Vec<(String, i64)>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *connection)
    .await
    .context("while listing tables")?;
    let mut tables = Vec::new();
    for name in names.into_iter().filter(|name| name != MARKER_TABLE && name != MIGRATIONS_TABLE) {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")))
            .fetch_one(&mut *connection)
            .await
            .with_context(|| format!("while counting the rows of {name}"))?;
        if rows > 0 {
            tables.push((name, rows));
        }
    }
    Ok(tables)
}

/// The current time in Unix microseconds.
pub(crate) fn now_micros() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

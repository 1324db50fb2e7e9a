//! Embedded schema migrations (`migrations/postgres/`, the same versions and names as SQLite's) and
//! the runner that applies them in order, each in its own transaction, refusing a database whose
//! applied migrations were edited afterwards (checksums) or that is newer than this binary.
//!
//! Several nodes may start at once: the runner holds a session advisory lock (keyed by the schema)
//! while it reads and applies, so one node migrates and the others find the work done.

use sqlx::PgConnection;
use tollgate_store::Result;
pub use tollgate_store::{AppliedMigration, Migration};
use tollgate_types::{Clock, SystemClock};

use crate::error::{PgResultExt, corrupt, map_error};

macro_rules! migration {
    ($version:literal, $file_version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/postgres/", $file_version, "_", $name, ".sql")),
        }
    };
}

/// Every migration this binary knows, in order. File names must be `<4-digit version>_<name>.sql`.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001", "tokens_and_audit"),
    migration!(2, "0002", "users_and_sessions"),
    migration!(3, "0003", "metering"),
    migration!(4, "0004", "audit_hash_unindexed"),
    migration!(5, "0005", "ownership"),
    migration!(6, "0006", "durable_metering"),
    migration!(7, "0007", "agents_and_vault"),
    migration!(8, "0008", "agent_budgets"),
    migration!(9, "0009", "agent_analytics"),
    migration!(10, "0010", "request_traces"),
    migration!(11, "0011", "login_throttle"),
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _tollgate_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    checksum   BYTEA  NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The advisory lock of the migration runner, one per schema.
const LOCK_KEY: &str = "hashtext('tollgate migrations ' || current_schema())";

/// The migrations recorded in the database, compared with this binary's.
pub(crate) async fn applied(connection: &mut PgConnection) -> Result<Vec<AppliedMigration>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_tollgate_migrations') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await
        .store()?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, Vec<u8>)> =
        sqlx::query_as("SELECT version, name, checksum FROM _tollgate_migrations ORDER BY version")
            .fetch_all(&mut *connection)
            .await
            .store()?;
    Ok(rows
        .into_iter()
        .map(|(version, name, checksum)| {
            let unchanged = MIGRATIONS.iter().any(|known| known.version == version && known.checksum() == checksum);
            AppliedMigration { version, name, unchanged }
        })
        .collect())
}

/// Applies every pending migration, each in its own transaction, under the runner's advisory lock.
/// Returns how many were applied.
pub(crate) async fn run(connection: &mut PgConnection) -> Result<usize> {
    sqlx::query(&format!("SELECT pg_advisory_lock({LOCK_KEY})")).execute(&mut *connection).await.store()?;
    let outcome = run_locked(connection).await;
    let unlocked = sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})")).execute(&mut *connection).await;
    let count = outcome?;
    unlocked.store()?;
    Ok(count)
}

async fn run_locked(connection: &mut PgConnection) -> Result<usize> {
    sqlx::query(CREATE_TABLE).execute(&mut *connection).await.store()?;
    let applied = applied(connection).await?;
    if let Some(edited) = applied.iter().find(|migration| !migration.unchanged) {
        let known = MIGRATIONS.iter().any(|migration| migration.version == edited.version);
        let problem = if known { "was edited after it was applied" } else { "is newer than this tollgate" };
        return Err(corrupt("schema", format!("migration {:04}_{} {problem}", edited.version, edited.name)));
    }
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|known| applied.iter().all(|done| done.version != known.version)) {
        apply(connection, migration).await?;
        tracing::info!(version = migration.version, name = migration.name, "applied migration");
        count += 1;
    }
    Ok(count)
}

async fn apply(connection: &mut PgConnection, migration: &Migration) -> Result<()> {
    // BEGIN and COMMIT by hand: the migration runs on the connection that holds the runner's lock.
    sqlx::query("BEGIN").execute(&mut *connection).await.store()?;
    let outcome = apply_in_transaction(connection, migration).await;
    let end = if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut *connection).await.store();
    outcome?;
    ended.map(drop)
}

async fn apply_in_transaction(connection: &mut PgConnection, migration: &Migration) -> Result<()> {
    // A query without arguments runs on the simple protocol, which takes many statements.
    sqlx::Executor::execute(&mut *connection, migration.sql).await.map_err(|error| {
        tracing::error!(version = migration.version, name = migration.name, %error, "migration failed");
        map_error(error)
    })?;
    sqlx::query("INSERT INTO _tollgate_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
        .bind(migration.version)
        .bind(migration.name)
        .bind(migration.checksum())
        .bind(SystemClock.now().unix_micros())
        .execute(&mut *connection)
        .await
        .store()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
        }
    }
}

//! Embedded schema migrations and the runner that applies them in order, refusing a database whose
//! applied migrations were edited afterwards (checksums) or that is newer than this binary.

use rusqlite::Connection;
use tollgate_store::StoreError;
pub use tollgate_store::{AppliedMigration, Migration};

use crate::columns::{collect, first};
use crate::error::{SqliteResultExt, corrupt};

macro_rules! migration {
    ($version:literal, $file_version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/sqlite/", $file_version, "_", $name, ".sql")),
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
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    checksum   BLOB    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT";

/// The migrations recorded in the database, compared with this binary's.
pub(crate) fn applied(connection: &Connection) -> Result<Vec<AppliedMigration>, StoreError> {
    connection.execute_batch(CREATE_TABLE).store()?;
    collect(connection, "SELECT version, name, checksum FROM _tollgate_migrations ORDER BY version", [], |row| {
        let version: i64 = row.get(0).store()?;
        let checksum: Vec<u8> = row.get(2).store()?;
        let unchanged = MIGRATIONS.iter().any(|known| known.version == version && known.checksum() == checksum);
        Ok(AppliedMigration { version, name: row.get(1).store()?, unchanged })
    })
}

/// Applies every pending migration, each in its own transaction. Returns how many were applied.
///
/// Foreign keys are off while a migration runs (SQLite ignores the setting inside a transaction,
/// and rebuilding a table must not cascade into the tables that reference it); the migration's
/// transaction then checks every foreign key before it commits, so a migration that breaks one
/// is rolled back.
pub(crate) fn run(connection: &Connection, now_micros: i64) -> Result<usize, StoreError> {
    let applied = applied(connection)?;
    if let Some(edited) = applied.iter().find(|migration| !migration.unchanged) {
        let known = MIGRATIONS.iter().any(|migration| migration.version == edited.version);
        let problem = if known { "was edited after it was applied" } else { "is newer than this tollgate" };
        return Err(corrupt("schema", format!("migration {:04}_{} {problem}", edited.version, edited.name)));
    }
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|known| applied.iter().all(|done| done.version != known.version)) {
        connection.pragma_update(None, "foreign_keys", "OFF").store()?;
        let outcome = apply(connection, migration, now_micros);
        connection.pragma_update(None, "foreign_keys", "ON").store()?;
        outcome?;
        tracing::info!(version = migration.version, name = migration.name, "applied migration");
        count += 1;
    }
    Ok(count)
}

fn apply(connection: &Connection, migration: &Migration, now_micros: i64) -> Result<(), StoreError> {
    connection.execute_batch("BEGIN IMMEDIATE").store()?;
    let outcome = (|| {
        connection.execute_batch(migration.sql).store()?;
        let broken: Option<String> =
            first(connection, "PRAGMA foreign_key_check", [], |row| row.get::<_, String>(0).store())?;
        if let Some(table) = broken {
            return Err(corrupt(
                "schema",
                format!("migration {:04}_{} breaks a foreign key of {table}", migration.version, migration.name),
            ));
        }
        connection
            .execute(
                "INSERT INTO _tollgate_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                rusqlite::params![migration.version, migration.name, migration.checksum(), now_micros],
            )
            .store()?;
        connection.execute_batch("COMMIT").store()
    })();
    if outcome.is_err() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    outcome
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

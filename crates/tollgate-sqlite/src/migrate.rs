//! Embedded schema migrations and the runner that applies them in order, refusing a database whose
//! applied migrations were edited afterwards (checksums) or that is newer than this binary.

use ring::digest;
use sqlx::{Row, SqlitePool};
use tollgate_store::StoreError;

use crate::error::{SqlxResultExt, corrupt};

/// One migration: a version, a name and its SQL, from `migrations/sqlite/<version>_<name>.sql`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version number, from 1, without gaps.
    pub version: i64,
    /// The name part of the file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL, recorded when applied.
    pub fn checksum(&self) -> Vec<u8> {
        digest::digest(&digest::SHA256, self.sql.as_bytes()).as_ref().to_vec()
    }
}

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
];

/// A migration recorded in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Whether the SQL in this binary still has the checksum recorded when it was applied.
    pub unchanged: bool,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _tollgate_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    checksum   BLOB    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT";

/// The migrations recorded in the database, compared with this binary's.
pub(crate) async fn applied(pool: &SqlitePool) -> Result<Vec<AppliedMigration>, StoreError> {
    sqlx::query(CREATE_TABLE).execute(pool).await.store()?;
    let rows = sqlx::query("SELECT version, name, checksum FROM _tollgate_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .store()?;
    Ok(rows
        .iter()
        .map(|row| {
            let version: i64 = row.get("version");
            let checksum: Vec<u8> = row.get("checksum");
            let unchanged = MIGRATIONS.iter().any(|known| known.version == version && known.checksum() == checksum);
            AppliedMigration { version, name: row.get("name"), unchanged }
        })
        .collect())
}

/// Applies every pending migration, each in its own transaction. Returns how many were applied.
pub(crate) async fn run(pool: &SqlitePool, now_micros: i64) -> Result<usize, StoreError> {
    let applied = applied(pool).await?;
    if let Some(edited) = applied.iter().find(|migration| !migration.unchanged) {
        let known = MIGRATIONS.iter().any(|migration| migration.version == edited.version);
        let problem = if known { "was edited after it was applied" } else { "is newer than this tollgate" };
        return Err(corrupt("schema", format!("migration {:04}_{} {problem}", edited.version, edited.name)));
    }
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|known| applied.iter().all(|done| done.version != known.version)) {
        // One script, one transaction: the schema change and its record land together or not at all.
        // (Run as a script on the single writer connection because sqlx's `raw_sql` cannot borrow a
        // transaction inside a `Send` future.)
        let checksum: String = migration.checksum().iter().map(|byte| format!("{byte:02x}")).collect();
        let script = format!(
            "BEGIN IMMEDIATE;\n{sql}\n;INSERT INTO _tollgate_migrations (version, name, checksum, applied_at) \
             VALUES ({version}, '{name}', X'{checksum}', {now_micros});\nCOMMIT;",
            sql = migration.sql,
            version = migration.version,
            name = migration.name,
        );
        if let Err(error) = sqlx::raw_sql(&script).execute(pool).await {
            // Best effort: the failed script may have left its transaction open.
            let _ = sqlx::raw_sql("ROLLBACK").execute(pool).await;
            return Err(crate::error::map_error(error));
        }
        tracing::info!(version = migration.version, name = migration.name, "applied migration");
        count += 1;
    }
    Ok(count)
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

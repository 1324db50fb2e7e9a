//! `tollgate backup --to FILE` and `tollgate restore FILE`: a consistent copy of the SQLite database
//! taken while it is served, with the key files beside it, and its restoration into a new place.
//!
//! The key files are part of a backup: without the token hashing key no stored token verifies,
//! without the JWT key no session refreshes, without the vault's master keys no provider key
//! decrypts, without the receipt key no new receipt verifies under the key customers
//! already trust. Every file is written readable by its owner only; keep backups as secret as the keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use tollgate::{SqliteOptions, SqliteStore, StoreAdmin as _, ValidationError};

use crate::cli::GlobalArgs;
use crate::context::{jwt_key_file_path, key_file_path, receipt_key_file_path, vault_key_file_path};
use crate::exit::{CliError, CliResult};
use crate::output::print_json;

/// `<path><suffix>`: where a key file lives beside a database or a backup.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The database's key files and the suffixes they take beside a backup.
fn key_files(global: &GlobalArgs) -> Result<[(PathBuf, &'static str); 4], ValidationError> {
    Ok([
        (key_file_path(global)?, ".key"),
        (jwt_key_file_path(global)?, ".jwt.key"),
        (vault_key_file_path(global)?, ".vault.key"),
        (receipt_key_file_path(global)?, ".receipt.key"),
    ])
}

/// Backups are of SQLite files; a PostgreSQL database is backed up with its server's tools.
fn check_sqlite(global: &GlobalArgs) -> Result<(), ValidationError> {
    match &global.database_url {
        Some(url) if !url.starts_with("sqlite:") => Err(ValidationError::new(
            "database_url",
            "backup and restore are for SQLite files; use pg_dump for PostgreSQL",
        )),
        Some(_) => Err(ValidationError::new("database_url", "give the SQLite file as --db")),
        None => Ok(()),
    }
}

/// Copies `from` to a new file `to` (refused if it exists) readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut source = std::fs::File::open(from).with_context(|| format!("while reading {}", from.display()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("while creating {}", to.display()))?;
    std::io::copy(&mut source, &mut target).with_context(|| format!("while writing {}", to.display()))?;
    target.sync_all().with_context(|| format!("while writing {}", to.display()))?;
    Ok(())
}

/// Writes a consistent copy of `--db` to `to` (and its key files beside it), while it is served.
pub(crate) async fn backup(global: &GlobalArgs, to: &Path) -> CliResult {
    check_sqlite(global)?;
    if !global.db.exists() {
        return Err(ValidationError::new("db", "names no database to back up").into());
    }
    if to.exists() {
        return Err(ValidationError::new("to", "already exists: a backup never overwrites").into());
    }
    let store = SqliteStore::open(&global.db, &SqliteOptions::default())
        .await
        .with_context(|| format!("while opening {}", global.db.display()))?;
    store.backup_to(to).await.with_context(|| format!("while writing {}", to.display()))?;
    let version = store.schema_version().await.map_err(|error| CliError::Failed(error.into()))?;
    store.close().await;
    let mut keys = Vec::new();
    for (key, suffix) in key_files(global)? {
        if key.exists() {
            let copy = beside(to, suffix);
            copy_private(&key, &copy)?;
            keys.push(copy);
        }
    }
    report(global, "backed up", to, version, &keys);
    Ok(ExitCode::SUCCESS)
}

/// Restores a backup into `--db`, which must not exist yet, with the key files taken beside it.
pub(crate) async fn restore(global: &GlobalArgs, from: &Path) -> CliResult {
    check_sqlite(global)?;
    if !from.exists() {
        return Err(ValidationError::new("backup", "names no file").into());
    }
    if global.db.exists() {
        return Err(ValidationError::new("db", "already exists: restore into a new place").into());
    }
    let targets = key_files(global)?;
    if let Some((existing, _)) = targets.iter().find(|(key, suffix)| key.exists() && beside(from, suffix).exists()) {
        let reason = format!("{} already exists: restore into a new place", existing.display());
        return Err(CliError::Failed(anyhow::anyhow!(reason)));
    }
    copy_private(from, &global.db)?;
    let mut keys = Vec::new();
    for (key, suffix) in &targets {
        let copy = beside(from, suffix);
        if copy.exists() {
            copy_private(&copy, key)?;
            keys.push(key.clone());
        }
    }
    let store = SqliteStore::open(&global.db, &SqliteOptions::default())
        .await
        .with_context(|| format!("while opening {}", global.db.display()))?;
    if let Some(problem) = store.quick_check().await.map_err(|error| CliError::Failed(error.into()))? {
        return Err(CliError::Failed(anyhow::anyhow!("the restored database is damaged: {problem}")));
    }
    let version = store.schema_version().await.map_err(|error| CliError::Failed(error.into()))?;
    store.close().await;
    report(global, "restored", &global.db, version, &keys);
    Ok(ExitCode::SUCCESS)
}

fn report(global: &GlobalArgs, done: &str, database: &Path, version: i64, keys: &[PathBuf]) {
    if global.json {
        print_json(&serde_json::json!({ "database": database, "schema_version": version, "key_files": keys }));
        return;
    }
    say!("{done} {} (schema version {version})", database.display());
    for key in keys {
        say!("  key file {}", key.display());
    }
}

//! `validate schema`: the migrations in `migrations/<backend>/` are well named and agree across
//! backends; a database freshly migrated by `tollgate migrate` holds exactly what they declare
//! (tables, columns, indexes, triggers, views); and no migration was edited after it was applied
//! (each applied version's SHA-256 in `_tollgate_migrations` matches its file). No migration adds an
//! agent, a provider key or a token (`migration_data.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlx::Row;

use super::Violation;
use super::ddl::{self, Kind, Object, Schema};
use super::migration_data::check_migration_data;
use super::sql;
use crate::db::{MARKER_TABLE, MIGRATIONS_TABLE, has_table, with_connection};
use crate::tollgate::Tollgate;
use crate::workspace::target_dir;

/// The backend whose migrations `tollgate` applies today; the others must match it.
const REFERENCE_BACKEND: &str = "sqlite";
/// Other backends' folders: empty or missing is fine, files present must match the reference.
const OTHER_BACKENDS: [&str; 1] = ["postgres"];

/// Tables in a tollgate database that no migration declares, by design.
const INFRASTRUCTURE_TABLES: [(&str, &str); 2] = [
    (MIGRATIONS_TABLE, "created by the migration runner to record applied migrations"),
    (MARKER_TABLE, "created by cargo xtask reset to mark a development database"),
];

/// A migration file: `migrations/<backend>/<NNNN>_<name>.sql`.
#[derive(Debug, Clone)]
struct MigrationFile {
    version: u32,
    name: String,
    /// Relative to the repository root, with `/`.
    shown: String,
    path: PathBuf,
}

/// Lists `migrations/<backend>/*.sql` in version order; violations for badly named files and for
/// duplicate or missing versions.
fn migration_files(root: &Path, backend: &str) -> anyhow::Result<(Vec<MigrationFile>, Vec<Violation>)> {
    let folder = root.join("migrations").join(backend);
    let mut files = Vec::new();
    let mut violations = Vec::new();
    if !folder.is_dir() {
        return Ok((files, violations));
    }
    for entry in std::fs::read_dir(&folder).with_context(|| format!("while listing {}", folder.display()))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let shown = format!("migrations/{backend}/{file_name}");
        let Some(stem) = file_name.strip_suffix(".sql") else { continue };
        let parsed = stem.split_once('_').and_then(|(version, name)| {
            let well_formed = version.len() == 4
                && version.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            well_formed.then(|| (version.parse::<u32>().ok(), name.to_owned()))
        });
        match parsed {
            Some((Some(version), name)) if version > 0 => {
                files.push(MigrationFile { version, name, shown, path: entry.path() });
            }
            _ => violations.push(Violation::at(
                shown,
                1,
                "migration files are named NNNN_name.sql (four digits from 0001, then a-z 0-9 _)".to_owned(),
            )),
        }
    }
    files.sort_by(|a, b| (a.version, &a.name).cmp(&(b.version, &b.name)));
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version {
            violations.push(Violation::at(
                pair[1].shown.clone(),
                1,
                format!("version {:04} is also used by {}", pair[1].version, pair[0].shown),
            ));
        }
    }
    let highest = files.last().map_or(0, |file| file.version);
    for version in 1..=highest {
        if !files.iter().any(|file| file.version == version) {
            violations.push(Violation::in_file(
                format!("migrations/{backend}"),
                format!("version {version:04} is missing: versions count up from 0001 without gaps"),
            ));
        }
    }
    Ok((files, violations))
}

/// Reads each migration of `files` and reports every statement that adds an agent, a provider key
/// or a token.
fn check_files_data(files: &[MigrationFile]) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file.path).with_context(|| format!("while reading {}", file.shown))?;
        violations.extend(check_migration_data(&file.shown, &text));
    }
    Ok(violations)
}

/// Checks every backend's migration folder, that each non-empty folder has the reference backend's
/// versions and names, and that no migration adds an agent, a provider key or a token.
pub fn check_migration_folders(root: &Path) -> anyhow::Result<Vec<Violation>> {
    let (reference, mut violations) = migration_files(root, REFERENCE_BACKEND)?;
    violations.extend(check_files_data(&reference)?);
    for backend in OTHER_BACKENDS {
        let (files, problems) = migration_files(root, backend)?;
        violations.extend(problems);
        violations.extend(check_files_data(&files)?);
        if files.is_empty() {
            continue;
        }
        let by_version = |files: &[MigrationFile]| -> BTreeMap<u32, String> {
            files.iter().map(|file| (file.version, file.name.clone())).collect()
        };
        let (ours, theirs) = (by_version(&reference), by_version(&files));
        for file in &reference {
            match theirs.get(&file.version) {
                None => violations.push(Violation::at(
                    file.shown.clone(),
                    1,
                    format!("migrations/{backend} has no {:04}_{}.sql to match it", file.version, file.name),
                )),
                Some(name) if *name != file.name => violations.push(Violation::at(
                    file.shown.clone(),
                    1,
                    format!(
                        "migrations/{backend} names version {:04} {name:?}, here it is {:?}",
                        file.version, file.name
                    ),
                )),
                Some(_) => {}
            }
        }
        for file in files.iter().filter(|file| !ours.contains_key(&file.version)) {
            violations.push(Violation::at(
                file.shown.clone(),
                1,
                format!("migrations/{REFERENCE_BACKEND} has no version {:04} to match it", file.version),
            ));
        }
    }
    Ok(violations)
}

/// The schema the reference backend's migrations declare, replayed in version order.
fn declared_schema(root: &Path) -> anyhow::Result<Schema> {
    let (files, _) = migration_files(root, REFERENCE_BACKEND)?;
    let mut schema = Schema::new();
    for file in files {
        let text = std::fs::read_to_string(&file.path).with_context(|| format!("while reading {}", file.shown))?;
        for statement in sql::statements(&text) {
            ddl::apply(&mut schema, &statement, &file.shown);
        }
    }
    Ok(schema)
}

/// The schema of the database at `db`, without SQLite's and tollgate's bookkeeping tables.
fn actual_schema(db: &Path) -> anyhow::Result<Schema> {
    with_connection(db, async |connection| {
        let rows = sqlx::query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
            .fetch_all(&mut *connection)
            .await
            .context("while reading sqlite_master")?;
        let mut schema = Schema::new();
        for row in rows {
            let name: String = row.get("name");
            let table: String = row.get("tbl_name");
            let infrastructure = INFRASTRUCTURE_TABLES.iter().any(|(infra, _why)| table == *infra);
            if name.starts_with("sqlite_") || infrastructure {
                continue;
            }
            let Some(kind) = Kind::parse(row.get("type")) else { continue };
            let text: Option<String> = row.get("sql");
            let columns = if kind == Kind::Table {
                let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                    .bind(&name)
                    .fetch_all(&mut *connection)
                    .await
                    .with_context(|| format!("while reading the columns of {name}"))?;
                Some(names.into_iter().map(|column| column.to_lowercase()).collect())
            } else {
                None
            };
            let definition = text.map(|text| {
                sql::statements(&text).first().map(|statement| ddl::definition(&statement.tokens)).unwrap_or_default()
            });
            let key = name.to_lowercase();
            schema.insert(key, Object { kind, name, table: table.to_lowercase(), columns, definition, origin: None });
        }
        Ok(schema)
    })
}

/// Every difference between the declared and the actual schema.
fn compare(declared: &Schema, actual: &Schema) -> Vec<Violation> {
    let folder = format!("migrations/{REFERENCE_BACKEND}");
    let mut violations = Vec::new();
    let at = |object: &Object, message: String| match &object.origin {
        Some(origin) => Violation::at(origin.file.clone(), origin.line, message),
        None => Violation::in_file(folder.clone(), message),
    };
    for (key, wanted) in declared {
        let what = format!("{} {}", wanted.kind.as_str(), wanted.name);
        let Some(found) = actual.get(key) else {
            violations.push(at(
                wanted,
                format!(
                    "{what} is declared here but missing from a freshly migrated database (is the migration listed \
                     in MIGRATIONS in crates/tollgate-sqlite/src/migrate.rs?)"
                ),
            ));
            continue;
        };
        if found.kind != wanted.kind {
            violations.push(at(wanted, format!("{what} is a {} in a freshly migrated database", found.kind.as_str())));
            continue;
        }
        if found.table != wanted.table {
            violations.push(at(
                wanted,
                format!("{what} belongs to {} in the database, here to {}", found.table, wanted.table),
            ));
        }
        if let (Some(wanted_columns), Some(found_columns)) = (&wanted.columns, &found.columns)
            && wanted_columns != found_columns
        {
            violations.push(at(
                wanted,
                format!(
                    "{what} has columns ({}) in the database, here ({})",
                    found_columns.join(", "),
                    wanted_columns.join(", ")
                ),
            ));
        }
        if let (Some(wanted_definition), Some(found_definition)) = (&wanted.definition, &found.definition)
            && wanted_definition != found_definition
        {
            violations.push(at(wanted, format!("{what} is defined differently in a freshly migrated database")));
        }
    }
    for (key, found) in actual {
        if !declared.contains_key(key) {
            violations.push(Violation::in_file(
                folder.clone(),
                format!(
                    "{} {} is in a freshly migrated database but no migration declares it",
                    found.kind.as_str(),
                    found.name
                ),
            ));
        }
    }
    violations
}

/// Compares `_tollgate_migrations` in `db` with the migration files. With `require_all`, every file
/// must have been applied (a freshly migrated database); otherwise only what was applied is checked.
fn check_applied(root: &Path, db: &Path, shown_db: &str, require_all: bool) -> anyhow::Result<Vec<Violation>> {
    let (files, _) = migration_files(root, REFERENCE_BACKEND)?;
    let applied: Vec<(i64, String, Vec<u8>)> = with_connection(db, async |connection| {
        if !has_table(connection, MIGRATIONS_TABLE).await? {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"))
            .fetch_all(&mut *connection)
            .await?;
        Ok(rows.iter().map(|row| (row.get("version"), row.get("name"), row.get("checksum"))).collect())
    })?;
    let mut violations = Vec::new();
    for (version, name, checksum) in &applied {
        let Some(file) = files.iter().find(|file| i64::from(file.version) == *version) else {
            violations.push(Violation::in_file(
                format!("migrations/{REFERENCE_BACKEND}"),
                format!("{shown_db} records migration {version:04}_{name} but there is no such file"),
            ));
            continue;
        };
        if file.name != *name {
            violations.push(Violation::at(
                file.shown.clone(),
                1,
                format!("{shown_db} applied version {version:04} under the name {name:?}"),
            ));
        }
        let text = std::fs::read(&file.path).with_context(|| format!("while reading {}", file.shown))?;
        if ring::digest::digest(&ring::digest::SHA256, &text).as_ref() != checksum.as_slice() {
            violations.push(Violation::at(
                file.shown.clone(),
                1,
                format!(
                    "edited after it was applied to {shown_db} (its SHA-256 differs from the recorded one): \
                     add a new migration instead, or reset a development database"
                ),
            ));
        }
    }
    if require_all {
        for file in files.iter().filter(|file| !applied.iter().any(|(version, ..)| i64::from(file.version) == *version))
        {
            violations.push(Violation::at(
                file.shown.clone(),
                1,
                format!(
                    "not applied by tollgate migrate to {shown_db} (is it listed in MIGRATIONS in \
                     crates/tollgate-sqlite/src/migrate.rs?)"
                ),
            ));
        }
    }
    Ok(violations)
}

/// Checks the database at `db` against the migrations under `root`: the same objects and columns
/// and definitions, and every migration applied unchanged. For a database made by `tollgate migrate`.
pub fn check_migrated_database(root: &Path, db: &Path, shown_db: &str) -> anyhow::Result<Vec<Violation>> {
    let mut violations = compare(&declared_schema(root)?, &actual_schema(db)?);
    violations.extend(check_applied(root, db, shown_db, true)?);
    Ok(violations)
}

/// The whole schema validator: folders, a database freshly migrated by `tollgate` in a scratch
/// directory under `target/`, and (when given) an existing database's applied migrations.
pub fn check_schema(root: &Path, tollgate: &Tollgate, existing: Option<&Path>) -> anyhow::Result<Vec<Violation>> {
    let mut violations = check_migration_folders(root)?;
    let scratch = target_dir(root).join("xtask").join(format!("schema-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("while creating {}", scratch.display()))?;
    let fresh = scratch.join("fresh.db");
    let result = tollgate
        .run(&fresh, &["migrate"], None)
        .and_then(|_| check_migrated_database(root, &fresh, "a freshly migrated database"));
    std::fs::remove_dir_all(&scratch).ok();
    violations.extend(result?);
    if let Some(db) = existing {
        let shown = crate::workspace::shown(root, db);
        violations.extend(check_applied(root, db, &shown, false)?);
    }
    violations.sort();
    violations.dedup();
    Ok(violations)
}

//! `tollgate import FILE` (or `-` for standard input): loads an export (see `export_file`) into the
//! empty database `--db`/`--database-url` names, of either backend, then verifies its audit chain.
//!
//! The whole file is read and checked once before anything is written (standard input is first
//! copied to a private temporary file), so a truncated or damaged export writes nothing; rows then
//! load in batches, each in one transaction. The key files are not in an export: copy them beside
//! the new database (or name them with `--key-file`…) before serving it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Map, Value};
use tollgate::{AuditLog, Principal, Store, ValidationError};

use super::export_file::{Item, Items, read_header};
use crate::cli::GlobalArgs;
use crate::context::database_url;
use crate::exit::{CliError, CliResult};
use crate::output::print_json;

/// Rows loaded per transaction.
const BATCH: usize = 500;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The export to load, or `-` to read it from standard input.
    file: PathBuf,
}

/// A copy of standard input in a private temporary file, removed when dropped.
struct Spooled(PathBuf);

impl Spooled {
    fn from_stdin() -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("tollgate-import-{}-{nanos}.jsonl", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("while creating {}", path.display()))?;
        let spooled = Self(path);
        std::io::copy(&mut std::io::stdin().lock(), &mut file).context("while reading standard input")?;
        Ok(spooled)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The lines of `path`, header checked; the schema version it was exported at.
fn open_export(path: &Path) -> Result<(i64, impl Iterator<Item = std::io::Result<String>>), CliError> {
    let file = File::open(path).map_err(|error| ValidationError::new("file", format!("cannot be read: {error}")))?;
    let mut lines = BufReader::new(file).lines();
    let schema_version = read_header(&mut lines)?;
    Ok((schema_version, lines))
}

/// The first table of the database that holds a row, if any.
async fn first_table_with_rows(store: &dyn Store) -> anyhow::Result<Option<&'static str>> {
    for table in store.dump_tables() {
        let (rows, _) = store.dump_rows(table, None, 1).await.with_context(|| format!("while reading {table}"))?;
        if !rows.is_empty() {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Rows of one table waiting to be loaded, and the lines they came from.
struct Batch {
    table: &'static str,
    rows: Vec<Map<String, Value>>,
    first_line: u64,
    last_line: u64,
}

impl Batch {
    async fn load(self, store: &dyn Store, counts: &mut Vec<(&'static str, u64)>) -> anyhow::Result<()> {
        let loaded = store.load_rows(self.table, &self.rows).await.with_context(|| {
            format!(
                "while loading table {} (lines {}-{}); the database may now hold part of the export: \
                 import into a new, empty one",
                self.table, self.first_line, self.last_line
            )
        })?;
        match counts.last_mut() {
            Some((table, rows)) if *table == self.table => *rows += loaded,
            _ => counts.push((self.table, loaded)),
        }
        Ok(())
    }
}

/// Loads every row of `lines` (checked already) in batches; rows per table, in load order.
async fn load(
    store: &dyn Store,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> Result<Vec<(&'static str, u64)>, CliError> {
    let mut items = Items::new(lines, store.dump_tables());
    let mut counts = Vec::new();
    let mut pending: Option<Batch> = None;
    while let Some(item) = items.next_item()? {
        let Item::Row { line, table, row } = item else { break };
        match &mut pending {
            Some(batch) if batch.table == table && batch.rows.len() < BATCH => {
                batch.rows.push(row);
                batch.last_line = line;
            }
            _ => {
                if let Some(full) = pending.take() {
                    full.load(store, &mut counts).await?;
                }
                pending = Some(Batch { table, rows: vec![row], first_line: line, last_line: line });
            }
        }
    }
    if let Some(last) = pending {
        last.load(store, &mut counts).await?;
    }
    Ok(counts)
}

/// Reads `lines` to their end line without loading anything; how many rows they hold.
fn check(store: &dyn Store, lines: impl Iterator<Item = std::io::Result<String>>) -> Result<u64, ValidationError> {
    let mut items = Items::new(lines, store.dump_tables());
    while let Some(item) = items.next_item()? {
        if let Item::End { rows } = item {
            return Ok(rows);
        }
    }
    Ok(0)
}

/// Loads the export `args.file` into the empty database `--db`/`--database-url` names.
pub(crate) async fn run(global: &GlobalArgs, args: ImportArgs) -> CliResult {
    let url = database_url(global)?;
    let database_field = if global.database_url.is_some() { "database_url" } else { "db" };
    let spooled = if args.file.as_os_str() == "-" { Some(Spooled::from_stdin()?) } else { None };
    let path = spooled.as_ref().map_or(args.file.as_path(), |spooled| spooled.0.as_path());
    let (exported_schema, _) = open_export(path)?;
    let store: Arc<dyn Store> =
        tollgate::open(&url).await.with_context(|| format!("while opening {}", tollgate::redact_database_url(&url)))?;
    let schema_version = store.schema_version().await.context("while reading the schema version")?;
    if exported_schema != schema_version {
        let reason = format!(
            "holds schema version {exported_schema}; this tollgate's schema version is {schema_version}: import \
             with the version of tollgate that exported it"
        );
        return Err(ValidationError::new("file", reason).into());
    }
    if let Some(table) = first_table_with_rows(store.as_ref()).await? {
        let reason = format!("names a database that is not empty (table {table} has rows): import into a new one");
        return Err(ValidationError::new(database_field, reason).into());
    }
    let (_, lines) = open_export(path)?;
    let total = check(store.as_ref(), lines)?;
    let (_, lines) = open_export(path)?;
    let counts = load(store.as_ref(), lines).await?;
    let audit = AuditLog::new(Arc::clone(&store)).verify(&Principal::Operator).await?;
    if global.json {
        let tables: Map<String, Value> =
            counts.iter().map(|(table, rows)| ((*table).to_owned(), (*rows).into())).collect();
        print_json(&serde_json::json!({
            "schema_version": schema_version, "rows": total, "tables": tables, "audit": audit,
        }));
    } else {
        say!("imported {total} rows (schema version {schema_version}):");
        for (table, rows) in &counts {
            say!("  {table:<20} {rows}");
        }
        match &audit.first_broken {
            None => say!("audit log intact: {} entries, head {}", audit.entries_checked, audit.head_hash),
            Some(broken) => say!("audit log BROKEN at entry {}: {}", broken.sequence, broken.problem),
        }
        say!("the key files are not in the export: copy them beside the database (or name them with --key-file …)");
    }
    Ok(if audit.intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

//! `tollgate export [--to FILE]`: every row of the database as JSON lines (see `export_file`), page
//! by page, for `tollgate import` into another database of either backend.
//!
//! No secret is in an export because none is stored: token and refresh-token HMACs, bcrypt password
//! hashes and the vault's wrapped keys move as they are. The key files that make them useful (the
//! hashing key, the JWT key, the vault's master keys) are *not* in it: copy them beside the new
//! database or name them with `--key-file`…. An export still lets its reader check guesses against
//! the hashes offline with those keys: keep it as private as a backup.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use tollgate::{Clock as _, Store, SystemClock, ValidationError};

use super::export_file::{EndLine, FORMAT, Header, RowLine, VERSION};
use crate::cli::GlobalArgs;
use crate::context::{beside_database, database_url};
use crate::exit::CliResult;
use crate::output::print_json;

/// Rows read from the database at a time (the export never holds more).
const PAGE: u32 = 1_000;

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Write to this new file (created 0600; refused if it exists) instead of standard output.
    #[arg(long)]
    to: Option<PathBuf>,
}

/// Rows written per table, in the order written.
type Counts = Vec<(&'static str, u64)>;

/// Writes the header, every table's rows and the end line to `out`.
async fn write_export(store: &dyn Store, out: &mut impl Write) -> anyhow::Result<(i64, Counts)> {
    let schema_version = store.schema_version().await.context("while reading the schema version")?;
    let header =
        Header { format: FORMAT, version: VERSION, schema_version, exported_at: SystemClock.now().to_rfc3339() };
    write_line(out, &header)?;
    let mut counts = Counts::new();
    let mut total = 0;
    for table in store.dump_tables() {
        let mut after = None;
        let mut rows_of_table = 0;
        loop {
            let (rows, next) = store
                .dump_rows(table, after.as_ref(), PAGE)
                .await
                .with_context(|| format!("while reading table {table}"))?;
            for row in &rows {
                write_line(out, &RowLine { table, row })?;
            }
            rows_of_table += rows.len() as u64;
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        total += rows_of_table;
        counts.push((table, rows_of_table));
    }
    write_line(out, &EndLine { end: true, rows: total })?;
    Ok((schema_version, counts))
}

/// `value` as one line of JSON.
fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value).context("while writing the export")?;
    out.write_all(b"\n").context("while writing the export")
}

/// Creates `path`, which must not exist, readable by its owner only.
fn create_private(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("while creating {}", path.display()))
}

/// Writes the export to the new file `path` and flushes it to disk; a failed export is removed (it is
/// of no use, and it holds hashes).
async fn export_to_file(store: &dyn Store, path: &Path) -> anyhow::Result<(i64, Counts)> {
    let mut out = BufWriter::new(create_private(path)?);
    let written = write_export(store, &mut out).await.and_then(|written| {
        let file = out.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        Ok(written)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written.with_context(|| format!("while writing {}", path.display()))
}

/// Writes the export of the database `--db`/`--database-url` names to `--to` or standard output.
pub(crate) async fn run(global: &GlobalArgs, args: ExportArgs) -> CliResult {
    let url = database_url(global)?;
    // Opening a SQLite file that is not there would make an empty database, and export nothing.
    if beside_database(&url, "db", "").is_ok_and(|file| !file.exists()) {
        let field = if global.database_url.is_some() { "database_url" } else { "db" };
        return Err(ValidationError::new(field, "names no database to export").into());
    }
    if args.to.as_deref().is_some_and(Path::exists) {
        return Err(ValidationError::new("to", "already exists: an export never overwrites").into());
    }
    let store =
        tollgate::open(&url).await.with_context(|| format!("while opening {}", tollgate::redact_database_url(&url)))?;
    let Some(path) = &args.to else {
        let mut out = BufWriter::new(std::io::stdout());
        write_export(store.as_ref(), &mut out).await?;
        out.flush().context("while writing the export to standard output")?;
        return Ok(ExitCode::SUCCESS);
    };
    let (schema_version, counts) = export_to_file(store.as_ref(), path).await?;
    let total: u64 = counts.iter().map(|(_, rows)| rows).sum();
    if global.json {
        let tables: serde_json::Map<String, serde_json::Value> =
            counts.iter().map(|(table, rows)| ((*table).to_owned(), (*rows).into())).collect();
        print_json(&serde_json::json!({
            "file": path, "schema_version": schema_version, "rows": total, "tables": tables,
        }));
    } else {
        say!(
            "exported {total} rows of {} tables to {} (schema version {schema_version})",
            counts.len(),
            path.display()
        );
        say!("the key files are not in the export: copy them to where the database is imported");
    }
    Ok(ExitCode::SUCCESS)
}

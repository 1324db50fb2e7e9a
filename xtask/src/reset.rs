//! `cargo xtask reset`: back a development database up beside it (with its -wal/-shm/-journal and
//! key files) and recreate it from the migrations with `tollgate migrate`, then mark it as a
//! development database. Refuses anything that might not be one.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::db::{self, marker, tables_with_rows, with_connection};
use crate::tollgate::Tollgate;
use crate::workspace::{shown, with_suffix};

/// The files that make up a SQLite database and its tollgate keys (token hashing, access-token
/// signing, the vault's master keys: a backup without them could not open its provider keys), by
/// suffix of the database path.
const COMPANIONS: [&str; 7] = ["", "-wal", "-shm", "-journal", ".key", ".jwt.key", ".vault.key"];

/// What `reset` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    /// The database, as shown to the user.
    pub db: String,
    /// Where the previous files went, when there were any.
    pub backup: Option<PathBuf>,
    /// The file names moved into the backup.
    pub backed_up: Vec<String>,
}

impl fmt::Display for ResetOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backup {
            Some(backup) => writeln!(f, "backed up {} to {}/", self.backed_up.join(", "), backup.display())?,
            None => writeln!(f, "nothing to back up: {} did not exist", self.db)?,
        }
        write!(f, "recreated {} from the migrations and marked it as a development database", self.db)
    }
}

/// Checks that `db` may be reset: inside `root`, not named like production, and either missing,
/// marked as a development database, or without data. The error says which rule refused it.
pub fn check_reset_target(root: &Path, db: &Path) -> anyhow::Result<()> {
    let root = root.canonicalize().with_context(|| format!("while resolving {}", root.display()))?;
    let Some(name) = db.file_name() else {
        bail!("refusing {}: not a database file path", db.display());
    };
    let parent = db.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent =
        parent.canonicalize().with_context(|| format!("refusing {}: its directory does not exist", db.display()))?;
    // Resolve a symbolic link to where the data really is.
    let resolved = if db.exists() { db.canonicalize()? } else { parent.join(name) };
    let Ok(relative) = resolved.strip_prefix(&root) else {
        bail!(
            "refusing {}: it is outside the workspace ({}); reset only recreates development databases inside \
             the repository",
            resolved.display(),
            root.display()
        );
    };
    let lowered = relative.to_string_lossy().to_lowercase();
    if lowered.contains("prod") {
        bail!(
            "refusing ./{}: the name looks like a production database (it contains \"prod\"); development \
             databases live at ./tollgate.db",
            relative.display()
        );
    }
    if resolved.is_dir() {
        bail!("refusing ./{}: it is a directory", relative.display());
    }
    if !resolved.exists() {
        return Ok(());
    }
    let shown = format!("./{}", relative.display());
    let (is_marked, data) = with_connection(&resolved, async |connection| {
        let is_marked = marker(connection).await?.is_some();
        Ok((is_marked, tables_with_rows(connection).await?))
    })
    .with_context(|| format!("refusing {shown}: it cannot be read as a SQLite database"))?;
    if !is_marked && !data.is_empty() {
        let tables: Vec<String> = data.iter().map(|(table, rows)| format!("{table}: {rows} rows")).collect();
        bail!(
            "refusing {shown}: it holds data ({}) but no development marker, so it may be a real database; \
             move it away yourself if you are sure",
            tables.join(", ")
        );
    }
    Ok(())
}

/// Backs `db` up and recreates it (see the module documentation).
pub fn reset(root: &Path, tollgate: &Tollgate, db: &Path) -> anyhow::Result<ResetOutcome> {
    check_reset_target(root, db)?;
    let present: Vec<PathBuf> =
        COMPANIONS.iter().map(|suffix| with_suffix(db, suffix)).filter(|path| path.exists()).collect();
    let mut outcome = ResetOutcome { db: shown(root, db), backup: None, backed_up: Vec::new() };
    if !present.is_empty() {
        let backup = backup_dir(db)?;
        for path in &present {
            let name = path.file_name().context("a database file has a name")?;
            std::fs::rename(path, backup.join(name))
                .with_context(|| format!("while moving {} into {}", path.display(), backup.display()))?;
            outcome.backed_up.push(name.to_string_lossy().into_owned());
        }
        outcome.backup = Some(PathBuf::from(shown(root, &backup)));
    }
    tollgate.run(db, &["migrate"], None)?;
    db::write_marker(db, db::now_micros())?;
    Ok(outcome)
}

/// A new directory `<db>.backup-<UTC time>` (with `-2`, `-3`, … when two resets share a second).
fn backup_dir(db: &Path) -> anyhow::Result<PathBuf> {
    let now = tollgate_types::Timestamp::from_unix_micros(db::now_micros() / 1_000_000 * 1_000_000);
    // 2026-01-31T12:00:00Z → 20260131T120000Z: sortable, and valid in file names everywhere.
    let stamp: String = now.to_rfc3339().chars().filter(|c| *c != '-' && *c != ':').collect();
    for attempt in 1..100 {
        let suffix = if attempt == 1 { format!(".backup-{stamp}") } else { format!(".backup-{stamp}-{attempt}") };
        let candidate = with_suffix(db, &suffix);
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error).with_context(|| format!("while creating {}", candidate.display())),
        }
    }
    bail!("cannot find a free backup directory name beside {}", db.display())
}

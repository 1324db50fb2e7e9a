//! Where things are: the repository root, the canonical development database, the target directory.

use std::path::{Path, PathBuf};

/// The one development database path, relative to the repository root (`./tollgate.db`): the
/// `tollgate` default, and the only database path the paths validator accepts outside tests.
pub const CANONICAL_DB: &str = "tollgate.db";

/// The repository root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The canonical development database of the repository at `root`.
pub fn canonical_db(root: &Path) -> PathBuf {
    root.join(CANONICAL_DB)
}

/// The database a command works on: `--db` (relative to the current directory, as a shell user
/// expects) or the canonical one.
pub(crate) fn db_or_canonical(root: &Path, db: Option<PathBuf>) -> PathBuf {
    match db {
        Some(path) if path.is_absolute() => path,
        Some(path) => std::env::current_dir().map(|dir| dir.join(&path)).unwrap_or(path),
        None => canonical_db(root),
    }
}

/// `path` relative to `root` for messages (`./tollgate.db`), or as given when outside it.
pub(crate) fn shown(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => format!("./{}", relative.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Cargo's target directory for this workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// A `cargo` command in `root`: the cargo that runs us (so a toolchain override applies), or `cargo`
/// from `PATH`. The variables cargo set for *this* package are removed: build scripts (ring's among
/// them) watch `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …, and would otherwise see a change and rebuild
/// on every alternation between `cargo xtask` and a plain `cargo build`.
pub(crate) fn cargo(root: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        let ours = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE"]
            .iter()
            .any(|prefix| name_text.starts_with(prefix));
        if ours || name_text == "CARGO_TARGET_TMPDIR" || name_text == "CARGO_RUSTC_CURRENT_DIR" {
            command.env_remove(&name);
        }
    }
    command
}

/// A file beside `path` with `suffix` appended to its name (`tollgate.db` + `-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

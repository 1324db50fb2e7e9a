//! `validate paths`: `./tollgate.db` is the only database path outside tests, and no file holds an
//! absolute path of somebody's machine. Runs over the files git tracks (or, outside a git checkout,
//! every file under the root but `target/` and `.git/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Violation;
use super::rust_text::strings_and_comments;
use crate::workspace::CANONICAL_DB;

/// Database file extensions.
const DB_EXTENSIONS: [&str; 4] = [".db", ".sqlite", ".sqlite3", ".db3"];

/// Top-level directories of local machines (home directories, temporary files, this build machine).
/// The patterns are assembled at run time, so this file does not match itself.
const LOCAL_ROOTS: [&str; 5] = ["home", "Users", "work", "tmp", "root"];

/// Exceptions: `(file, needle, reason)`. `file` is a path or a folder prefix (ending in `/`); `needle`,
/// when set, limits the exception to findings containing it. Every entry says why it is justified.
const ALLOWED: &[(&str, Option<&str>, &str)] = &[
    ("xtask/tests/fixtures/", None, "fixture trees with known violations, which the validators' own tests must find"),
    (
        "xtask/src/validate/schema.rs",
        Some("fresh."),
        "validate schema migrates a scratch database under target/ to compare it with the migrations",
    ),
    (
        "crates/tollgate/src/open.rs",
        Some("path/to/file"),
        "documents the sqlite:// URL syntax with a placeholder, not a database",
    ),
];

fn allowed(file: &str, finding: &str) -> bool {
    ALLOWED.iter().any(|(allowed_file, needle, _reason)| {
        let file_matches =
            if allowed_file.ends_with('/') { file.starts_with(allowed_file) } else { file == *allowed_file };
        file_matches && needle.is_none_or(|needle| finding.contains(needle))
    })
}

/// Checks every file under `root`; returns every violation, sorted by file and line.
pub fn check_paths(root: &Path) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for file in files(root)? {
        // Binary and non-UTF-8 files hold no paths worth reading.
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else { continue };
        let name = file.to_string_lossy().replace('\\', "/");
        check_file(&name, &text, &mut violations);
    }
    violations.sort();
    Ok(violations)
}

/// The files to check, relative to `root`.
fn files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if root.join(".git").exists() {
        let output = Command::new("git")
            .current_dir(root)
            .args(["ls-files", "-z", "--cached"])
            .output()
            .context("while running git ls-files")?;
        if !output.status.success() {
            bail!("git ls-files failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        return Ok(output
            .stdout
            .split(|byte| *byte == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .filter(|path| root.join(path).is_file())
            .collect());
    }
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(root.join(&directory))
            .with_context(|| format!("while listing {}", directory.display()))?;
        for entry in entries {
            let entry = entry?;
            let relative = directory.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                if entry.file_name() != "target" && entry.file_name() != ".git" {
                    pending.push(relative);
                }
            } else {
                found.push(relative);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `file` is test code as a whole (database paths are free there): under a `tests`,
/// `benches` or `conformance` folder, or a module of unit tests kept in its own file (`tests.rs`,
/// `…_tests.rs`).
fn is_test_file(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or_default();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || file.split('/').any(|part| matches!(part, "tests" | "benches" | "conformance"))
}

fn check_file(file: &str, text: &str, violations: &mut Vec<Violation>) {
    for (number, line) in text.lines().enumerate() {
        for path in absolute_local_paths(line) {
            if !allowed(file, &path) {
                let message = format!("absolute local path {path:?}: use a path relative to the repository root");
                violations.push(Violation::at(file, number + 1, message));
            }
        }
    }
    if is_test_file(file) {
        return;
    }
    let pieces: Vec<(usize, String)> = if file.ends_with(".rs") {
        // A `#[cfg(test)]` module closes the file by convention: what follows is test code.
        let end = text.lines().position(|line| line.trim_start().starts_with("#[cfg(test)]"));
        strings_and_comments(text).into_iter().filter(|(line, _)| end.is_none_or(|end| *line <= end)).collect()
    } else {
        text.lines().enumerate().map(|(number, line)| (number + 1, line.to_owned())).collect()
    };
    for (line, piece) in pieces {
        for path in database_paths(&piece) {
            if !is_canonical(&path) && !allowed(file, &path) {
                let message = format!(
                    "database path {path:?}: the development database is ./{CANONICAL_DB}; tests use temporary files"
                );
                violations.push(Violation::at(file, line, message));
            }
        }
    }
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '\\' | '-' | '~' | ':' | '$' | '{' | '}')
}

/// Path-like words ending in a database extension (a relative path, a file name, a `sqlite:` URL),
/// ignoring globs (`*.db`) and bare extensions.
fn database_paths(text: &str) -> Vec<String> {
    text.split(|c: char| !is_path_char(c))
        .map(|word| word.trim_end_matches(['.', ':', ',']))
        .filter(|word| {
            let lowered = word.to_lowercase();
            DB_EXTENSIONS.iter().any(|extension| {
                lowered.ends_with(extension) && {
                    let stem = &lowered[..lowered.len() - extension.len()];
                    let name = stem.rsplit(['/', '\\', ':']).next().unwrap_or(stem);
                    !name.is_empty()
                }
            })
        })
        .map(str::to_owned)
        .collect()
}

/// `./tollgate.db`, `tollgate.db`, or a `sqlite:` URL of it.
fn is_canonical(path: &str) -> bool {
    let path = path.strip_prefix("sqlite://").or_else(|| path.strip_prefix("sqlite:")).unwrap_or(path);
    path.strip_prefix("./").unwrap_or(path) == CANONICAL_DB
}

/// Absolute paths into local machines: a [`LOCAL_ROOTS`] folder at the start of a path (also in a
/// `file:///` or `sqlite:///` URL), and Windows drive paths (a letter, a colon, a backslash). URLs and relative paths that merely contain
/// such a folder are not flagged.
fn absolute_local_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    for (position, &(offset, c)) in chars.iter().enumerate() {
        let before = position.checked_sub(1).map(|previous| chars[previous].1);
        let starts_word = before.is_none_or(|b| !(b.is_alphanumeric() || matches!(b, '_' | '.' | '-' | '~' | '$')));
        let hit = if c == '/' {
            let rest = &line[offset + 1..];
            let local = LOCAL_ROOTS.iter().any(|root| rest.starts_with(root) && rest[root.len()..].starts_with('/'));
            // After a slash only when the URL has an empty host (`file:///…`, `sqlite:///…`).
            let from_url = before == Some('/') && !line[..offset].ends_with("://");
            local && starts_word && !from_url
        } else {
            // A drive letter, a colon and a backslash.
            c.is_ascii_alphabetic()
                && starts_word
                && line[offset + 1..].starts_with(":\\")
                && !before.is_some_and(|b| b == ':' || b == '/')
        };
        if hit {
            let end =
                line[offset..].find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | ',' | ';'));
            found.push(line[offset..end.map_or(line.len(), |end| offset + end)].to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(root: &str, rest: &str) -> String {
        format!("/{root}/{rest}")
    }

    #[test]
    fn database_paths_are_found_and_globs_and_extensions_are_not() {
        assert_eq!(database_paths("see data/dev.sqlite, and ./tollgate.db."), vec!["data/dev.sqlite", "./tollgate.db"]);
        assert_eq!(database_paths("*.db and .db files, tollgate.db-wal, tollgate.db.key"), Vec::<String>::new());
        assert_eq!(database_paths("url sqlite://x.db"), vec!["sqlite://x.db"]);
        assert!(
            is_canonical("sqlite://./tollgate.db") && is_canonical("tollgate.db") && !is_canonical("a/tollgate.db")
        );
    }

    #[test]
    fn local_paths_are_found_and_urls_are_not() {
        let home = local("home", "alice/x");
        assert_eq!(absolute_local_paths(&format!("cd {home} && ls")), vec![home.clone()]);
        assert_eq!(absolute_local_paths(&format!("\"{home}\"")), vec![home]);
        let temp = local("tmp", "a.db");
        assert_eq!(absolute_local_paths(&format!("url = \"file://{temp}\"")), vec![temp.clone()]);
        assert_eq!(absolute_local_paths(&format!("sqlite:{temp}")), vec![temp]);
        assert!(absolute_local_paths(&format!("https://example.com{}", local("work", "x"))).is_empty());
        assert!(absolute_local_paths(&format!("crates{}", local("tmp", "x"))).is_empty());
        assert!(absolute_local_paths("/homepage/ and /tmpfs/").is_empty());
        let drive = format!("{}:\\Users\\bob", 'C');
        assert_eq!(absolute_local_paths(&format!("open {drive}")), vec![drive]);
        assert!(absolute_local_paths("sqlite::memory: and a:b and http://x").is_empty());
    }
}

//! `validate paths` on a fixture tree with known violations: it reports every one, with file and
//! line, and nothing else; and in a git checkout it reads only tracked files.

use std::path::Path;
use std::process::Command;

use xtask::{Violation, check_paths};

fn fixture_tree() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paths")
}

/// `(file, line, what the message must contain)` for each violation, in report order.
fn assert_reports(violations: &[Violation], expected: &[(&str, usize, &str)]) {
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(violations.len(), expected.len(), "got:\n{}", shown.join("\n"));
    for (violation, (file, line, needle)) in violations.iter().zip(expected) {
        assert_eq!((violation.file.as_str(), violation.line), (*file, Some(*line)), "{violation}");
        assert!(violation.message.contains(needle), "{violation} should mention {needle}");
    }
}

#[test]
fn every_violation_in_the_fixture_tree_is_reported_with_file_and_line() {
    let violations = check_paths(&fixture_tree()).unwrap();
    let windows = format!("absolute local path {:?}", format!("{}:\\\\Users\\\\carol", 'C'));
    assert_reports(
        &violations,
        &[
            ("README.md", 3, "database path \"data/dev.sqlite\""),
            ("README.md", 4, &format!("absolute local path \"/{}/alice/tollgate\"", "home")),
            ("config.toml", 1, &format!("absolute local path \"/{}/alice/tollgate.db\"", "work")),
            ("config.toml", 1, &format!("database path \"sqlite:///{}/alice/tollgate.db\"", "work")),
            ("scripts/dev.sh", 3, "database path \"prod.db\""),
            ("src/lib.rs", 5, "database path \"cache/other.db\""),
            ("src/lib.rs", 6, &format!("absolute local path \"/{}/scratch.db\"", "tmp")),
            ("src/lib.rs", 6, &format!("database path \"/{}/scratch.db\"", "tmp")),
            ("src/lib.rs", 12, &format!("absolute local path \"/{}/bob/project\"", "Users")),
            ("tests/it.rs", 3, &windows),
        ],
    );
}

#[test]
fn in_a_git_checkout_only_tracked_files_are_read() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    let git = |arguments: &[&str]| {
        let status = Command::new("git").current_dir(root).args(arguments).status().unwrap();
        assert!(status.success(), "git {arguments:?}");
    };
    git(&["init", "--quiet"]);
    std::fs::write(root.join("tracked.md"), "see data/tracked.db\n").unwrap();
    std::fs::write(root.join("untracked.md"), "see data/untracked.db\n").unwrap();
    git(&["add", "tracked.md"]);
    let violations = check_paths(root).unwrap();
    assert_reports(&violations, &[("tracked.md", 1, "data/tracked.db")]);
}

#[test]
fn the_repository_itself_is_clean() {
    let violations = check_paths(&xtask::project_root()).unwrap();
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}", shown.join("\n"));
}

//! Upgrading is a step the operator takes: a database made by an earlier release is refused by
//! every command (naming both schema versions) and by `serve`, until `tollgate migrate` or
//! `serve --migrate` upgrades it; a new database still gets its schema on first use.

mod support;

use std::path::Path;

use support::{Server, cli, cli_json};

/// A copy of the previous release's database and key files in a new directory.
fn previous_release() -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/previous_release");
    for file in ["tollgate.db", "tollgate.db.key", "tollgate.db.jwt.key"] {
        std::fs::copy(fixture.join(file), directory.path().join(file)).unwrap();
    }
    directory
}

/// Runs `tollgate serve` expecting it to exit by itself (within a minute); its code and stderr.
fn serve_until_exit(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(support::BINARY)
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("TOLLGATE_DB")
        .env_remove("TOLLGATE_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running on a database it should refuse");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn an_older_schema_is_refused_until_it_is_migrated_on_purpose() {
    let fresh = tempfile::tempdir().unwrap();
    let latest = cli_json(fresh.path(), &["--json", "migrate"])["schema_version"].as_i64().unwrap();
    let listed = cli(fresh.path(), &["--json", "token", "list"]);
    assert!(listed.status.success(), "a new database gets its schema on first use");

    let old = previous_release();
    let dir = old.path();
    let refused = cli(dir, &["--json", "token", "list"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("schema version 3") && message.contains(&format!("needs {latest}")), "{message}");
    assert!(message.contains("tollgate migrate"), "{message}");

    let (code, log) = serve_until_exit(dir, &["--db", "tollgate.db"]);
    assert_ne!(code, Some(0), "serve refuses an older schema without --migrate");
    assert!(log.contains("schema version 3") && log.contains("tollgate migrate"), "{log}");

    let migrated = cli_json(dir, &["--json", "migrate"]);
    assert_eq!(migrated["schema_version"], latest);
    let listed = cli(dir, &["--json", "token", "list", "--status", "all"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));

    // `serve --migrate` is the other explicit way.
    let other = previous_release();
    let mut server = Server::start(other.path(), &["--db", "tollgate.db", "--migrate"], &[]);
    assert_eq!(server.request("GET", "/health", None, None).status, 200);
    assert_eq!(server.terminate(), 0);
    assert_eq!(cli_json(other.path(), &["--json", "migrate"])["schema_version"], latest);
}

//! `validate schema` on fixture trees and databases with known violations: misnamed, missing and
//! mismatched migration files across backends; a database whose tables, columns, indexes and
//! triggers differ from what the migrations declare; edited and unknown applied migrations.

use std::path::Path;

use sqlx::{Connection, SqliteConnection};
use xtask::{Violation, check_migrated_database, check_migration_folders};

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn shown(violations: &[Violation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

/// Asserts one violation per expected `(file:line prefix, needle)`, in order.
fn assert_reports(violations: &[Violation], expected: &[(&str, &str)]) {
    let lines = shown(violations);
    assert_eq!(lines.len(), expected.len(), "got:\n{}", lines.join("\n"));
    for (line, (prefix, needle)) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(prefix) && line.contains(needle),
            "{line}\n should start with {prefix} and mention {needle}"
        );
    }
}

#[test]
fn migration_folders_report_bad_names_gaps_duplicates_and_every_mismatch_between_backends() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    for file in ["0001_init.sql", "0002_users.sql", "0004_usage.sql", "2_bad.sql", "0002_copy.sql"] {
        write(root, &format!("migrations/sqlite/{file}"), "SELECT 1;");
    }
    write(root, "migrations/sqlite/README.md", "not a migration, not checked");
    for file in ["0001_init.sql", "0002_people.sql", "0005_extra.sql"] {
        write(root, &format!("migrations/postgres/{file}"), "SELECT 1;");
    }
    let mut violations = check_migration_folders(root).unwrap();
    violations.sort();
    assert_reports(
        &violations,
        &[
            ("migrations/postgres: ", "version 0003 is missing"),
            ("migrations/postgres: ", "version 0004 is missing"),
            ("migrations/postgres/0005_extra.sql:1: ", "migrations/sqlite has no version 0005"),
            ("migrations/sqlite: ", "version 0003 is missing"),
            ("migrations/sqlite/0002_copy.sql:1: ", "names version 0002 \"people\""),
            ("migrations/sqlite/0002_users.sql:1: ", "names version 0002 \"people\""),
            ("migrations/sqlite/0002_users.sql:1: ", "version 0002 is also used by migrations/sqlite/0002_copy.sql"),
            ("migrations/sqlite/0004_usage.sql:1: ", "migrations/postgres has no 0004_usage.sql"),
            ("migrations/sqlite/2_bad.sql:1: ", "NNNN_name.sql"),
        ],
    );
}

#[test]
fn an_empty_or_missing_second_backend_is_fine() {
    let directory = tempfile::tempdir().unwrap();
    write(directory.path(), "migrations/sqlite/0001_init.sql", "SELECT 1;");
    assert!(check_migration_folders(directory.path()).unwrap().is_empty());
    std::fs::create_dir_all(directory.path().join("migrations/postgres")).unwrap();
    write(directory.path(), "migrations/postgres/.gitkeep", "");
    assert!(check_migration_folders(directory.path()).unwrap().is_empty());
}

const DECLARED: &str = "-- the declared schema\n\
CREATE TABLE accounts (\n    id TEXT PRIMARY KEY,\n    name TEXT NOT NULL,\n    UNIQUE (name)\n) STRICT;\n\
CREATE INDEX accounts_name ON accounts (name);\n\
CREATE TRIGGER accounts_keep BEFORE DELETE ON accounts\nBEGIN\n    SELECT RAISE(ABORT, 'kept');\nEND;\n\
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n";

const LATER: &str = "ALTER TABLE notes ADD COLUMN author TEXT;\nCREATE INDEX notes_author ON notes (author);\n";

/// A database built by hand to differ from [`DECLARED`] + [`LATER`] in known ways.
const ACTUAL: &str = "CREATE TABLE accounts (\n    id TEXT PRIMARY KEY,\n    label TEXT NOT NULL,\n    UNIQUE (label)\n) STRICT;\n\
CREATE TRIGGER accounts_keep BEFORE DELETE ON accounts BEGIN SELECT RAISE(ABORT, 'changed'); END;\n\
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, author TEXT);\n\
CREATE TABLE stray (x INTEGER);\n\
CREATE TABLE _tollgate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum BLOB NOT NULL, applied_at INTEGER NOT NULL) STRICT;\n\
CREATE TABLE _tollgate_dev_marker (id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, seed_anchor INTEGER) STRICT;";

fn sha256(text: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().to_vec()
}

fn build_database(path: &Path, sql: &str, applied: &[(i64, &str, Vec<u8>)]) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut connection = SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
        for (version, name, checksum) in applied {
            sqlx::query("INSERT INTO _tollgate_migrations VALUES (?, ?, ?, 0)")
                .bind(version)
                .bind(name)
                .bind(checksum)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        connection.close().await.unwrap();
    });
}

#[test]
fn a_database_that_differs_from_the_migrations_is_reported_difference_by_difference() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    write(root, "migrations/sqlite/0001_init.sql", DECLARED);
    write(root, "migrations/sqlite/0002_authors.sql", LATER);
    write(root, "migrations/sqlite/0003_pending.sql", "CREATE TABLE pending (x INTEGER);");
    let db = root.join("test.db");
    // 0001 applied as it was before an edit, 0002 applied unchanged, 0003 never applied, 0009 unknown.
    let applied =
        [(1, "init", sha256("-- the original text\n")), (2, "authors", sha256(LATER)), (9, "future", vec![0; 32])];
    build_database(&db, ACTUAL, &applied);

    let mut violations = check_migrated_database(root, &db, "test.db").unwrap();
    violations.sort();
    assert_reports(
        &violations,
        &[
            ("migrations/sqlite: ", "table stray is in a freshly migrated database but no migration declares it"),
            ("migrations/sqlite: ", "test.db records migration 0009_future but there is no such file"),
            ("migrations/sqlite/0001_init.sql:1: ", "edited after it was applied to test.db"),
            (
                "migrations/sqlite/0001_init.sql:2: ",
                "table accounts has columns (id, label) in the database, here (id, name)",
            ),
            ("migrations/sqlite/0001_init.sql:2: ", "table accounts is defined differently"),
            ("migrations/sqlite/0001_init.sql:7: ", "index accounts_name is declared here but missing"),
            ("migrations/sqlite/0001_init.sql:8: ", "trigger accounts_keep is defined differently"),
            ("migrations/sqlite/0002_authors.sql:2: ", "index notes_author is declared here but missing"),
            ("migrations/sqlite/0003_pending.sql:1: ", "not applied by tollgate migrate to test.db"),
            ("migrations/sqlite/0003_pending.sql:1: ", "table pending is declared here but missing"),
        ],
    );
}

#[test]
fn a_database_built_from_the_migrations_matches_them() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    write(root, "migrations/sqlite/0001_init.sql", DECLARED);
    write(root, "migrations/sqlite/0002_authors.sql", LATER);
    let db = root.join("test.db");
    let bookkeeping = "CREATE TABLE _tollgate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
                       checksum BLOB NOT NULL, applied_at INTEGER NOT NULL) STRICT;";
    build_database(
        &db,
        &format!("{DECLARED}\n{LATER}\n{bookkeeping}"),
        &[(1, "init", sha256(DECLARED)), (2, "authors", sha256(LATER))],
    );
    let violations = check_migrated_database(root, &db, "test.db").unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations).join("\n"));
}

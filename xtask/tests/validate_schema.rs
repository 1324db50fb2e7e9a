//! `validate schema` on fixture trees and databases with known violations: misnamed, missing and
//! mismatched migration files across backends; a database whose tables, columns, indexes and
//! triggers differ from what the migrations declare; edited and unknown applied migrations; table
//! rebuilds (create, copy, drop, rename), whose rebuilt definition is still compared.

use std::path::Path;

use sqlx::{Connection, SqliteConnection};
use xtask::{Tollgate, Violation, check_migrated_database, check_migration_folders, project_root};

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
fn a_migration_that_inserts_an_agent_a_provider_key_or_a_token_is_reported_in_every_backend() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    let rebuild = "CREATE TABLE tokens_rebuilt (id TEXT);\n\
                   INSERT INTO tokens_rebuilt (id) SELECT id FROM tokens;\n\
                   DROP TABLE tokens;\n\
                   ALTER TABLE tokens_rebuilt RENAME TO tokens;\n";
    let seeding = "-- a development agent, key and token: never in a migration\n\
                   INSERT INTO agents (id, name) VALUES ('agt_1', 'dev');\n\
                   INSERT INTO provider_keys (id) SELECT 'pk_1';\n\
                   INSERT INTO tokens (id) VALUES ('tok_1');\n";
    for backend in ["sqlite", "postgres"] {
        write(root, &format!("migrations/{backend}/0001_init.sql"), rebuild);
        write(root, &format!("migrations/{backend}/0002_seed.sql"), seeding);
    }
    let mut violations = check_migration_folders(root).unwrap();
    violations.sort();
    let mut expected = Vec::new();
    for backend in ["postgres", "sqlite"] {
        for (line, table) in [(2, "agents"), (3, "provider_keys"), (4, "tokens")] {
            expected
                .push((format!("migrations/{backend}/0002_seed.sql:{line}: "), format!("inserts rows into {table}:")));
        }
    }
    let expected: Vec<(&str, &str)> =
        expected.iter().map(|(prefix, needle)| (prefix.as_str(), needle.as_str())).collect();
    assert_reports(&violations, &expected);
    // The repository's own migrations hold no development data.
    let ours = check_migration_folders(&project_root()).unwrap();
    let inserts: Vec<String> = shown(&ours).into_iter().filter(|line| line.contains("inserts rows into")).collect();
    assert!(inserts.is_empty(), "{}", inserts.join("\n"));
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

/// A table rebuild as 0004 and 0005 do it: the new table under a working name, a scratch table made
/// and dropped on the way, the old table dropped (its index and trigger with it), the new one renamed,
/// its index and trigger created again.
const REBUILD: &str = "CREATE TABLE _upgrade_names (name TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;\n\
CREATE TABLE accounts_rebuilt (\n    id TEXT PRIMARY KEY,\n    name TEXT NOT NULL CHECK (length(name) <= 64)\n) STRICT;\n\
INSERT INTO accounts_rebuilt (id, name) SELECT id, name FROM accounts;\n\
DROP TABLE accounts;\n\
ALTER TABLE accounts_rebuilt RENAME TO accounts;\n\
CREATE INDEX accounts_name ON accounts (name);\n\
DROP TABLE _upgrade_names;\n";

const BOOKKEEPING: &str = "CREATE TABLE _tollgate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
                           checksum BLOB NOT NULL, applied_at INTEGER NOT NULL) STRICT;";

#[test]
fn a_rebuilt_table_matches_its_rebuild_and_is_still_compared_by_definition() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    write(root, "migrations/sqlite/0001_init.sql", DECLARED);
    write(root, "migrations/sqlite/0002_rebuild.sql", REBUILD);
    let applied = [(1, "init", sha256(DECLARED)), (2, "rebuild", sha256(REBUILD))];
    // SQLite itself runs the rebuild (and rewrites the renamed table's CREATE statement).
    let db = root.join("rebuilt.db");
    build_database(&db, &format!("{DECLARED}\n{REBUILD}\n{BOOKKEEPING}"), &applied);
    let violations = check_migrated_database(root, &db, "rebuilt.db").unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations).join("\n"));

    // The same rebuild with another CHECK: the columns agree, the definition does not.
    let drifted = root.join("drifted.db");
    let other = REBUILD.replace("length(name) <= 64", "length(name) <= 128");
    build_database(&drifted, &format!("{DECLARED}\n{other}\n{BOOKKEEPING}"), &applied);
    let violations = check_migrated_database(root, &drifted, "drifted.db").unwrap();
    assert_reports(&violations, &[("migrations/sqlite/0002_rebuild.sql:2: ", "table accounts is defined differently")]);
}

#[test]
fn the_rebuilt_tables_of_the_repository_migrations_are_compared_by_definition() {
    // tollgate migrate applies the real migrations; the copy read as "declared" tightens a CHECK in each
    // table that 0004 and 0005 rebuild, so each rebuilt table must be reported as defined differently,
    // unless a later migration alters it (SQLite rewrites an altered table's definition: from then on
    // it is compared by its columns only).
    let tollgate = Tollgate::build(&project_root()).expect("tollgate-cli builds");
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    let source = project_root().join("migrations/sqlite");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    let altered_after = |file: &str, table: &str| {
        let alter = format!("ALTER TABLE {table} ");
        files.iter().any(|(later, text)| later.as_str() > file && text.contains(&alter))
    };
    let mut rebuilt = Vec::new();
    for (file, original) in &files {
        let mut text = original.clone();
        let mut search_from = 0;
        while let Some(found) = text[search_from..].find("CREATE TABLE ") {
            let at = search_from + found;
            let name_start = at + "CREATE TABLE ".len();
            let name_end = name_start + text[name_start..].find(' ').unwrap();
            search_from = name_end;
            let Some(table) = text[name_start..name_end].strip_suffix("_rebuilt").map(str::to_owned) else { continue };
            let line = text[..at].lines().count() + 1;
            let end = name_end + text[name_end..].find(") STRICT").unwrap();
            let body = text[name_end..end].replacen("CHECK (", "CHECK (0 = 1 OR ", 1);
            text.replace_range(name_end..end, &body);
            if !altered_after(file, &table) {
                rebuilt.push((
                    format!("migrations/sqlite/{file}:{line}: "),
                    format!("table {table} is defined differently"),
                ));
            }
        }
        write(root, &format!("migrations/sqlite/{file}"), &text);
    }
    assert!(
        rebuilt.len() >= 3,
        "0004 and 0005 rebuild audit_log, tokens (altered by 0007), quota limits, counters, rollups (altered by \
         0009): {rebuilt:?}"
    );
    let db = root.join("fresh.db");
    tollgate.run(&db, &["migrate"], None).unwrap();
    let lines = shown(&check_migrated_database(root, &db, "fresh.db").unwrap());
    for (prefix, needle) in &rebuilt {
        let found = lines.iter().filter(|line| line.starts_with(prefix.as_str()) && line.contains(needle.as_str()));
        assert_eq!(found.count(), 1, "expected {prefix}{needle} in\n{}", lines.join("\n"));
    }
    let edited = lines.iter().filter(|line| line.contains("edited after it was applied")).count();
    let definitions = lines.iter().filter(|line| line.contains("is defined differently")).count();
    assert_eq!((definitions, edited + definitions), (rebuilt.len(), lines.len()), "{}", lines.join("\n"));
}

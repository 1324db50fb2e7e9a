//! reset, seed and `validate seed` through the real `tollgate` binary, in scratch repositories:
//! reset refuses what may not be a development database and backs up everything it replaces; seed
//! refuses unmarked databases, is idempotent, and its result validates; validate reports every drift.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sqlx::{Connection, Row, SqliteConnection};
use xtask::{
    Fixture, Tollgate, Violation, check_reset_target, check_schema, check_seed, project_root, read_marker, reset, seed,
};

fn tollgate() -> &'static Tollgate {
    static TOLLGATE: OnceLock<Tollgate> = OnceLock::new();
    TOLLGATE.get_or_init(|| Tollgate::build(&project_root()).expect("tollgate-cli builds"))
}

fn fixture() -> Fixture {
    Fixture::load(&project_root()).unwrap()
}

/// A scratch repository root and its canonical database path.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("tollgate.db");
    (directory, db)
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.unwrap()
}

fn execute(db: &Path, sql: &str) {
    block_on(async {
        let mut connection = connect(db).await;
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
    });
}

/// Every row of every table, and the schema, as text.
fn dump(db: &Path) -> Vec<String> {
    block_on(async {
        let mut connection = connect(db).await;
        let tables: Vec<(String, String)> =
            sqlx::query_as("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut connection)
                .await
                .unwrap();
        let mut lines = Vec::new();
        for (table, sql) in tables {
            lines.push(sql);
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(&mut connection)
                .await
                .unwrap();
            let select =
                columns.iter().map(|column| format!("quote({column})")).collect::<Vec<_>>().join(" || '|' || ");
            for row in sqlx::query(&format!("SELECT {select} AS line FROM {table} ORDER BY 1"))
                .fetch_all(&mut connection)
                .await
                .unwrap()
            {
                lines.push(format!("{table}: {}", row.get::<String, _>("line")));
            }
        }
        connection.close().await.unwrap();
        lines
    })
}

fn shown(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn refusal(root: &Path, db: &Path) -> String {
    format!("{:#}", check_reset_target(root, db).unwrap_err())
}

#[test]
fn reset_refuses_paths_outside_the_workspace_and_names_that_look_like_production() {
    let (root, db) = scratch();
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(refusal(root.path(), &elsewhere.path().join("tollgate.db")).contains("outside the workspace"));
    assert!(refusal(root.path(), &root.path().join("../tollgate.db")).contains("outside the workspace"));
    std::fs::create_dir(root.path().join("prod")).unwrap();
    for name in ["prod/tollgate.db", "tollgate-production.db", "Prod.db"] {
        let message = refusal(root.path(), &root.path().join(name));
        assert!(message.contains("looks like a production database"), "{name}: {message}");
    }
    assert!(refusal(root.path(), &root.path().join("missing/tollgate.db")).contains("directory does not exist"));
    check_reset_target(root.path(), &db).unwrap();
}

#[test]
fn reset_refuses_a_database_with_data_but_no_marker_and_a_file_that_is_not_one() {
    let (root, db) = scratch();
    execute(&db, "CREATE TABLE tokens (id TEXT); CREATE TABLE audit_log (sequence INTEGER);");
    check_reset_target(root.path(), &db).expect("a database without data may be reset");
    execute(&db, "INSERT INTO tokens VALUES ('tok_1'), ('tok_2');");
    let message = refusal(root.path(), &db);
    assert!(message.contains("holds data (tokens: 2 rows) but no development marker"), "{message}");
    std::fs::write(root.path().join("notes.db"), "this is not a database, it only ends in .db ........").unwrap();
    let message = refusal(root.path(), &root.path().join("notes.db"));
    assert!(message.contains("cannot be read as a SQLite database"), "{message}");
}

#[test]
fn reset_backs_up_the_database_with_its_wal_shm_and_key_then_recreates_it_marked() {
    let (root, db) = scratch();
    let first = reset(root.path(), tollgate(), &db).unwrap();
    assert_eq!((first.backup.as_ref(), first.backed_up.len()), (None, 0));
    assert!(read_marker(&db).unwrap().is_some_and(|marker| marker.seed_anchor.is_none()));
    seed(root.path(), tollgate(), &db, &fixture()).unwrap();
    let before = dump(&db);

    // A connection left open (a server still running, say) keeps the -wal and -shm files around.
    let mut held = block_on(connect(&db));
    block_on(sqlx::query("SELECT count(*) FROM tokens").fetch_one(&mut held)).unwrap();
    for suffix in ["-wal", "-shm", ".key", ".jwt.key"] {
        assert!(root.path().join(format!("tollgate.db{suffix}")).exists(), "tollgate.db{suffix}");
    }
    let second = reset(root.path(), tollgate(), &db).unwrap();
    block_on(held.close()).unwrap();

    let mut moved = second.backed_up.clone();
    moved.sort();
    assert_eq!(moved, ["tollgate.db", "tollgate.db-shm", "tollgate.db-wal", "tollgate.db.jwt.key", "tollgate.db.key"]);
    let backup = root.path().join(second.backup.as_ref().unwrap().strip_prefix("./").unwrap());
    assert!(backup.file_name().unwrap().to_string_lossy().starts_with("tollgate.db.backup-"));
    assert_eq!(backup.parent(), Some(root.path()), "the backup sits beside the database");
    assert_eq!(dump(&backup.join("tollgate.db")), before, "the backup holds the old data");
    assert!(read_marker(&db).unwrap().is_some_and(|marker| marker.seed_anchor.is_none()));
    assert!(!dump(&db).iter().any(|line| line.starts_with("tokens: ")), "the new database is empty");
    assert!(root.path().join("tollgate.db.key").exists(), "a new key beside the new database");
}

#[test]
fn seed_refuses_a_missing_database_and_one_that_is_not_marked() {
    let (root, db) = scratch();
    let message = format!("{:#}", seed(root.path(), tollgate(), &db, &fixture()).unwrap_err());
    assert!(message.contains("does not exist"), "{message}");
    tollgate().run(&db, &["migrate"], None).unwrap();
    let message = format!("{:#}", seed(root.path(), tollgate(), &db, &fixture()).unwrap_err());
    assert!(message.contains("not marked as a development database"), "{message}");
    assert!(!dump(&db).iter().any(|line| line.starts_with("tokens: ")), "nothing was seeded");
}

#[test]
fn seed_is_idempotent_and_its_result_passes_validate_seed() {
    let (root, db) = scratch();
    let fixture = fixture();
    reset(root.path(), tollgate(), &db).unwrap();
    let first = seed(root.path(), tollgate(), &db, &fixture).unwrap();
    assert_eq!((first.users_added, first.users_present, first.users_suspended), (3, 0, 1));
    assert_eq!((first.tokens_added, first.tokens_present), (fixture.tokens.len(), 0));
    assert_eq!((first.limits_added, first.limits_present), (3, 0));
    assert_eq!((first.usage_added, first.usage_present), (fixture.usage.len(), 0));
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    let violations = check_seed(root.path(), &db, &fixture).unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations));
    let seeded = dump(&db);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("users: ")).count(), 3);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("quota_limits: ")).count(), 9, "3 tiers × 3 maxima");

    let second = seed(root.path(), tollgate(), &db, &fixture).unwrap();
    assert_eq!((second.users_added, second.users_present, second.users_suspended), (0, 3, 0));
    assert_eq!((second.tokens_added, second.tokens_present, second.anchor), (0, fixture.tokens.len(), first.anchor));
    assert_eq!((second.limits_added, second.limits_present), (0, 3));
    assert_eq!((second.usage_added, second.usage_present), (0, fixture.usage.len()));
    assert_eq!(dump(&db), seeded, "a second seed changes nothing, audit log included");
    assert!(check_seed(root.path(), &db, &fixture).unwrap().is_empty());
    tollgate().run(&db, &["audit", "verify"], None).expect("the seeded audit log verifies");

    // tollgate's own usage report sees the whole week (its window counts back from now, past the anchor).
    let output = tollgate().run(&db, &["--json", "usage", "show", "--since", "8d"], None).unwrap();
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let cost: u64 = fixture.usage.iter().map(|event| event.cost_microdollars).sum();
    assert_eq!(report["totals"]["events"], fixture.usage.len(), "{report}");
    assert_eq!(report["totals"]["errors"], 2, "{report}");
    assert_eq!(report["totals"]["cost_micros"], cost, "{report}");

    // The development password opens the active accounts; the suspended one is refused.
    for user in &fixture.users {
        let output = tollgate()
            .output(&db, &["--json", "login", "--username", &user.username], Some(&fixture.password))
            .unwrap();
        let suspended = user.status == xtask::UserStatus::Suspended;
        assert_eq!(
            output.status.success(),
            !suspended,
            "{}: {}",
            user.username,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The secrets really work, in the states the fixture gives them.
    for token in &fixture.tokens {
        let output = tollgate().output(&db, &["--json", "token", "verify"], Some(&token.secret)).unwrap();
        let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let expected = if token.state.as_str() == "active" { "valid" } else { token.state.as_str() };
        assert_eq!(verdict["code"], expected, "{}", token.name);
    }
}

#[test]
fn seed_finishes_what_an_interrupted_seed_left_and_leaves_users_it_finds_alone() {
    let (root, db) = scratch();
    let fixture = fixture();
    reset(root.path(), tollgate(), &db).unwrap();
    // As if a seed had stopped right after creating the viewer, before suspending them.
    tollgate()
        .run(
            &db,
            &["--bcrypt-cost", "10", "user", "create", "--username", "viewer", "--email", "viewer@example.com"]
                .into_iter()
                .chain(["--role", "viewer", "--password-stdin"])
                .collect::<Vec<_>>(),
            Some(&fixture.password),
        )
        .unwrap();
    let outcome = seed(root.path(), tollgate(), &db, &fixture).unwrap();
    assert_eq!((outcome.users_added, outcome.users_present, outcome.users_suspended), (2, 1, 1));
    let violations = check_seed(root.path(), &db, &fixture).unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations));
}

#[test]
fn validate_seed_reports_every_difference_from_the_fixture() {
    let (root, db) = scratch();
    let fixture = fixture();
    reset(root.path(), tollgate(), &db).unwrap();
    seed(root.path(), tollgate(), &db, &fixture).unwrap();
    let other_hash = bcrypt::hash("not-the-development-password", 4).unwrap();
    execute(
        &db,
        &format!(
            "UPDATE tokens SET name = 'renamed', project = NULL WHERE id = 'tok_00000000000070008000000000000001';
             UPDATE tokens SET hash = zeroblob(32) WHERE id = 'tok_00000000000070008000000000000003';
             DELETE FROM tokens WHERE id = 'tok_00000000000070008000000000000005';
             INSERT INTO tokens (id, name, owner, permission, hash, key_id, display_hint, created_at, updated_at)
             VALUES ('tok_00000000000070008000000000000099', 'stray', 'nobody', 'admin', randomblob(32), 1, 'tg_x', 1, 1);
             DROP TRIGGER tokens_user_is_fixed;
             UPDATE tokens SET user_id = (SELECT id FROM users WHERE username = 'admin'), expires_at = created_at + 1000000
             WHERE id = 'tok_00000000000070008000000000000004';
             UPDATE users SET role = 'viewer', email = 'dev@example.org' WHERE username = 'developer';
             UPDATE users SET status = 'active', status_reason = NULL WHERE username = 'viewer';
             UPDATE users SET password_hash = '{other_hash}' WHERE username = 'admin';
             INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at, password_changed_at)
             VALUES ('usr_00000000000070008000000000000099', 'mallory', 'm@example.com', '{other_hash}', 'admin', 1, 1, 1);
             UPDATE quota_limits SET maximum = 7 WHERE subject_kind = 'project' AND metric = 'requests';
             DELETE FROM quota_limits WHERE subject_kind = 'token' AND metric = 'cost';
             INSERT INTO quota_limits (subject_kind, subject, metric, period, maximum, shadow, created_at, updated_at)
             VALUES ('owner', 'nobody', 'requests', 'hour', 5, 0, 1, 1);
             DELETE FROM usage_event_blocks WHERE id = (SELECT min(id) FROM usage_event_blocks);
             UPDATE usage_rollups SET cost_micros = cost_micros + 1
             WHERE token_id = 'tok_00000000000070008000000000000002'
               AND hour = (SELECT min(hour) FROM usage_rollups WHERE token_id = 'tok_00000000000070008000000000000002');"
        ),
    );
    let token = |index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of("tokens", index));
    let user = |index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of("users", index));
    let limit = |index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of("limits", index));
    let usage = |index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of("usage", index));
    let violations = check_seed(root.path(), &db, &fixture).unwrap();
    let expected = [
        (
            "./tollgate.db: ".to_owned(),
            "token tok_00000000000070008000000000000099 (stray) is not in tests/fixtures/seed.json",
        ),
        ("./tollgate.db: ".to_owned(), "user mallory (usr_00000000000070008000000000000099) is not in"),
        (user(0), "user admin: the development password does not verify against the stored hash"),
        (user(1), "user developer: email is dev@example.org in the database, developer@example.com in the fixture"),
        (user(1), "user developer: role is viewer in the database, user in the fixture"),
        (user(2), "user viewer: status is active in the database, suspended in the fixture"),
        (user(2), "user viewer: status_reason is none in the database, \"left the team\" in the fixture"),
        (
            token(0),
            "token tok_00000000000070008000000000000001: name is \"renamed\" in the database, \"ci-expired\" in the fixture",
        ),
        (
            token(0),
            "token tok_00000000000070008000000000000001: project is none in the database, \"search\" in the fixture",
        ),
        (
            token(2),
            "token tok_00000000000070008000000000000003: its stored hash is not the HMAC of the fixture's secret",
        ),
        (
            token(3),
            "token tok_00000000000070008000000000000004: user is \"admin\" in the database, \"developer\" in the fixture",
        ),
        (token(3), "token tok_00000000000070008000000000000004: expires_at is "),
        (token(3), "token tok_00000000000070008000000000000004: it is expired now but the fixture says active"),
        (token(4), "token tok_00000000000070008000000000000005 is missing from ./tollgate.db"),
        ("./tollgate.db: ".to_owned(), "limit requests per hour of owner nobody is not in tests/fixtures/seed.json"),
        (limit(0), "limit free (cost per day) is missing from ./tollgate.db"),
        (limit(1), "limit team (requests per month): maximum is 7 in the database, 100000 in the fixture"),
        (usage(0), "(tok_00000000000070008000000000000004 openai/gpt-4o-mini) is missing from ./tollgate.db"),
        (
            "./tollgate.db: ".to_owned(),
            "usage totals of tok_00000000000070008000000000000002: cost (microdollars) is 41643 in the rollups, 41642 in the fixture",
        ),
    ];
    let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), expected.len(), "{}", lines.join("\n"));
    for (prefix, message) in &expected {
        let found = lines.iter().filter(|line| line.starts_with(prefix.as_str()) && line.contains(message)).count();
        assert_eq!(found, 1, "expected one {prefix}{message} in\n{}", lines.join("\n"));
    }
}

#[test]
fn the_fixture_is_consistent_and_its_secrets_pass_the_real_parser() {
    let fixture = fixture();
    assert!(fixture.check().is_empty(), "{}", shown(&fixture.check()));
    let prefix = tollgate_types::TokenPrefix::default();
    for token in &fixture.tokens {
        let secret = tollgate_types::TokenSecret::parse(&prefix, &token.secret).unwrap();
        assert_eq!(secret.expose().len(), 3 + 43 + 6);
    }
    let states: Vec<&str> = fixture.tokens.iter().map(|token| token.state.as_str()).collect();
    assert_eq!(states, ["expired", "active", "revoked", "active", "active"]);
    let users: Vec<(&str, &str)> =
        fixture.users.iter().map(|user| (user.username.as_str(), user.role.as_str())).collect();
    assert_eq!(users, [("admin", "admin"), ("developer", "user"), ("viewer", "viewer")]);
    assert_eq!(fixture.users[2].status, xtask::UserStatus::Suspended);
    let tiers: Vec<&str> = fixture.limits.iter().map(|limit| limit.tier.as_str()).collect();
    assert_eq!(tiers, ["free", "team", "enterprise"]);
    let mut providers: Vec<&str> = fixture.usage.iter().map(|event| event.provider.as_str()).collect();
    providers.sort();
    providers.dedup();
    assert!(providers.len() >= 3 && fixture.usage.len() >= 14, "a week across several providers");
}

#[test]
fn a_broken_fixture_is_reported_entry_by_entry() {
    let text = std::fs::read_to_string(project_root().join("tests/fixtures/seed.json")).unwrap();
    let broken = text
        .replace("01KeWaK\"", "01KeWaL\"")
        .replace("\"state\": \"revoked\"", "\"state\": \"active\"")
        .replace(", \"status_reason\": \"left the team\"", "")
        .replace("\"state\": \"expired\", \"name\": \"ci-expired\", \"owner\": \"developer\", \"user\": \"developer\", \"project\": \"search\", \"permission\": \"standard\"",
                 "\"state\": \"expired\", \"name\": \"ci-expired\", \"owner\": \"developer\", \"user\": \"developer\", \"project\": \"search\", \"permission\": \"admin\"")
        .replace("\"name\": \"search-backend\", \"owner\": \"developer\", \"user\": \"developer\"", "\"name\": \"search-backend\", \"owner\": \"developer\", \"user\": \"ghost\"")
        .replace("\"owner\": \"usage-dashboard\",", "\"owner\": \"viewer\", \"user\": \"viewer\",")
        .replace("\"window\": \"day\"", "\"window\": \"week\"")
        .replace(
            "\"at\": \"-4d15h5m\", \"provider\": \"anthropic\", \"model\": \"claude-3-5-haiku\"",
            "\"at\": \"-5d12h15m\", \"provider\": \"openai\", \"model\": \"gpt-4o-mini\"",
        )
        .replacen(
            "{\"token\": \"tok_00000000000070008000000000000004\"",
            "{\"token\": \"tok_00000000000070008000000000000077\"",
            1,
        );
    let fixture = Fixture::parse(&broken).unwrap();
    let at = |section, index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of(section, index));
    let expected = [
        (at("users", 2), "user viewer: a suspended user needs a status_reason"),
        (at("tokens", 0), "permission admin exceeds what role user of user developer allows (standard)"),
        (at("tokens", 1), "the secret is refused by the token parser: token checksum does not match"),
        (at("tokens", 2), "state says active but its times make it revoked"),
        (at("tokens", 3), "user ghost is not in the users section"),
        (at("tokens", 4), "user viewer is suspended: a token can only be linked to an active user"),
        (at("limits", 0), "limit free: window must be one of minute, hour, day, month"),
        (at("usage", 0), "token tok_00000000000070008000000000000077 is not in the tokens section"),
        (at("usage", 6), "another event has the same token, time, provider and model"),
    ];
    let violations = fixture.check();
    assert_eq!(violations.len(), expected.len(), "{}", shown(&violations));
    for (violation, (prefix, message)) in violations.iter().zip(&expected) {
        let line = violation.to_string();
        assert!(line.starts_with(prefix.as_str()) && line.contains(message), "{line}\n expected {prefix}{message}");
    }
}

#[test]
fn the_repository_schema_matches_its_migrations() {
    let violations = check_schema(&project_root(), tollgate(), None).unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations));
}

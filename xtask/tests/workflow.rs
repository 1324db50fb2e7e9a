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
    for suffix in ["-wal", "-shm", ".key", ".jwt.key", ".vault.key"] {
        assert!(root.path().join(format!("tollgate.db{suffix}")).exists(), "tollgate.db{suffix}");
    }
    let second = reset(root.path(), tollgate(), &db).unwrap();
    block_on(held.close()).unwrap();

    let mut moved = second.backed_up.clone();
    moved.sort();
    let expected = [
        "tollgate.db",
        "tollgate.db-shm",
        "tollgate.db-wal",
        "tollgate.db.jwt.key",
        "tollgate.db.key",
        "tollgate.db.vault.key",
    ];
    assert_eq!(moved, expected, "the vault key goes with the data it opens");
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
    assert_eq!((first.service_accounts_added, first.service_accounts_present), (1, 0));
    assert_eq!(
        (first.projects_added, first.projects_present, first.members_added, first.members_present),
        (1, 0, 2, 0)
    );
    assert_eq!((first.tokens_added, first.tokens_present), (fixture.tokens.len(), 0));
    assert_eq!((first.limits_added, first.limits_present), (3, 0));
    assert_eq!((first.usage_added, first.usage_present), (fixture.usage.len(), 0));
    assert_eq!((first.provider_keys_added, first.provider_keys_present), (2, 0));
    assert_eq!((first.agents_added, first.agents_present, first.agents_paused, first.agents_disabled), (2, 0, 1, 0));
    assert_eq!((first.credentials_added, first.credentials_present, first.credentials_revoked), (3, 0, 1));
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    let shown_outcome = first.to_string();
    for line in [
        "  provider keys: 2 added, 0 already present",
        "  agents: 2 added, 0 already present, 1 paused, 0 disabled",
        "  agent credentials: 3 added, 0 already present, 1 revoked (secrets discarded)",
    ] {
        assert!(shown_outcome.contains(line), "{shown_outcome}");
    }
    let violations = check_seed(root.path(), &db, &fixture).unwrap();
    assert!(violations.is_empty(), "{}", shown(&violations));
    let seeded = dump(&db);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("users: ")).count(), 3);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("service_accounts: ")).count(), 1);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("projects: ")).count(), 1);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("project_members: ")).count(), 2);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("quota_limits: ")).count(), 9, "3 tiers × 3 maxima");
    assert_eq!(seeded.iter().filter(|line| line.starts_with("provider_keys: ")).count(), 2);
    assert_eq!(seeded.iter().filter(|line| line.starts_with("agents: ")).count(), 2);
    let credentials = seeded.iter().filter(|line| line.starts_with("tokens: ") && line.contains("'agt_")).count();
    assert_eq!(credentials, 3, "the credentials are tokens bound to their agents");
    // Nothing beside the database but its keys: no credential secret was written anywhere.
    let mut files: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    files.sort();
    assert_eq!(files, ["tollgate.db", "tollgate.db.jwt.key", "tollgate.db.key", "tollgate.db.vault.key"]);

    let second = seed(root.path(), tollgate(), &db, &fixture).unwrap();
    assert_eq!((second.users_added, second.users_present, second.users_suspended), (0, 3, 0));
    assert_eq!((second.service_accounts_added, second.service_accounts_present), (0, 1));
    assert_eq!(
        (second.projects_added, second.projects_present, second.members_added, second.members_present),
        (0, 1, 0, 2)
    );
    assert_eq!((second.tokens_added, second.tokens_present, second.anchor), (0, fixture.tokens.len(), first.anchor));
    assert_eq!((second.limits_added, second.limits_present), (0, 3));
    assert_eq!((second.usage_added, second.usage_present), (0, fixture.usage.len()));
    assert_eq!((second.provider_keys_added, second.provider_keys_present), (0, 2));
    assert_eq!(
        (second.agents_added, second.agents_present, second.agents_paused, second.agents_disabled),
        (0, 2, 0, 0)
    );
    assert_eq!((second.credentials_added, second.credentials_present, second.credentials_revoked), (0, 3, 0));
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

    // Reports by project read the rollups by project id: the search project has its tokens' events.
    let output =
        tollgate().run(&db, &["--json", "usage", "show", "--since", "8d", "--project", "search"], None).unwrap();
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let in_search = |event: &&xtask::FixtureUsage| {
        fixture.token(&event.token).is_some_and(|token| token.project.as_deref() == Some("search"))
    };
    assert_eq!(report["totals"]["events"], fixture.usage.iter().filter(in_search).count(), "{report}");

    // tollgate sees the project's members by name, in their roles.
    let output = tollgate().run(&db, &["--json", "project", "show", "search"], None).unwrap();
    let project: serde_json::Value = serde_json::from_str(&output).unwrap();
    let mut members: Vec<(String, String)> = project["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| (member["member_name"].as_str().unwrap().to_owned(), member["role"].as_str().unwrap().to_owned()))
        .collect();
    members.sort();
    assert_eq!(members, [("developer".into(), "member".into()), ("usage-dashboard".into(), "viewer".into())]);

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

    // tollgate lists the agents in their states and the keys by their masked hints only.
    let output = tollgate().run(&db, &["--json", "agent", "list"], None).unwrap();
    let agents: serde_json::Value = serde_json::from_str(&output).unwrap();
    let mut states: Vec<(String, String)> = agents["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| (agent["name"].as_str().unwrap().to_owned(), agent["status"].as_str().unwrap().to_owned()))
        .collect();
    states.sort();
    assert_eq!(states, [("search-assistant".into(), "active".into()), ("usage-summarizer".into(), "paused".into())]);
    let output = tollgate().run(&db, &["--json", "provider-key", "list"], None).unwrap();
    let mut masked: Vec<String> = serde_json::from_str::<serde_json::Value>(&output).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["masked"].as_str().unwrap().to_owned())
        .collect();
    masked.sort();
    assert_eq!(masked, ["sk-…0001", "sk-…0002"]);
    for key in &fixture.provider_keys {
        assert!(!output.contains(&key.secret), "{output}");
    }
    let assistant = agents["items"].as_array().unwrap().iter().find(|agent| agent["name"] == "search-assistant");
    let assistant = assistant.unwrap()["id"].as_str().unwrap().to_owned();
    let output =
        tollgate().run(&db, &["--json", "agent", "credential", "list", &assistant, "--status", "all"], None).unwrap();
    let mut revoked: Vec<(String, bool)> = serde_json::from_str::<serde_json::Value>(&output).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|credential| (credential["name"].as_str().unwrap().to_owned(), !credential["revoked_at"].is_null()))
        .collect();
    revoked.sort();
    assert_eq!(revoked, [("search-assistant-laptop".into(), true), ("search-assistant-prod".into(), false)]);

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
    // … and after creating the service account and the project with one member.
    let (account, project) = (&fixture.service_accounts[0], &fixture.projects[0]);
    let create_account = ["service-account", "create", "--name", &account.name, "--description", &account.description];
    tollgate().run(&db, &create_account, None).unwrap();
    let create_project = ["project", "create", "--name", &project.name, "--description", &project.description];
    tollgate().run(&db, &create_project, None).unwrap();
    // (the service account: the users who are members come later)
    let first = project.members.iter().find(|member| member.member == account.name).expect("a member account");
    tollgate()
        .run(&db, &["project", "add-member", &project.name, "--member", &first.member, "--role", &first.role], None)
        .unwrap();
    let outcome = seed(root.path(), tollgate(), &db, &fixture).unwrap();
    assert_eq!((outcome.users_added, outcome.users_present, outcome.users_suspended), (2, 1, 1));
    assert_eq!((outcome.service_accounts_added, outcome.service_accounts_present), (0, 1));
    assert_eq!(
        (outcome.projects_added, outcome.projects_present, outcome.members_added, outcome.members_present),
        (0, 1, project.members.len() - 1, 1)
    );
    assert_eq!(outcome.tokens_added, fixture.tokens.len());
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
    let dashboard = "(SELECT id FROM service_accounts WHERE name = 'usage-dashboard')";
    let user_id = |name: &str| format!("(SELECT id FROM users WHERE username = '{name}')");
    let (admin, developer) = (user_id("admin"), user_id("developer"));
    execute(
        &db,
        &format!(
            "DROP TRIGGER tokens_owner_is_fixed;
             DROP TRIGGER tokens_owner_role_is_the_owners;
             UPDATE tokens SET name = 'renamed', project_id = NULL, project_name = NULL
             WHERE id = 'tok_00000000000070008000000000000001';
             UPDATE tokens SET owner_name = 'administrator' WHERE id = 'tok_00000000000070008000000000000002';
             UPDATE tokens SET hash = zeroblob(32) WHERE id = 'tok_00000000000070008000000000000003';
             DELETE FROM tokens WHERE id = 'tok_00000000000070008000000000000005';
             INSERT INTO tokens (id, name, owner_id, owner_name, permission, hash, key_id, display_hint, created_at, updated_at)
             VALUES ('tok_00000000000070008000000000000099', 'stray', {dashboard}, 'usage-dashboard', 'admin',
                     randomblob(32), 1, 'tg_x', 1, 1);
             UPDATE tokens SET owner_id = {admin}, owner_role = 'admin', expires_at = created_at + 1000000
             WHERE id = 'tok_00000000000070008000000000000004';
             UPDATE users SET role = 'viewer', email = 'dev@example.org' WHERE username = 'developer';
             UPDATE tokens SET owner_role = 'admin' WHERE id = 'tok_00000000000070008000000000000003';
             UPDATE users SET status = 'active', status_reason = NULL WHERE username = 'viewer';
             UPDATE users SET password_hash = '{other_hash}' WHERE username = 'admin';
             INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at, password_changed_at)
             VALUES ('usr_00000000000070008000000000000099', 'mallory', 'm@example.com', '{other_hash}', 'admin', 1, 1, 1);
             UPDATE service_accounts SET description = 'tampered' WHERE name = 'usage-dashboard';
             INSERT INTO service_accounts (id, name, created_at, updated_at)
             VALUES ('svc_00000000000070008000000000000099', 'stray-bot', 1, 1);
             UPDATE projects SET description = '' WHERE name = 'search';
             UPDATE project_members SET role = 'member' WHERE member_id = {dashboard};
             DELETE FROM project_members WHERE member_id = {developer};
             INSERT INTO project_members (project_id, member_id, role, updated_at)
             SELECT id, {admin}, 'viewer', 1 FROM projects WHERE name = 'search';
             INSERT INTO projects (id, name, created_at, updated_at)
             VALUES ('prj_00000000000070008000000000000099', 'stray-project', 1, 1);
             UPDATE quota_limits SET maximum = 7 WHERE subject_kind = 'project' AND metric = 'requests';
             DELETE FROM quota_limits WHERE subject_kind = 'token' AND metric = 'cost';
             UPDATE quota_limits SET subject = {developer} WHERE subject_kind = 'user' AND metric = 'tokens';
             INSERT INTO quota_limits (subject_kind, subject, metric, period, maximum, shadow, created_at, updated_at)
             VALUES ('service_account', {dashboard}, 'requests', 'hour', 5, 0, 1, 1);
             DELETE FROM usage_event_blocks WHERE id = (SELECT min(id) FROM usage_event_blocks);
             UPDATE usage_rollups SET cost_micros = cost_micros + 1
             WHERE token_id = 'tok_00000000000070008000000000000002'
               AND hour = (SELECT min(hour) FROM usage_rollups WHERE token_id = 'tok_00000000000070008000000000000002');
             UPDATE usage_rollups SET project_id = NULL
             WHERE token_id = 'tok_00000000000070008000000000000004'
               AND hour = (SELECT max(hour) FROM usage_rollups WHERE token_id = 'tok_00000000000070008000000000000004');"
        ),
    );
    let at = |section, index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of(section, index));
    let db_file = || "./tollgate.db: ".to_owned();
    let violations = check_seed(root.path(), &db, &fixture).unwrap();
    let expected = [
        (db_file(), "token tok_00000000000070008000000000000099 (stray) is not in tests/fixtures/seed.json"),
        (db_file(), "user mallory (usr_00000000000070008000000000000099) is not in"),
        (at("users", 0), "user admin: the development password does not verify against the stored hash"),
        (
            at("users", 1),
            "user developer: email is dev@example.org in the database, developer@example.com in the fixture",
        ),
        (at("users", 1), "user developer: role is viewer in the database, user in the fixture"),
        (at("users", 2), "user viewer: status is active in the database, suspended in the fixture"),
        (at("users", 2), "user viewer: status_reason is none in the database, \"left the team\" in the fixture"),
        (at("service_accounts", 0), "service account usage-dashboard: description is \"tampered\" in the database"),
        (
            db_file(),
            "service account stray-bot (svc_00000000000070008000000000000099) is not in tests/fixtures/seed.json",
        ),
        (at("projects", 0), "project search: description is \"\" in the database, \"The search team's project"),
        (at("projects", 0), "project search: member developer is missing from ./tollgate.db"),
        (
            at("projects", 0),
            "project search: member usage-dashboard has role member in the database, viewer in the fixture",
        ),
        (at("projects", 0), "project search: user admin (usr_"),
        (db_file(), "project stray-project (prj_00000000000070008000000000000099) is not in tests/fixtures/seed.json"),
        (
            at("tokens", 0),
            "token tok_00000000000070008000000000000001: name is \"renamed\" in the database, \"ci-expired\" in the fixture",
        ),
        (
            at("tokens", 0),
            "token tok_00000000000070008000000000000001: project is none in the database, \"search\" in the fixture",
        ),
        (
            at("tokens", 0),
            "token tok_00000000000070008000000000000001: project_name is none in the database, \"search\" in the fixture",
        ),
        (
            at("tokens", 1),
            "token tok_00000000000070008000000000000002: owner_name is \"administrator\" in the database, \"admin\" in the fixture",
        ),
        (
            at("tokens", 2),
            "token tok_00000000000070008000000000000003: its stored hash is not the HMAC of the fixture's secret",
        ),
        (
            at("tokens", 2),
            "token tok_00000000000070008000000000000003: owner_role is \"admin\" in the database but its owner's role is \"viewer\"",
        ),
        (
            at("tokens", 3),
            "token tok_00000000000070008000000000000004: owner is user admin in the database, user developer in the fixture",
        ),
        (at("tokens", 3), "token tok_00000000000070008000000000000004: expires_at is "),
        (at("tokens", 3), "token tok_00000000000070008000000000000004: it is expired now but the fixture says active"),
        (at("tokens", 4), "token tok_00000000000070008000000000000005 is missing from ./tollgate.db"),
        (db_file(), "limit requests per hour of service account usage-dashboard (svc_"),
        (db_file(), "limit tokens per month of user developer (usr_"),
        (at("limits", 0), "limit free (cost per day) is missing from ./tollgate.db"),
        (at("limits", 1), "limit team (requests per month): maximum is 7 in the database, 100000 in the fixture"),
        (at("limits", 2), "limit enterprise (tokens per month) is missing from ./tollgate.db"),
        (at("usage", 0), "(tok_00000000000070008000000000000004 openai/gpt-4o-mini) is missing from ./tollgate.db"),
        (
            db_file(),
            "usage totals of tok_00000000000070008000000000000002: cost (microdollars) is 41643 in the rollups, 41642 in the fixture",
        ),
        (
            db_file(),
            "usage rollups of tok_00000000000070008000000000000004: 1 hourly row is attributed to user developer and no \
             project, but the token belongs to user developer and project search",
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
fn validate_seed_reports_drift_in_provider_keys_agents_and_credentials() {
    let (root, db) = scratch();
    let fixture = fixture();
    reset(root.path(), tollgate(), &db).unwrap();
    seed(root.path(), tollgate(), &db, &fixture).unwrap();
    let anthropic_secret = &fixture.provider_key("anthropic-dashboard").unwrap().secret;
    let developer = "(SELECT id FROM users WHERE username = 'developer')";
    execute(
        &db,
        &format!(
            "UPDATE provider_keys SET masked = 'sk-…0000', master_key_id = 7 WHERE provider = 'openai';
             UPDATE provider_keys SET ciphertext = randomblob(24), metadata = json_object('leak', '{anthropic_secret}')
             WHERE provider = 'anthropic';
             UPDATE agents SET status = 'active' WHERE name = 'usage-summarizer';
             UPDATE agents SET provider_key_id = NULL, providers = '[\"google\",\"openai\"]'
             WHERE name = 'search-assistant';
             INSERT INTO agents (id, name, owner_id, owner_name, created_at, updated_at)
             VALUES ('agt_00000000000070008000000000000099', 'stray-agent', {developer}, 'developer', 1, 1);
             UPDATE tokens SET revoked_at = NULL, revoke_reason = NULL WHERE name = 'search-assistant-laptop';
             UPDATE tokens SET name = 'renamed' WHERE name = 'usage-summarizer-main';"
        ),
    );
    let at = |section, index| format!("tests/fixtures/seed.json:{}: ", fixture.line_of(section, index));
    let db_file = || "./tollgate.db: ".to_owned();
    let expected = [
        (
            at("provider_keys", 0),
            "provider key openai-search: masked is \"sk-…0000\" in the database, \"sk-…0001\" in the fixture",
        ),
        (at("provider_keys", 0), "provider key openai-search: it is wrapped by master key 7, which the vault key file"),
        (at("provider_keys", 1), "provider key anthropic-dashboard: its ciphertext is 24 bytes, but the fixture's"),
        (at("provider_keys", 1), "provider key anthropic-dashboard: its secret is in plaintext in ./tollgate.db"),
        (at("agents", 0), "agent search-assistant: providers is [\"google\",\"openai\"] in the database, [\"openai\"]"),
        (
            at("agents", 0),
            "agent search-assistant: provider_key is none in the database, provider key openai-search in the fixture",
        ),
        (
            at("agents", 0),
            "agent search-assistant: credential search-assistant-laptop is active in the database, revoked in the \
             fixture",
        ),
        (at("agents", 1), "agent usage-summarizer: status is active in the database, paused in the fixture"),
        (at("agents", 1), "agent usage-summarizer: credential usage-summarizer-main is missing from ./tollgate.db"),
        (at("agents", 1), "agent usage-summarizer: credential renamed (tok_"),
        (db_file(), "agent stray-agent (agt_00000000000070008000000000000099) of developer is not in tests/fixtures"),
    ];
    let lines: Vec<String> = check_seed(root.path(), &db, &fixture).unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), expected.len(), "{}", lines.join("\n"));
    for (prefix, message) in &expected {
        let found = lines.iter().filter(|line| line.starts_with(prefix.as_str()) && line.contains(message)).count();
        assert_eq!(found, 1, "expected one {prefix}{message} in\n{}", lines.join("\n"));
    }

    // Without the vault key file no key can be opened.
    std::fs::remove_file(root.path().join("tollgate.db.vault.key")).unwrap();
    let lines: Vec<String> = check_seed(root.path(), &db, &fixture).unwrap().iter().map(ToString::to_string).collect();
    assert!(lines.iter().any(|line| line.starts_with("./tollgate.db.vault.key: cannot read")), "{}", lines.join("\n"));
    assert!(!lines.iter().any(|line| line.contains("master key 7")), "{}", lines.join("\n"));
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
    let accounts: Vec<&str> = fixture.service_accounts.iter().map(|account| account.name.as_str()).collect();
    assert_eq!(accounts, ["usage-dashboard"]);
    let owners: Vec<(&str, Option<xtask::OwnerKind>)> =
        fixture.tokens.iter().map(|token| (token.owner.as_str(), fixture.owner_kind(&token.owner))).collect();
    let (user, service) = (Some(xtask::OwnerKind::User), Some(xtask::OwnerKind::ServiceAccount));
    assert_eq!(
        owners,
        [("developer", user), ("admin", user), ("developer", user), ("developer", user), ("usage-dashboard", service)]
    );
    let search = fixture.project("search").expect("the search project");
    let members: Vec<(&str, &str)> =
        search.members.iter().map(|member| (member.member.as_str(), member.role.as_str())).collect();
    assert_eq!(members, [("developer", "member"), ("usage-dashboard", "viewer")]);
    let tiers: Vec<&str> = fixture.limits.iter().map(|limit| limit.tier.as_str()).collect();
    assert_eq!(tiers, ["free", "team", "enterprise"]);
    let mut providers: Vec<&str> = fixture.usage.iter().map(|event| event.provider.as_str()).collect();
    providers.sort();
    providers.dedup();
    assert!(providers.len() >= 3 && fixture.usage.len() >= 14, "a week across several providers");
    let keys: Vec<(&str, &str, &str)> = fixture
        .provider_keys
        .iter()
        .map(|key| (key.key_ref.as_str(), key.provider.as_str(), key.owner.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("openai-search", "openai", "developer"), ("anthropic-dashboard", "anthropic", "usage-dashboard")]
    );
    for key in &fixture.provider_keys {
        assert!(key.secret.contains("-fake-dev-"), "{} is visibly fake", key.key_ref);
        tollgate_types::ProviderSecret::parse(&key.secret).expect("the vault accepts the fake secret");
    }
    let agents: Vec<String> = fixture
        .agents
        .iter()
        .map(|agent| {
            let credentials: Vec<String> = agent
                .credentials
                .iter()
                .map(|credential| format!("{} {}", credential.name, credential.state.as_str()))
                .collect();
            format!("{} {}: {}", agent.name, agent.status.as_str(), credentials.join(", "))
        })
        .collect();
    assert_eq!(
        agents,
        [
            "search-assistant active: search-assistant-prod active, search-assistant-laptop revoked",
            "usage-summarizer paused: usage-summarizer-main active",
        ]
    );
}

#[test]
fn a_broken_fixture_is_reported_entry_by_entry() {
    let text = std::fs::read_to_string(project_root().join("tests/fixtures/seed.json")).unwrap();
    let broken = text
        .replace("01KeWaK\"", "01KeWaL\"")
        .replace("\"state\": \"revoked\"", "\"state\": \"active\"")
        .replace(", \"status_reason\": \"left the team\"", "")
        .replace(
            "\"service_accounts\": [\n",
            "\"service_accounts\": [\n    {\"name\": \"admin\", \"description\": \"named like a user\"},\n",
        )
        .replace(
            "{\"member\": \"developer\", \"role\": \"member\"}",
            "{\"member\": \"developer\", \"role\": \"member\"}, {\"member\": \"developer\", \"role\": \"owner\"}",
        )
        .replace(
            "\"name\": \"ci-expired\", \"owner\": \"developer\", \"project\": \"search\", \"permission\": \"standard\"",
            "\"name\": \"ci-expired\", \"owner\": \"developer\", \"project\": \"search\", \"permission\": \"admin\"",
        )
        .replace(
            "\"name\": \"search-backend\", \"owner\": \"developer\"",
            "\"name\": \"search-backend\", \"owner\": \"viewer\"",
        )
        .replace("\"owner\": \"usage-dashboard\",", "\"owner\": \"usage-dashboard\", \"project\": \"search\",")
        .replace("\"window\": \"day\"", "\"window\": \"week\"")
        .replace("{\"user\": \"admin\"}", "{\"service_account\": \"ghost\"}")
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
        (at("service_accounts", 0), "service account admin: the name is taken by a user (one namespace for both)"),
        (at("projects", 0), "project search: member developer appears twice"),
        (at("projects", 0), "project search: member developer: role: must be one of member, viewer"),
        (at("tokens", 0), "permission admin exceeds what role user of user developer allows (standard)"),
        (at("tokens", 1), "the secret is refused by the token parser: token checksum does not match"),
        (at("tokens", 2), "state says active but its times make it revoked"),
        (at("tokens", 3), "owner viewer is a suspended user: tollgate issues tokens only to active users"),
        (at("tokens", 3), "permission standard exceeds what role viewer of user viewer allows (read_only)"),
        (at("tokens", 3), "owner viewer is not a member of project search"),
        (at("tokens", 4), "owner usage-dashboard is a viewer of project search: a token's owner must be a member"),
        (at("limits", 0), "limit free: window must be one of minute, hour, day, month"),
        (at("limits", 2), "limit enterprise: its subject ServiceAccount(\"ghost\") is not in the fixture"),
        (at("usage", 0), "token tok_00000000000070008000000000000077 is not in the tokens section"),
        (at("usage", 6), "another event has the same token, time, provider and model"),
        (
            at("provider_keys", 1),
            "provider key anthropic-dashboard: owner usage-dashboard is a viewer of project search: a provider key's \
             owner must be a member",
        ),
        (
            at("agents", 1),
            "agent usage-summarizer: owner usage-dashboard is a viewer of project search: an agent's owner must be",
        ),
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

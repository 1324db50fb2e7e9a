//! The identity commands end to end: the real `tollgate` binary on a temporary database, passwords
//! on standard input, JSON output, exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

struct Cli {
    _directory: tempfile::TempDir,
    db: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path().join("tollgate.db");
        Self { _directory: directory, db }
    }

    /// Runs `tollgate <args>` with `stdin` piped in.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env("TOLLGATE_DB", &self.db)
            .env("TOLLGATE_BCRYPT_COST", "10")
            .env_remove("TOLLGATE_KEY_FILE")
            .env_remove("TOLLGATE_JWT_KEY_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and prints JSON.
    fn json(&self, args: &[&str], stdin: &str) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all, stdin);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn users_login_and_audit_from_the_shell() {
    let cli = Cli::new();
    let root = cli.json(
        &["user", "create", "--username", "Root", "--email", "root@example.com", "--role", "admin", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(root["user"]["username"], "root");
    assert!(!root.to_string().contains(PASSWORD) && !root.to_string().contains("$2b$"));

    // The password never comes from argv, and without a terminal it needs --password-stdin.
    let argv = cli.run(
        &[
            "user",
            "create",
            "--username",
            "xavier",
            "--email",
            "x@example.com",
            "--role",
            "user",
            "--password",
            PASSWORD,
        ],
        "",
    );
    assert_eq!(code(&argv), 2);
    let no_stdin_flag =
        cli.run(&["user", "create", "--username", "xavier", "--email", "x@example.com", "--role", "user"], PASSWORD);
    assert_eq!(code(&no_stdin_flag), 2);
    assert!(stderr(&no_stdin_flag).contains("--password-stdin"), "{}", stderr(&no_stdin_flag));
    let short = cli.run(
        &["user", "create", "--username", "xavier", "--email", "x@example.com", "--role", "user", "--password-stdin"],
        "short\n",
    );
    assert_eq!(code(&short), 2);
    assert!(stderr(&short).contains("password: must be at least 12 characters"));
    let bad_role = cli.run(
        &["user", "create", "--username", "xavier", "--email", "x@example.com", "--role", "root", "--password-stdin"],
        PASSWORD,
    );
    assert_eq!((code(&bad_role), stderr(&bad_role).contains("role:")), (2, true));

    let alice = cli.json(
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--role",
            "user",
            "--password-stdin",
        ],
        PASSWORD,
    );
    let alice_id = alice["user"]["id"].as_str().unwrap().to_owned();

    let login = cli.json(&["login", "--username", "alice"], &format!("{PASSWORD}\n"));
    assert!(login["access_token"].as_str().unwrap().starts_with("eyJ"));
    assert!(login["refresh_token"].as_str().unwrap().starts_with("tgr_"));
    assert_eq!(login["expires_in"], 900);
    let wrong = cli.run(&["login", "--username", "alice"], "not the password\n");
    assert_eq!(code(&wrong), 1);
    assert!(stderr(&wrong).contains("login refused: invalid_credentials"), "{}", stderr(&wrong));
    assert!(!stderr(&wrong).contains("not the password"));

    assert_eq!(cli.json(&["user", "list"], "")["items"].as_array().unwrap().len(), 2);
    assert_eq!(cli.json(&["user", "list", "--role", "user"], "")["items"].as_array().unwrap().len(), 1);
    assert_eq!(cli.json(&["user", "show", "ALICE"], "")["user"]["id"], alice_id.as_str());
    assert_eq!(cli.json(&["user", "set-role", "alice", "--role", "viewer"], "")["user"]["role"], "viewer");
    let suspended = cli.json(&["user", "suspend", &alice_id, "--reason", "left the team"], "");
    assert_eq!(
        (suspended["user"]["status"].as_str(), suspended["user"]["status_reason"].as_str()),
        (Some("suspended"), Some("left the team"))
    );
    assert_eq!(code(&cli.run(&["login", "--username", "alice"], PASSWORD)), 1);
    assert_eq!(cli.json(&["user", "activate", "alice"], "")["user"]["status"], "active");
    assert_eq!(cli.json(&["user", "unlock", "alice"], "")["user"]["failed_logins"], 0);

    cli.json(&["user", "reset-password", "alice", "--password-stdin", "--must-change"], "temporary password 1\n");
    let must_change = cli.run(&["login", "--username", "alice"], "temporary password 1\n");
    assert!(stderr(&must_change).contains("password_change_required"), "{}", stderr(&must_change));
    cli.json(&["user", "change-password", "--username", "alice"], "temporary password 1\nmy very own password\n");
    cli.json(&["login", "--username", "alice"], "my very own password\n");

    assert_eq!(cli.json(&["user", "delete", "alice", "--reason", "bye"], "")["user"]["status"], "deleted");
    let last_admin = cli.run(&["user", "delete", "root"], "");
    assert_eq!(code(&last_admin), 1);
    assert!(stderr(&last_admin).contains("last active admin"));

    let history = cli.json(&["audit", "list", "--target", &alice_id, "--limit", "100"], "");
    let actions: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).rev().collect();
    for expected in [
        "user.create",
        "session.create",
        "user.login_failed",
        "user.set_role",
        "user.suspend",
        "user.reset_password",
        "user.change_password",
        "user.delete",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let since = cli.json(&["audit", "list", "--since", "2000-01-01T00:00:00Z", "--actor", "cli"], "");
    assert!(!since["items"].as_array().unwrap().is_empty());
    assert_eq!(code(&cli.run(&["audit", "list", "--since", "yesterday"], "")), 2);

    let verify = cli.run(&["audit", "verify"], "");
    assert_eq!(code(&verify), 0, "{}", stderr(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("intact"));

    for key in ["tollgate.db.key", "tollgate.db.jwt.key"] {
        let path = cli.db.parent().unwrap().join(key);
        assert!(path.exists(), "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{key}");
        }
    }
}

async fn tamper(db: &Path) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_log_refuses_update;
         UPDATE audit_log SET actor = 'someone-else' WHERE sequence = 2;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[test]
fn audit_verify_exits_1_and_names_the_first_broken_entry() {
    let cli = Cli::new();
    for name in ["root", "alice", "bob"] {
        let role = if name == "root" { "admin" } else { "user" };
        let email = format!("{name}@example.com");
        cli.json(
            &["user", "create", "--username", name, "--email", &email, "--role", role, "--password-stdin"],
            PASSWORD,
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(tamper(&cli.db));
    let verify = cli.run(&["audit", "verify"], "");
    assert_eq!(code(&verify), 1);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("BROKEN at entry 2"), "{verify:?}");
    let json = cli.run(&["--json", "audit", "verify"], "");
    assert_eq!(code(&json), 1);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((report["intact"].as_bool(), report["first_broken"]["sequence"].as_i64()), (Some(false), Some(2)));
}

#[test]
fn a_bcrypt_cost_below_ten_is_refused() {
    let cli = Cli::new();
    let output = cli.run(&["--bcrypt-cost", "8", "user", "list"], "");
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("bcrypt_cost"), "{}", stderr(&output));
}

#[test]
fn emails_change_and_log_in_from_the_shell() {
    let cli = Cli::new();
    let stdin = format!("{PASSWORD}\n");
    for name in ["alice", "bob"] {
        let email = format!("{name}@example.com");
        cli.json(
            &["user", "create", "--username", name, "--email", &email, "--role", "user", "--password-stdin"],
            &stdin,
        );
    }
    let changed = cli.json(&["user", "set-email", "alice", "--email", "Alice@New.Example"], "");
    assert_eq!(changed["user"]["email"], "alice@new.example");
    let login = cli.json(&["login", "--email", "ALICE@new.example"], &stdin);
    assert_eq!(login["user_id"], changed["user"]["id"]);
    let old = cli.run(&["login", "--email", "alice@example.com"], &stdin);
    assert_eq!(code(&old), 1);
    assert!(stderr(&old).contains("invalid_credentials"), "{}", stderr(&old));

    // A taken address is a failed operation; a malformed one is invalid input naming the field.
    let taken = cli.run(&["user", "set-email", "bob", "--email", "ALICE@new.example"], "");
    assert_eq!(code(&taken), 1);
    assert!(stderr(&taken).contains("email is already taken"), "{}", stderr(&taken));
    let malformed = cli.run(&["user", "set-email", "bob", "--email", "not-an-email"], "");
    assert_eq!(code(&malformed), 2);
    assert!(stderr(&malformed).contains("email:"), "{}", stderr(&malformed));
    // Exactly one of --username and --email.
    assert_eq!(code(&cli.run(&["login"], &stdin)), 2);
    assert_eq!(code(&cli.run(&["login", "--username", "bob", "--email", "bob@example.com"], &stdin)), 2);
    assert_eq!(cli.json(&["user", "show", "bob"], "")["user"]["email"], "bob@example.com");
}

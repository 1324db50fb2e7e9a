//! A shell for CLI tests: runs the real `tollgate` binary against a fresh database file.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A temporary directory holding one database; every command runs against it.
pub struct Shell {
    pub directory: tempfile::TempDir,
}

impl Shell {
    pub fn new() -> Self {
        Self { directory: tempfile::tempdir().unwrap() }
    }

    pub fn db(&self) -> PathBuf {
        self.directory.path().join("tollgate.db")
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["--db", self.db().to_str().unwrap()])
            .args(args)
            .env_remove("TOLLGATE_DB")
            .env_remove("TOLLGATE_KEY_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.unwrap_or("").as_bytes());
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn json(&self, args: &[&str], stdin: Option<&str>) -> (i32, serde_json::Value) {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let output = self.run(&full, stdin);
        let value = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        (output.status.code().unwrap(), value)
    }

    /// Runs a command that must fail with exit 2 and returns its error line.
    pub fn invalid(&self, args: &[&str]) -> String {
        let output = self.run(args, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stderr).trim().to_owned()
    }

    /// The owner named `name`: a user or service account of that name, else a new service account.
    pub fn owner(&self, name: &str) -> String {
        super::ensure_owner(self.directory.path(), &self.db(), name)
    }

    /// The project named `name` with `member` in it (both made when missing); returns the project id.
    pub fn project(&self, name: &str, member: &str) -> String {
        let (code, found) = self.json(&["project", "show", name], None);
        let id = if code == 0 {
            found["project"]["id"].as_str().unwrap().to_owned()
        } else {
            let (code, created) = self.json(&["project", "create", "--name", name], None);
            assert_eq!(code, 0, "project {name}");
            created["project"]["id"].as_str().unwrap().to_owned()
        };
        let member = self.owner(member);
        let (code, _) = self.json(&["project", "add-member", &id, "--member", &member], None);
        assert_eq!(code, 0, "member of {name}");
        id
    }

    /// Creates a token for `owner` bound to `project` (both made when missing); returns its id and secret.
    pub fn token(&self, owner: &str, project: &str) -> (String, String) {
        self.owner(owner);
        self.project(project, owner);
        let (code, created) =
            self.json(&["token", "create", "--name", "metered", "--owner", owner, "--project", project], None);
        assert_eq!(code, 0);
        (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned())
    }
}

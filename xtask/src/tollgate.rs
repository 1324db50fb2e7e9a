//! Running the real `tollgate` binary: every write to a development database goes through it, so
//! seeding exercises the same parsers, hashing and audit trail as production.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

use crate::workspace::{cargo, target_dir};

/// The `tollgate` binary built from this workspace.
#[derive(Debug, Clone)]
pub struct Tollgate {
    binary: PathBuf,
}

impl Tollgate {
    /// Builds `tollgate-cli` (a no-op when it is up to date) and returns the binary.
    pub fn build(root: &Path) -> anyhow::Result<Self> {
        let status = cargo(root)
            .args(["build", "--quiet", "--package", "tollgate-cli", "--bin", "tollgate"])
            .status()
            .context("while running cargo build -p tollgate-cli")?;
        if !status.success() {
            bail!("cargo build -p tollgate-cli failed ({status})");
        }
        let binary = target_dir(root).join("debug").join(format!("tollgate{}", std::env::consts::EXE_SUFFIX));
        if !binary.is_file() {
            bail!("cargo build -p tollgate-cli did not produce {}", binary.display());
        }
        Ok(Self { binary })
    }

    /// The binary's path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs `tollgate --db <db> <arguments>` with `stdin` piped in; the output whatever the exit status.
    /// The environment's `TOLLGATE_*` variables are removed so a developer's shell cannot redirect it.
    pub fn output(&self, db: &Path, arguments: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut command = Command::new(&self.binary);
        command.arg("--db").arg(db).args(arguments);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TOLLGATE_") {
                command.env_remove(name);
            }
        }
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("while starting {}", self.binary.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).context("while writing to tollgate's standard input")?;
        }
        child.wait_with_output().context("while waiting for tollgate")
    }

    /// Runs a command that must succeed; its standard output. A failure quotes the command (never
    /// standard input, which may hold a secret) and tollgate's own error.
    pub fn run(&self, db: &Path, arguments: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let output = self.output(db, arguments, stdin)?;
        if !output.status.success() {
            bail!(
                "tollgate {} failed ({}): {}",
                arguments.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether this build has the command group `name` (`user`, `limit`, `usage`, …).
    pub fn has_command(&self, name: &str) -> bool {
        Command::new(&self.binary)
            .args([name, "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

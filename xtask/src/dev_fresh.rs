//! `cargo xtask dev-fresh`: reset, seed and validate the development database, then show the
//! development credentials and how to try them; `--test` also runs the whole test suite.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::fixture::{Fixture, TokenState};
use crate::tollgate::Tollgate;
use crate::validate::{Validator, run_and_report};
use crate::workspace::{cargo, shown};
use crate::{reset, seed};

pub(crate) fn dev_fresh(root: &Path, db: &Path, test: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let tollgate = Tollgate::build(root)?;
    let fixture = Fixture::load(root)?;
    println!("== reset");
    println!("{}", reset(root, &tollgate, db)?);
    println!("== seed");
    let outcome = seed(root, &tollgate, db, &fixture)?;
    println!("{outcome}");
    println!("== validate");
    if !run_and_report(root, &Validator::ALL, db)? {
        eprintln!("error: the fresh development database does not validate (violations above)");
        return Ok(ExitCode::from(1));
    }
    println!("\n== ready in {:.1}s: {}\n", started.elapsed().as_secs_f64(), shown(root, db));
    print_credentials(&fixture, &outcome.skipped);
    if test {
        println!("\n== cargo test --workspace");
        let status =
            cargo(root).args(["test", "--workspace"]).status().context("while running cargo test --workspace")?;
        if !status.success() {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_credentials(fixture: &Fixture, skipped: &[String]) {
    println!("Development credentials — public, for this development database only (docs/development.md):");
    let users: Vec<String> = fixture
        .users
        .iter()
        .map(|user| match user.status {
            crate::fixture::UserStatus::Active => format!("{} ({})", user.username, user.role),
            crate::fixture::UserStatus::Suspended => format!("{} ({}, suspended)", user.username, user.role),
        })
        .collect();
    if skipped.iter().any(|section| section.starts_with("users")) {
        println!("  users: not seeded by this build of tollgate yet");
    } else {
        println!("  users: {}; password: {}", users.join(", "), fixture.password);
    }
    println!("  tokens:");
    let mut tokens: Vec<_> = fixture.tokens.iter().collect();
    tokens.sort_by_key(|token| token.state != TokenState::Active);
    let width = tokens.iter().map(|token| token.name.len()).max().unwrap_or(0);
    for token in &tokens {
        println!(
            "    {:<8} {:<width$}  {:<10} {:<10} {}",
            token.state.as_str(),
            token.name,
            token.owner,
            token.permission,
            token.secret
        );
    }
    let example = tokens.first().map_or("tg_…", |token| token.secret.as_str());
    println!("\nTry them:");
    println!("  cargo run -p tollgate-cli -- serve        # serves ./tollgate.db on http://127.0.0.1:8080");
    println!("  curl -s -H \"Authorization: Bearer {example}\" http://127.0.0.1:8080/v1/auth/verify");
    println!("  echo {example} | cargo run -q -p tollgate-cli -- token verify");
}

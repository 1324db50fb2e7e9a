//! `cargo xtask dev-fresh`: reset, seed and validate the development database, then show the
//! development credentials and how to try them; `--test` also runs the whole test suite.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::fixture::{Fixture, OwnerKind, TokenState, UserStatus};
use crate::tollgate::Tollgate;
use crate::validate::{Validator, run_and_report};
use crate::workspace::{canonical_db, cargo, shown};
use crate::{reset, seed};

pub(crate) fn dev_fresh(root: &Path, db: &Path, test: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let tollgate = Tollgate::build(root)?;
    let fixture = Fixture::load(root)?;
    println!("== reset");
    println!("{}", reset(root, &tollgate, db)?);
    println!("== seed");
    println!("{}", seed(root, &tollgate, db, &fixture)?);
    println!("== validate");
    if !run_and_report(root, &Validator::ALL, db)? {
        eprintln!("error: the fresh development database does not validate (violations above)");
        return Ok(ExitCode::from(1));
    }
    println!("\n== ready in {:.1}s: {}\n", started.elapsed().as_secs_f64(), shown(root, db));
    let db_flag = if db == canonical_db(root) { String::new() } else { format!(" --db {}", shown(root, db)) };
    println!("{}", credentials(&fixture, &db_flag, tollgate.has_command("serve")));
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

/// The development credentials and how to try them. `db_flag` is `--db PATH` for a database other than
/// the canonical one; `serve` says whether this build has `tollgate serve`.
fn credentials(fixture: &Fixture, db_flag: &str, serve: bool) -> String {
    let mut text =
        String::from("Development credentials — public, for this development database only (docs/development.md):\n");
    let users: Vec<String> = fixture
        .users
        .iter()
        .map(|user| match (&user.status, &user.status_reason) {
            (UserStatus::Suspended, Some(reason)) => {
                format!("{} ({}, suspended: {reason})", user.username, user.role)
            }
            _ => format!("{} ({})", user.username, user.role),
        })
        .collect();
    text += &format!("  users:    {}\n", users.join(", "));
    text += &format!("  password: {} (every user)\n", fixture.password);
    if !fixture.service_accounts.is_empty() {
        let names: Vec<&str> = fixture.service_accounts.iter().map(|account| account.name.as_str()).collect();
        text += &format!("  services: {} (service accounts: they own tokens, never log in)\n", names.join(", "));
    }
    let projects: Vec<String> = fixture
        .projects
        .iter()
        .map(|project| {
            let members: Vec<String> =
                project.members.iter().map(|member| format!("{} {}", member.member, member.role)).collect();
            format!(
                "{} ({})",
                project.name,
                if members.is_empty() { "no members".to_owned() } else { members.join(", ") }
            )
        })
        .collect();
    if !projects.is_empty() {
        text += &format!("  projects: {}\n", projects.join("; "));
    }
    text += "  tokens:\n";
    let mut tokens: Vec<_> = fixture.tokens.iter().collect();
    tokens.sort_by_key(|token| token.state != TokenState::Active);
    let owners: Vec<String> = tokens
        .iter()
        .map(|token| {
            let owner = match fixture.owner_kind(&token.owner) {
                Some(OwnerKind::ServiceAccount) => format!("{} (service account)", token.owner),
                _ => token.owner.clone(),
            };
            match &token.project {
                Some(project) => format!("{owner}, project {project}"),
                None => owner,
            }
        })
        .collect();
    let name_width = tokens.iter().map(|token| token.name.len()).max().unwrap_or(0);
    let owner_width = owners.iter().map(String::len).max().unwrap_or(0);
    for (token, owner) in tokens.iter().zip(&owners) {
        text += &format!(
            "    {:<8} {:<name_width$}  {:<owner_width$}  {:<10} {}\n",
            token.state.as_str(),
            token.name,
            owner,
            token.permission,
            token.secret
        );
    }
    let example = tokens.first().map_or("tg_…", |token| token.secret.as_str());
    let login_user = fixture
        .users
        .iter()
        .find(|user| user.status == UserStatus::Active && user.role != "admin")
        .or_else(|| fixture.users.first())
        .map_or("admin", |user| user.username.as_str());
    let cli = format!("cargo run -q -p tollgate-cli --{db_flag}");
    text += "\nTry them:\n";
    if serve {
        text += &format!("  {cli} serve   # serves the database on http://127.0.0.1:8080\n");
        let admin_user = fixture
            .users
            .iter()
            .find(|user| user.status == UserStatus::Active && user.role == "admin")
            .map_or("admin", |user| user.username.as_str());
        text += &format!(
            "  dashboard: http://127.0.0.1:8080/dashboard   (sign in as {admin_user} / {})\n",
            fixture.password
        );
        text += &format!("  curl -s -H \"Authorization: Bearer {example}\" http://127.0.0.1:8080/v1/auth/verify\n");
        if let Some(admin) =
            tokens.iter().find(|token| token.state == TokenState::Active && token.permission == "admin")
        {
            let secret = &admin.secret;
            text += &format!(
                "  curl -s -H \"Authorization: Bearer {secret}\" 'http://127.0.0.1:8080/v1/tokens?status=all'\n"
            );
        }
    } else {
        text += "  (this build has no `tollgate serve` yet: try them from the command line)\n";
    }
    text += &format!("  echo {example} | {cli} token verify\n");
    text += &format!("  echo {} | {cli} login --username {login_user}\n", fixture.password);
    text += &format!("  {cli} token list --status all\n");
    if let Some(project) = fixture.projects.first() {
        text += &format!("  {cli} project show {}\n", project.name);
    }
    text += &format!("  {cli} limit list\n");
    text += &format!("  {cli} usage show --since 7d --by model");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Fixture {
        Fixture::load(&crate::project_root()).expect("the repository's fixture loads")
    }

    #[test]
    fn credentials_show_every_user_and_secret_and_how_to_log_in() {
        let fixture = fixture();
        let text = credentials(&fixture, "", true);
        for user in &fixture.users {
            assert!(text.contains(&format!("{} ({}", user.username, user.role)), "{text}");
        }
        assert!(text.contains("viewer (viewer, suspended: left the team)"), "{text}");
        assert!(text.contains("services: usage-dashboard (service accounts"), "{text}");
        assert!(text.contains("projects: search (developer member, usage-dashboard viewer)"), "{text}");
        assert!(text.contains("viewer-dashboard  usage-dashboard (service account)"), "{text}");
        assert!(text.contains("search-backend    developer, project search"), "{text}");
        for token in &fixture.tokens {
            assert!(text.contains(&token.secret), "{text}");
        }
        assert!(text.contains("password: tollgate-dev-password"), "{text}");
        assert!(
            text.contains("echo tollgate-dev-password | cargo run -q -p tollgate-cli -- login --username developer"),
            "{text}"
        );
        assert!(text.contains("-- serve") && text.contains("curl -s -H \"Authorization: Bearer tg_"), "{text}");
        assert!(text.contains("dashboard: http://127.0.0.1:8080/dashboard   (sign in as "), "{text}");
    }

    #[test]
    fn credentials_name_a_non_canonical_database_and_skip_serve_when_it_is_missing() {
        let text = credentials(&fixture(), " --db scratch/dev.db", false);
        assert!(
            !text.contains("curl") && !text.contains("dashboard:") && text.contains("no `tollgate serve` yet"),
            "{text}"
        );
        assert!(text.contains("cargo run -q -p tollgate-cli -- --db scratch/dev.db token verify"), "{text}");
    }
}

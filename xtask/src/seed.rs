//! `cargo xtask seed`: load the fixture into a development database through the `tollgate` binary.
//! Idempotent: what is already there is left alone, so a second run changes nothing.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::db::{self, marker, with_connection};
use crate::fixture::{Fixture, FixtureToken};
use crate::tollgate::Tollgate;
use crate::workspace::shown;

/// What `seed` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedOutcome {
    /// The database, as shown to the user.
    pub db: String,
    /// The instant the fixture's times count from (Unix microseconds).
    pub anchor: i64,
    /// Tokens imported now.
    pub tokens_added: usize,
    /// Tokens that were already there.
    pub tokens_present: usize,
    /// Sections this build of tollgate cannot seed yet, with why.
    pub skipped: Vec<String>,
}

impl fmt::Display for SeedOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let anchor = tollgate_types::Timestamp::from_unix_micros(self.anchor);
        writeln!(f, "seeded {} (fixture times count from {anchor})", self.db)?;
        write!(f, "  tokens: {} added, {} already present", self.tokens_added, self.tokens_present)?;
        for skipped in &self.skipped {
            write!(f, "\n  skipped {skipped}")?;
        }
        Ok(())
    }
}

/// Seeds `db` from `fixture`. Refuses a database without the development marker.
pub fn seed(root: &Path, tollgate: &Tollgate, db: &Path, fixture: &Fixture) -> anyhow::Result<SeedOutcome> {
    let shown_db = shown(root, db);
    if !db.is_file() {
        bail!("refusing to seed {shown_db}: it does not exist (cargo xtask reset creates it)");
    }
    let problems = fixture.check();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!("the fixture is inconsistent:\n{}", list.join("\n"));
    }
    let (marker, present): (_, Vec<String>) = with_connection(db, async |connection| {
        let marker = marker(connection).await?;
        let ids = if marker.is_some() {
            sqlx::query_scalar("SELECT id FROM tokens")
                .fetch_all(&mut *connection)
                .await
                .context("while reading tokens")?
        } else {
            Vec::new()
        };
        Ok((marker, ids))
    })?;
    if marker.is_none() {
        bail!(
            "refusing to seed {shown_db}: it is not marked as a development database (cargo xtask reset creates \
             and marks one)"
        );
    }
    // The first seed fixes the anchor: whole minutes, so times read well; later seeds reuse it.
    let anchor = db::set_seed_anchor(db, db::now_micros() / 60_000_000 * 60_000_000)?;
    let mut outcome = SeedOutcome { db: shown_db, anchor, ..SeedOutcome::default() };
    for token in &fixture.tokens {
        if present.contains(&token.id) {
            outcome.tokens_present += 1;
            continue;
        }
        import_token(tollgate, db, token, anchor)?;
        outcome.tokens_added += 1;
    }
    for (section, command, count) in [
        ("users", "user", fixture.users.len()),
        ("limits", "limit", fixture.limits.len()),
        ("usage", "usage", fixture.usage.len()),
    ] {
        if !tollgate.has_command(command) {
            outcome
                .skipped
                .push(format!("{section} ({count} in the fixture): this tollgate has no `{command}` command yet"));
        }
    }
    Ok(outcome)
}

fn import_token(tollgate: &Tollgate, db: &Path, token: &FixtureToken, anchor: i64) -> anyhow::Result<()> {
    let created_at = token.created_at.rfc3339(anchor);
    let mut arguments: Vec<String> = vec![
        "dev".into(),
        "import-token".into(),
        "--id".into(),
        token.id.clone(),
        "--name".into(),
        token.name.clone(),
        "--owner".into(),
        token.owner.clone(),
        "--permission".into(),
        token.permission.clone(),
        "--created-at".into(),
        created_at,
    ];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            arguments.push(name.to_owned());
            arguments.push(value);
        }
    };
    flag("--project", token.project.clone());
    flag("--description", Some(token.description.clone()).filter(|text| !text.is_empty()));
    flag("--expires-at", token.expires_at.map(|offset| offset.rfc3339(anchor)));
    flag("--revoked-at", token.revoked_at.map(|offset| offset.rfc3339(anchor)));
    flag("--revoke-reason", token.revoke_reason.clone());
    for scope in &token.scopes {
        flag("--scope", Some(scope.clone()));
    }
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    tollgate.run(db, &arguments, Some(&token.secret)).with_context(|| format!("while importing token {}", token.id))?;
    Ok(())
}

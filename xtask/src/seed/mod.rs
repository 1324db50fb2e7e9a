//! `cargo xtask seed`: load the fixture into a development database through the `tollgate` binary.
//! Idempotent: what is already there is left alone, so a second run changes nothing. No migration
//! holds development data: users, tokens, agents, provider keys and credentials all come from here.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::db::{self, marker, with_connection};
use crate::directory::Directory;
use crate::fixture::{Fixture, FixtureToken};
use crate::tollgate::Tollgate;
use crate::workspace::shown;

mod accounts;
mod agents;
mod metering;
mod users;

pub(crate) use metering::stored_subject;

/// What `seed` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedOutcome {
    /// The database, as shown to the user.
    pub db: String,
    /// The instant the fixture's times count from (Unix microseconds).
    pub anchor: i64,
    /// Users created now.
    pub users_added: usize,
    /// Users that were already there.
    pub users_present: usize,
    /// Users suspended now (the fixture says suspended, the database said active).
    pub users_suspended: usize,
    /// Service accounts created now.
    pub service_accounts_added: usize,
    /// Service accounts that were already there.
    pub service_accounts_present: usize,
    /// Projects created now.
    pub projects_added: usize,
    /// Projects that were already there.
    pub projects_present: usize,
    /// Project members added now.
    pub members_added: usize,
    /// Project members that were already there.
    pub members_present: usize,
    /// Tokens imported now.
    pub tokens_added: usize,
    /// Tokens that were already there.
    pub tokens_present: usize,
    /// Limits (fixture entries) set now, wholly or in part.
    pub limits_added: usize,
    /// Limits that were already there.
    pub limits_present: usize,
    /// Usage events recorded now.
    pub usage_added: usize,
    /// Usage events that were already there.
    pub usage_present: usize,
    /// Provider keys stored now.
    pub provider_keys_added: usize,
    /// Provider keys that were already there.
    pub provider_keys_present: usize,
    /// Agents registered now.
    pub agents_added: usize,
    /// Agents that were already there.
    pub agents_present: usize,
    /// Agents paused now (the fixture says paused, the database said active).
    pub agents_paused: usize,
    /// Agents disabled now (the fixture says disabled, the database said active).
    pub agents_disabled: usize,
    /// Agent credentials issued now (their secrets discarded).
    pub credentials_added: usize,
    /// Agent credentials that were already there.
    pub credentials_present: usize,
    /// Agent credentials revoked now (the fixture says revoked, the database said not).
    pub credentials_revoked: usize,
    /// Sections this build of tollgate cannot seed yet, with why.
    pub skipped: Vec<String>,
}

impl fmt::Display for SeedOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let anchor = tollgate_types::Timestamp::from_unix_micros(self.anchor);
        writeln!(f, "seeded {} (fixture times count from {anchor})", self.db)?;
        writeln!(
            f,
            "  users: {} added, {} already present, {} suspended",
            self.users_added, self.users_present, self.users_suspended
        )?;
        writeln!(
            f,
            "  service accounts: {} added, {} already present",
            self.service_accounts_added, self.service_accounts_present
        )?;
        writeln!(
            f,
            "  projects: {} added, {} already present; members: {} added, {} already present",
            self.projects_added, self.projects_present, self.members_added, self.members_present
        )?;
        write!(f, "  tokens: {} added, {} already present", self.tokens_added, self.tokens_present)?;
        if !self.skipped.iter().any(|skipped| skipped.starts_with("limits")) {
            write!(f, "\n  limits: {} added, {} already present", self.limits_added, self.limits_present)?;
        }
        if !self.skipped.iter().any(|skipped| skipped.starts_with("usage")) {
            write!(f, "\n  usage events: {} added, {} already present", self.usage_added, self.usage_present)?;
        }
        if !self.skipped.iter().any(|skipped| skipped.starts_with("agents")) {
            write!(
                f,
                "\n  provider keys: {} added, {} already present",
                self.provider_keys_added, self.provider_keys_present
            )?;
            write!(
                f,
                "\n  agents: {} added, {} already present, {} paused, {} disabled",
                self.agents_added, self.agents_present, self.agents_paused, self.agents_disabled
            )?;
            write!(
                f,
                "\n  agent credentials: {} added, {} already present, {} revoked (secrets discarded)",
                self.credentials_added, self.credentials_present, self.credentials_revoked
            )?;
        }
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
    // Owners before the tokens they own, members before the tokens bound to their projects.
    users::seed_users(tollgate, db, fixture, &mut outcome)?;
    accounts::seed_service_accounts(tollgate, db, fixture, &mut outcome)?;
    accounts::seed_projects(tollgate, db, fixture, &mut outcome)?;
    let directory = with_connection(db, async |connection| Directory::read(connection).await)?;
    for token in &fixture.tokens {
        if present.contains(&token.id) {
            outcome.tokens_present += 1;
            continue;
        }
        import_token(tollgate, db, token, &directory, anchor)?;
        outcome.tokens_added += 1;
    }
    // After owners, projects and members: keys, then the agents given them, then their credentials.
    if tollgate.has_command("agent") && tollgate.has_command("provider-key") {
        agents::seed_agents(tollgate, db, fixture, &mut outcome)?;
    } else {
        outcome.skipped.push(format!(
            "agents and provider keys ({} and {} in the fixture): this tollgate has no `agent` or `provider-key` \
             command yet",
            fixture.agents.len(),
            fixture.provider_keys.len()
        ));
    }
    // Limits before usage: recording counts the events against the limits in force.
    if tollgate.has_command("limit") {
        metering::seed_limits(tollgate, db, fixture, &directory, &mut outcome)?;
    } else {
        outcome.skipped.push(format!(
            "limits ({} in the fixture): this tollgate has no `limit` command yet",
            fixture.limits.len()
        ));
    }
    if tollgate.has_command("usage") {
        metering::seed_usage(tollgate, db, fixture, anchor, &mut outcome)?;
    } else {
        outcome
            .skipped
            .push(format!("usage ({} in the fixture): this tollgate has no `usage` command yet", fixture.usage.len()));
    }
    Ok(outcome)
}

/// Imports one token with its known secret, naming its owner and project by the ids the database gave
/// them (a name would do as well; an id cannot be mistaken for anything else).
fn import_token(
    tollgate: &Tollgate,
    db: &Path,
    token: &FixtureToken,
    directory: &Directory,
    anchor: i64,
) -> anyhow::Result<()> {
    let owner_id = directory.owner_id(&token.owner).with_context(|| {
        format!(
            "token {} is owned by {}, who is neither a user nor a service account in the database",
            token.id, token.owner
        )
    })?;
    let project_id = match &token.project {
        Some(name) => Some(
            directory
                .project_id(name)
                .with_context(|| format!("token {} names project {name}, which is not in the database", token.id))?,
        ),
        None => None,
    };
    let created_at = token.created_at.rfc3339(anchor);
    let mut arguments: Vec<String> = vec![
        "dev".into(),
        "import-token".into(),
        "--id".into(),
        token.id.clone(),
        "--name".into(),
        token.name.clone(),
        "--owner".into(),
        owner_id.to_owned(),
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
    flag("--project", project_id.map(str::to_owned));
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

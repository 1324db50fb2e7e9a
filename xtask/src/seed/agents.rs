//! Seeding provider keys, agents and their credentials through `tollgate provider-key add`, `tollgate
//! agent create`, `agent credential create|revoke` and `agent pause|disable`, in dependency order: keys,
//! agents (given their keys), credentials (issued while the agent still may have them), then states.
//! Only what is missing is written (a key by owner and description, an agent by owner and name, a
//! credential by agent and name, a state only from active), so a second seed writes nothing.
//!
//! Secrets: a key's fake secret goes to tollgate on standard input, never on the command line; a
//! credential's secret, printed once by tollgate, is dropped unread and never printed or stored.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use tollgate_types::AgentStatus;
use zeroize::Zeroizing;

use super::SeedOutcome;
use crate::db::with_connection;
use crate::directory::Directory;
use crate::fixture::{CredentialState, Fixture, FixtureAgent};
use crate::tollgate::Tollgate;

/// How long seeded credentials live: the longest tollgate allows, so a development database keeps
/// working as long as it can (then `cargo xtask dev-fresh`).
const CREDENTIAL_LIFETIME: &str = "90d";

fn read_directory(db: &Path) -> anyhow::Result<Directory> {
    with_connection(db, async |connection| Directory::read(connection).await)
}

/// Seeds the fixture's provider keys, agents and credentials, then puts agents and credentials in
/// the fixture's states.
pub(super) fn seed_agents(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    seed_provider_keys(tollgate, db, fixture, outcome)?;
    let directory = read_directory(db)?;
    for agent in &fixture.agents {
        if directory.agent_id(&agent.owner, &agent.name).is_some() {
            outcome.agents_present += 1;
            continue;
        }
        create_agent(tollgate, db, fixture, agent, &directory)?;
        outcome.agents_added += 1;
    }
    let directory = read_directory(db)?;
    for agent in &fixture.agents {
        let agent_id = registered_agent_id(&directory, agent)?;
        for credential in &agent.credentials {
            if directory.credential_id(agent_id, &credential.name).is_some() {
                outcome.credentials_present += 1;
                continue;
            }
            let arguments = [
                "--json",
                "agent",
                "credential",
                "create",
                agent_id,
                "--name",
                &credential.name,
                "--expires-in",
                CREDENTIAL_LIFETIME,
            ];
            // The output holds the credential's secret: wiped as soon as tollgate has succeeded.
            let printed =
                Zeroizing::new(tollgate.run(db, &arguments, None).with_context(|| {
                    format!("while issuing credential {} of agent {}", credential.name, agent.name)
                })?);
            drop(printed);
            outcome.credentials_added += 1;
        }
    }
    seed_states(tollgate, db, fixture, outcome)
}

/// Stores the fixture's missing provider keys, their secrets on standard input.
fn seed_provider_keys(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let directory = read_directory(db)?;
    for key in &fixture.provider_keys {
        if directory.provider_key_id(&key.owner, &key.description).is_some() {
            outcome.provider_keys_present += 1;
            continue;
        }
        let owner_id = directory.owner_id(&key.owner).with_context(|| {
            format!(
                "provider key {} is owned by {}, who is neither a user nor a service account in the database",
                key.key_ref, key.owner
            )
        })?;
        let mut arguments =
            vec!["--json", "provider-key", "add", "--provider", &key.provider, "--owner", owner_id, "--description"];
        arguments.push(&key.description);
        if let Some(name) = &key.project {
            let project_id = directory.project_id(name).with_context(|| {
                format!("provider key {} names project {name}, which is not in the database", key.key_ref)
            })?;
            arguments.extend(["--project", project_id]);
        }
        let secret = Zeroizing::new(format!("{}\n", key.secret));
        tollgate
            .run(db, &arguments, Some(&secret))
            .with_context(|| format!("while storing provider key {}", key.key_ref))?;
        outcome.provider_keys_added += 1;
    }
    Ok(())
}

/// Registers one agent with its owner, project and provider key by the ids the database gave them.
fn create_agent(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    agent: &FixtureAgent,
    directory: &Directory,
) -> anyhow::Result<()> {
    let owner_id = directory.owner_id(&agent.owner).with_context(|| {
        format!(
            "agent {} is owned by {}, who is neither a user nor a service account in the database",
            agent.name, agent.owner
        )
    })?;
    let mut arguments = vec!["--json", "agent", "create", "--name", &agent.name, "--owner", owner_id];
    if let Some(name) = &agent.project {
        let project_id = directory
            .project_id(name)
            .with_context(|| format!("agent {} names project {name}, which is not in the database", agent.name))?;
        arguments.extend(["--project", project_id]);
    }
    for provider in &agent.providers {
        arguments.extend(["--provider", provider]);
    }
    if let Some(key_ref) = &agent.provider_key {
        let key = fixture
            .provider_key(key_ref)
            .with_context(|| format!("agent {} names provider key {key_ref}, which the fixture lacks", agent.name))?;
        let key_id = directory.provider_key_id(&key.owner, &key.description).with_context(|| {
            format!("agent {} names provider key {key_ref}, which is not in the database", agent.name)
        })?;
        arguments.extend(["--provider-key", key_id]);
    }
    if !agent.description.is_empty() {
        arguments.extend(["--description", &agent.description]);
    }
    tollgate.run(db, &arguments, None).with_context(|| format!("while registering agent {}", agent.name))?;
    Ok(())
}

fn registered_agent_id<'a>(directory: &'a Directory, agent: &FixtureAgent) -> anyhow::Result<&'a str> {
    directory.agent_id(&agent.owner, &agent.name).with_context(|| format!("agent {} was not registered", agent.name))
}

/// Revokes the credentials the fixture wants revoked, then pauses or disables the agents it wants so.
/// Only from the state seeding leaves things in (not revoked, active): anything else already there is
/// left as it is, and validate reports it.
fn seed_states(tollgate: &Tollgate, db: &Path, fixture: &Fixture, outcome: &mut SeedOutcome) -> anyhow::Result<()> {
    let (directory, statuses, revoked) = with_connection(db, async |connection| {
        let directory = Directory::read(connection).await?;
        let statuses: BTreeMap<String, String> =
            sqlx::query_as("SELECT id, status FROM agents WHERE deleted_at IS NULL")
                .fetch_all(&mut *connection)
                .await
                .context("while reading agents")?
                .into_iter()
                .collect();
        let revoked: BTreeMap<String, bool> =
            sqlx::query_as("SELECT id, revoked_at IS NOT NULL FROM tokens WHERE agent_id IS NOT NULL")
                .fetch_all(&mut *connection)
                .await
                .context("while reading agent credentials")?
                .into_iter()
                .collect();
        Ok((directory, statuses, revoked))
    })?;
    for agent in &fixture.agents {
        let agent_id = registered_agent_id(&directory, agent)?;
        for credential in agent.credentials.iter().filter(|credential| credential.state == CredentialState::Revoked) {
            let credential_id = directory
                .credential_id(agent_id, &credential.name)
                .with_context(|| format!("credential {} of agent {} was not issued", credential.name, agent.name))?;
            if revoked.get(credential_id).copied().unwrap_or(false) {
                continue;
            }
            tollgate
                .run(db, &["agent", "credential", "revoke", agent_id, credential_id], None)
                .with_context(|| format!("while revoking credential {} of agent {}", credential.name, agent.name))?;
            outcome.credentials_revoked += 1;
        }
        let active = statuses.get(agent_id).is_some_and(|status| status == AgentStatus::Active.as_str());
        let command = match agent.status {
            AgentStatus::Active => continue,
            AgentStatus::Paused => "pause",
            AgentStatus::Disabled => "disable",
        };
        if !active {
            continue;
        }
        tollgate
            .run(db, &["agent", command, agent_id], None)
            .with_context(|| format!("while setting agent {} {}", agent.name, agent.status))?;
        match agent.status {
            AgentStatus::Paused => outcome.agents_paused += 1,
            _ => outcome.agents_disabled += 1,
        }
    }
    Ok(())
}

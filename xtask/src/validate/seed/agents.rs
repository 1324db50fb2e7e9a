//! `validate seed`, agents and their credentials: every fixture agent is registered (found by owner
//! and name) with its owner, project, providers, provider key (the fixture key's row), status and
//! description; exactly its credentials are issued (found by name), revoked or working as the fixture
//! says, each carrying the agent's status, owner and project; and there is no other agent.

use anyhow::Context;
use sqlx::{Row, SqliteConnection};

use super::provider_keys::KeyRow;
use crate::directory::Directory;
use crate::fixture::{CredentialState, FIXTURE_PATH, Fixture, FixtureAgent};
use crate::validate::Violation;

/// An agent as stored.
#[derive(Debug)]
pub(super) struct AgentRow {
    id: String,
    name: String,
    owner_id: String,
    owner_name: String,
    project_id: Option<String>,
    providers: String,
    provider_key_id: Option<String>,
    status: String,
    description: String,
    deleted: bool,
}

/// An agent credential as stored (a token with `agent_id` set).
#[derive(Debug)]
pub(super) struct CredentialRow {
    id: String,
    agent_id: String,
    name: String,
    owner_id: String,
    project_id: Option<String>,
    agent_status: Option<String>,
    revoked: bool,
    expires_at: Option<i64>,
}

pub(super) async fn read_agents(connection: &mut SqliteConnection) -> anyhow::Result<Vec<AgentRow>> {
    let rows = sqlx::query(
        "SELECT id, name, owner_id, owner_name, project_id, providers, provider_key_id, status, description,
                deleted_at IS NOT NULL AS deleted
         FROM agents ORDER BY id",
    )
    .fetch_all(connection)
    .await
    .context("while reading agents")?;
    Ok(rows
        .iter()
        .map(|row| AgentRow {
            id: row.get("id"),
            name: row.get("name"),
            owner_id: row.get("owner_id"),
            owner_name: row.get("owner_name"),
            project_id: row.get("project_id"),
            providers: row.get("providers"),
            provider_key_id: row.get("provider_key_id"),
            status: row.get("status"),
            description: row.get("description"),
            deleted: row.get::<i64, _>("deleted") != 0,
        })
        .collect())
}

pub(super) async fn read_credentials(connection: &mut SqliteConnection) -> anyhow::Result<Vec<CredentialRow>> {
    let rows = sqlx::query(
        "SELECT id, agent_id, name, owner_id, project_id, agent_status, revoked_at IS NOT NULL AS revoked, expires_at
         FROM tokens WHERE agent_id IS NOT NULL ORDER BY id",
    )
    .fetch_all(connection)
    .await
    .context("while reading agent credentials")?;
    Ok(rows
        .iter()
        .map(|row| CredentialRow {
            id: row.get("id"),
            agent_id: row.get("agent_id"),
            name: row.get("name"),
            owner_id: row.get("owner_id"),
            project_id: row.get("project_id"),
            agent_status: row.get("agent_status"),
            revoked: row.get::<i64, _>("revoked") != 0,
            expires_at: row.get("expires_at"),
        })
        .collect())
}

/// What the agents are compared in.
pub(super) struct AgentContext<'a> {
    /// The stored provider keys, to name an agent's key by its fixture ref.
    pub(super) keys: &'a [KeyRow],
    /// The database's names and ids.
    pub(super) directory: &'a Directory,
    /// Now (Unix microseconds): a credential meant to work must not have expired.
    pub(super) now: i64,
    /// The database, as shown.
    pub(super) shown_db: &'a str,
}

/// Every difference between the fixture's agents and credentials and the stored ones.
pub(super) fn check_agents(
    fixture: &Fixture,
    agents: &[AgentRow],
    credentials: &[CredentialRow],
    context: &AgentContext<'_>,
) -> Vec<Violation> {
    let (directory, shown_db) = (context.directory, context.shown_db);
    let mut violations = Vec::new();
    let mut matched = Vec::new();
    for (index, agent) in fixture.agents.iter().enumerate() {
        let line = fixture.line_of("agents", index);
        let found = directory.agent_id(&agent.owner, &agent.name);
        let Some(row) = found.and_then(|id| agents.iter().find(|row| row.id == id)) else {
            let message = format!("agent {} of {} is missing from {shown_db}", agent.name, agent.owner);
            violations.push(Violation::at(FIXTURE_PATH, line, message));
            continue;
        };
        matched.push(row.id.as_str());
        let mut differences = agent_differences(fixture, agent, row, context);
        differences.extend(credential_differences(agent, row, credentials, context));
        for difference in differences {
            violations.push(Violation::at(FIXTURE_PATH, line, format!("agent {}: {difference}", agent.name)));
        }
    }
    for row in agents.iter().filter(|row| !matched.contains(&row.id.as_str())) {
        let deleted = if row.deleted { "deleted " } else { "" };
        let message =
            format!("{deleted}agent {} ({}) of {} is not in {FIXTURE_PATH}", row.name, row.id, row.owner_name);
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

/// What differs between a fixture agent and its row, one message per field.
fn agent_differences(
    fixture: &Fixture,
    agent: &FixtureAgent,
    row: &AgentRow,
    context: &AgentContext<'_>,
) -> Vec<String> {
    let directory = context.directory;
    let mut differences = Vec::new();
    let mut compare = |field: &str, stored: String, wanted: String| {
        if stored != wanted {
            differences.push(format!("{field} is {stored} in the database, {wanted} in the fixture"));
        }
    };
    let text = |value: Option<&str>| value.map_or_else(|| "none".to_owned(), |value| format!("{value:?}"));
    compare("owner_name", format!("{:?}", row.owner_name), format!("{:?}", agent.owner));
    let project = row.project_id.as_deref().map(|id| directory.name_of(id).unwrap_or(id));
    compare("project", text(project), text(agent.project.as_deref()));
    // tollgate keeps the list sorted and without duplicates.
    let mut providers = agent.providers.clone();
    providers.sort();
    providers.dedup();
    compare("providers", row.providers.clone(), serde_json::to_string(&providers).unwrap_or_default());
    // The key by the fixture ref of the key stored at that id (what the agent would be delivered).
    let stored_key = row.provider_key_id.as_deref().map(|id| {
        let as_fixture_key = fixture
            .provider_keys
            .iter()
            .find(|key| directory.provider_key_id(&key.owner, &key.description) == Some(id))
            .map(|key| format!("provider key {}", key.key_ref));
        as_fixture_key.unwrap_or_else(|| {
            let known = context.keys.iter().any(|key| key.id == id);
            format!("{} {id}", if known { "provider key" } else { "unknown provider key" })
        })
    });
    let wanted_key = agent.provider_key.as_ref().map(|key_ref| format!("provider key {key_ref}"));
    compare(
        "provider_key",
        stored_key.unwrap_or_else(|| "none".to_owned()),
        wanted_key.unwrap_or_else(|| "none".to_owned()),
    );
    compare("status", row.status.clone(), agent.status.as_str().to_owned());
    compare("description", format!("{:?}", row.description), format!("{:?}", agent.description));
    differences
}

/// What differs between a fixture agent's credentials and those stored for its row.
fn credential_differences(
    agent: &FixtureAgent,
    row: &AgentRow,
    credentials: &[CredentialRow],
    context: &AgentContext<'_>,
) -> Vec<String> {
    let (directory, shown_db) = (context.directory, context.shown_db);
    let mut differences = Vec::new();
    let mut matched = Vec::new();
    for credential in &agent.credentials {
        let name = &credential.name;
        let found = directory.credential_id(&row.id, name);
        let Some(stored) = found.and_then(|id| credentials.iter().find(|stored| stored.id == id)) else {
            differences.push(format!("credential {name} is missing from {shown_db}"));
            continue;
        };
        matched.push(stored.id.as_str());
        let state = if stored.revoked { CredentialState::Revoked } else { CredentialState::Active };
        if state != credential.state {
            differences.push(format!(
                "credential {name} is {} in the database, {} in the fixture",
                state.as_str(),
                credential.state.as_str()
            ));
        } else if state == CredentialState::Active && stored.expires_at.is_some_and(|expiry| expiry <= context.now) {
            differences.push(format!(
                "credential {name} is expired now but the fixture says active (a development database ages: cargo \
                 xtask dev-fresh)"
            ));
        }
        // tollgate keeps a credential's copy of its agent's status current, and binds it to the agent's
        // owner and project: a difference means a credential that would be judged by another agent.
        if stored.agent_status.as_deref() != Some(row.status.as_str()) {
            differences.push(format!(
                "credential {name} carries agent status {}, but the agent is {}",
                stored.agent_status.as_deref().unwrap_or("none"),
                row.status
            ));
        }
        if stored.owner_id != row.owner_id || stored.project_id != row.project_id {
            let describe = |owner: &str, project: Option<&str>| {
                let project = project.map_or_else(|| "no project".to_owned(), |id| directory.describe(id));
                format!("{} and {project}", directory.describe(owner))
            };
            differences.push(format!(
                "credential {name} belongs to {}, but the agent to {}",
                describe(&stored.owner_id, stored.project_id.as_deref()),
                describe(&row.owner_id, row.project_id.as_deref())
            ));
        }
    }
    let others =
        credentials.iter().filter(|stored| stored.agent_id == row.id && !matched.contains(&stored.id.as_str()));
    for stored in others {
        differences
            .push(format!("credential {} ({}) is in the database but not in the fixture", stored.name, stored.id));
    }
    differences
}

//! Names and ids: the fixture names users, service accounts and projects, the database keys them by
//! id (`usr_…`, `svc_…`, `prj_…`). Seed and validate resolve a name through the same reading of the
//! database, so a limit, an owner or a member means the same account to both. Agents, provider keys
//! and credentials get their ids only when tollgate creates them, so both find them the same way too:
//! a provider key by owner and description, an agent by owner and name, a credential by agent and name.

use anyhow::Context;
use sqlx::SqliteConnection;

use crate::db::has_table;

/// The ids and names of a database's users, service accounts and projects, and the identities of its
/// agents, provider keys and agent credentials.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// `(id, username)`.
    users: Vec<(String, String)>,
    /// `(id, name)`.
    service_accounts: Vec<(String, String)>,
    /// `(id, name)`.
    projects: Vec<(String, String)>,
    /// `(id, owner id, description)` of the provider keys not deleted.
    provider_keys: Vec<(String, String, String)>,
    /// `(id, owner id, name)` of the agents not deleted.
    agents: Vec<(String, String, String)>,
    /// `(token id, agent id, name)` of every agent credential.
    credentials: Vec<(String, String, String)>,
}

impl Directory {
    /// Reads every user, service account and project, and the identities of the agents, provider keys
    /// and credentials (a table the schema lacks reads as empty).
    pub(crate) async fn read(connection: &mut SqliteConnection) -> anyhow::Result<Self> {
        let mut directory = Self::default();
        for (table, query, names) in [
            ("users", "SELECT id, username FROM users", &mut directory.users),
            ("service_accounts", "SELECT id, name FROM service_accounts", &mut directory.service_accounts),
            ("projects", "SELECT id, name FROM projects", &mut directory.projects),
        ] {
            if has_table(connection, table).await? {
                *names = sqlx::query_as(query)
                    .fetch_all(&mut *connection)
                    .await
                    .with_context(|| format!("while reading {table}"))?;
            }
        }
        // One migration adds agents, provider keys and the credentials' column in tokens.
        if has_table(connection, "agents").await? {
            for (table, query, identities) in [
                (
                    "provider_keys",
                    "SELECT id, owner_id, description FROM provider_keys WHERE deleted_at IS NULL ORDER BY id",
                    &mut directory.provider_keys,
                ),
                (
                    "agents",
                    "SELECT id, owner_id, name FROM agents WHERE deleted_at IS NULL ORDER BY id",
                    &mut directory.agents,
                ),
                (
                    "tokens",
                    "SELECT id, agent_id, name FROM tokens WHERE agent_id IS NOT NULL ORDER BY id",
                    &mut directory.credentials,
                ),
            ] {
                *identities = sqlx::query_as(query)
                    .fetch_all(&mut *connection)
                    .await
                    .with_context(|| format!("while reading {table}"))?;
            }
        }
        Ok(directory)
    }

    fn find_by<'a>(entries: &'a [(String, String, String)], parent: &str, name: &str) -> Option<&'a str> {
        entries
            .iter()
            .find(|(_, entry_parent, entry)| entry_parent == parent && entry == name)
            .map(|(id, ..)| id.as_str())
    }

    /// The id of the provider key of the user or service account `owner` described as `description`.
    pub(crate) fn provider_key_id(&self, owner: &str, description: &str) -> Option<&str> {
        Self::find_by(&self.provider_keys, self.owner_id(owner)?, description)
    }

    /// The id of the agent `name` of the user or service account `owner`.
    pub(crate) fn agent_id(&self, owner: &str, name: &str) -> Option<&str> {
        Self::find_by(&self.agents, self.owner_id(owner)?, name)
    }

    /// The id of the credential `name` of the agent with id `agent_id`.
    pub(crate) fn credential_id(&self, agent_id: &str, name: &str) -> Option<&str> {
        Self::find_by(&self.credentials, agent_id, name)
    }

    /// Whether the token `id` is an agent's credential (not an API token).
    pub(crate) fn is_credential(&self, id: &str) -> bool {
        self.credentials.iter().any(|(entry, ..)| entry == id)
    }

    fn find<'a>(entries: &'a [(String, String)], name: &str) -> Option<&'a str> {
        entries.iter().find(|(_, entry)| entry == name).map(|(id, _)| id.as_str())
    }

    /// The id of the user `username`.
    pub(crate) fn user_id(&self, username: &str) -> Option<&str> {
        Self::find(&self.users, username)
    }

    /// The id of the service account `name`.
    pub(crate) fn service_account_id(&self, name: &str) -> Option<&str> {
        Self::find(&self.service_accounts, name)
    }

    /// The id of the user or service account `name` (one namespace: never both).
    pub(crate) fn owner_id(&self, name: &str) -> Option<&str> {
        self.user_id(name).or_else(|| self.service_account_id(name))
    }

    /// The id of the project `name`.
    pub(crate) fn project_id(&self, name: &str) -> Option<&str> {
        Self::find(&self.projects, name)
    }

    /// The name of the user, service account or project with `id`.
    pub(crate) fn name_of(&self, id: &str) -> Option<&str> {
        [&self.users, &self.service_accounts, &self.projects]
            .into_iter()
            .flat_map(|entries| entries.iter())
            .find(|(entry, _)| entry == id)
            .map(|(_, name)| name.as_str())
    }

    /// Who or what `id` is, for messages: `user developer`, `service account usage-dashboard`,
    /// `project search`, or `unknown usr_…` when nothing has that id.
    pub(crate) fn describe(&self, id: &str) -> String {
        let kinds = [("user", &self.users), ("service account", &self.service_accounts), ("project", &self.projects)];
        kinds
            .into_iter()
            .find_map(|(kind, entries)| {
                entries.iter().find(|(entry, _)| entry == id).map(|(_, name)| format!("{kind} {name}"))
            })
            .unwrap_or_else(|| format!("unknown {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_ids_and_ids_describe_themselves() {
        let directory = Directory {
            users: vec![("usr_1".into(), "developer".into())],
            service_accounts: vec![("svc_1".into(), "usage-dashboard".into())],
            projects: vec![("prj_1".into(), "search".into())],
            ..Directory::default()
        };
        assert_eq!(directory.owner_id("developer"), Some("usr_1"));
        assert_eq!(directory.owner_id("usage-dashboard"), Some("svc_1"));
        assert_eq!(directory.user_id("usage-dashboard"), None, "a service account is not a user");
        assert_eq!(directory.project_id("search"), Some("prj_1"));
        assert_eq!(directory.describe("svc_1"), "service account usage-dashboard");
        assert_eq!(directory.describe("prj_1"), "project search");
        assert_eq!(directory.describe("usr_2"), "unknown usr_2");
        assert_eq!((directory.name_of("usr_1"), directory.name_of("usr_2")), (Some("developer"), None));
    }

    #[test]
    fn keys_agents_and_credentials_are_found_by_owner_or_agent_and_name() {
        let identity = |id: &str, parent: &str, name: &str| (id.to_owned(), parent.to_owned(), name.to_owned());
        let directory = Directory {
            users: vec![("usr_1".into(), "developer".into())],
            service_accounts: vec![("svc_1".into(), "bot".into())],
            provider_keys: vec![identity("pk_1", "usr_1", "search key"), identity("pk_2", "svc_1", "search key")],
            agents: vec![identity("agt_1", "usr_1", "assistant"), identity("agt_2", "svc_1", "assistant")],
            credentials: vec![identity("tok_1", "agt_1", "ci"), identity("tok_2", "agt_2", "ci")],
            ..Directory::default()
        };
        assert_eq!(directory.provider_key_id("bot", "search key"), Some("pk_2"));
        assert_eq!(directory.provider_key_id("developer", "other"), None);
        assert_eq!(directory.provider_key_id("ghost", "search key"), None);
        assert_eq!(
            (directory.agent_id("developer", "assistant"), directory.agent_id("bot", "assistant")),
            (Some("agt_1"), Some("agt_2"))
        );
        assert_eq!(
            (directory.credential_id("agt_2", "ci"), directory.credential_id("agt_3", "ci")),
            (Some("tok_2"), None)
        );
        assert!(directory.is_credential("tok_1") && !directory.is_credential("tok_9"));
    }
}

//! Names and ids: the fixture names users, service accounts and projects, the database keys them by
//! id (`usr_…`, `svc_…`, `prj_…`). Seed and validate resolve a name through the same reading of the
//! database, so a limit, an owner or a member means the same account to both.

use anyhow::Context;
use sqlx::SqliteConnection;

use crate::db::has_table;

/// The ids and names of a database's users, service accounts and projects.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// `(id, username)`.
    users: Vec<(String, String)>,
    /// `(id, name)`.
    service_accounts: Vec<(String, String)>,
    /// `(id, name)`.
    projects: Vec<(String, String)>,
}

impl Directory {
    /// Reads every user, service account and project (a table the schema lacks reads as empty).
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
        Ok(directory)
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
}

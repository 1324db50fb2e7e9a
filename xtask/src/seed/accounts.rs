//! Seeding service accounts and projects through `tollgate service-account create`, `tollgate project
//! create` and `tollgate project add-member`: only what is missing is written (an account or a project
//! by name, a member by project and member id), so a second seed writes nothing.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;

use super::SeedOutcome;
use crate::db::{has_table, with_connection};
use crate::directory::Directory;
use crate::fixture::Fixture;
use crate::tollgate::Tollgate;

/// Creates the fixture's missing service accounts. One already present is left as it is (validate
/// reports any drift).
pub(super) fn seed_service_accounts(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let directory = with_connection(db, async |connection| Directory::read(connection).await)?;
    for account in &fixture.service_accounts {
        if directory.service_account_id(&account.name).is_some() {
            outcome.service_accounts_present += 1;
            continue;
        }
        let mut arguments = vec!["service-account", "create", "--name", &account.name];
        if !account.description.is_empty() {
            arguments.extend(["--description", &account.description]);
        }
        tollgate
            .run(db, &arguments, None)
            .with_context(|| format!("while creating service account {}", account.name))?;
        outcome.service_accounts_added += 1;
    }
    Ok(())
}

/// Creates the fixture's missing projects, then adds the missing members with their roles. A member
/// already present is left with the role it has (validate reports a different one).
pub(super) fn seed_projects(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let before = with_connection(db, async |connection| Directory::read(connection).await)?;
    for project in &fixture.projects {
        if before.project_id(&project.name).is_some() {
            outcome.projects_present += 1;
            continue;
        }
        let mut arguments = vec!["project", "create", "--name", &project.name];
        if !project.description.is_empty() {
            arguments.extend(["--description", &project.description]);
        }
        tollgate.run(db, &arguments, None).with_context(|| format!("while creating project {}", project.name))?;
        outcome.projects_added += 1;
    }
    let (directory, members) = with_connection(db, async |connection| {
        let directory = Directory::read(connection).await?;
        let members: BTreeSet<(String, String)> = if has_table(connection, "project_members").await? {
            sqlx::query_as("SELECT project_id, member_id FROM project_members")
                .fetch_all(&mut *connection)
                .await
                .context("while reading project_members")?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        Ok((directory, members))
    })?;
    for project in &fixture.projects {
        let project_id =
            directory.project_id(&project.name).with_context(|| format!("project {} was not created", project.name))?;
        for member in &project.members {
            let member_id = directory.owner_id(&member.member).with_context(|| {
                format!(
                    "project {} names member {}, who is neither a user nor a service account in the database",
                    project.name, member.member
                )
            })?;
            if members.contains(&(project_id.to_owned(), member_id.to_owned())) {
                outcome.members_present += 1;
                continue;
            }
            let arguments = ["project", "add-member", project_id, "--member", member_id, "--role", &member.role];
            tollgate
                .run(db, &arguments, None)
                .with_context(|| format!("while adding {} to project {}", member.member, project.name))?;
            outcome.members_added += 1;
        }
    }
    Ok(())
}

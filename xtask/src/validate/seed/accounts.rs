//! `validate seed`, service accounts and projects: every fixture service account is there, active,
//! with its description; every fixture project is there with its description and exactly its members
//! in their roles; and there is no other service account, project or member.

use anyhow::Context;
use sqlx::SqliteConnection;

use crate::db::has_table;
use crate::directory::Directory;
use crate::fixture::{FIXTURE_PATH, Fixture};
use crate::validate::Violation;

/// A service account as stored.
#[derive(Debug)]
struct ServiceAccountRow {
    id: String,
    name: String,
    description: String,
    status: String,
    status_reason: Option<String>,
}

/// A project as stored.
#[derive(Debug)]
struct ProjectRow {
    id: String,
    name: String,
    description: String,
}

/// A project membership as stored.
#[derive(Debug)]
struct MemberRow {
    project_id: String,
    member_id: String,
    role: String,
}

/// The service accounts, projects and members of a database (empty when its schema has none).
#[derive(Debug, Default)]
pub(super) struct Accounts {
    service_accounts: Vec<ServiceAccountRow>,
    projects: Vec<ProjectRow>,
    members: Vec<MemberRow>,
}

pub(super) async fn read_accounts(connection: &mut SqliteConnection) -> anyhow::Result<Accounts> {
    let mut accounts = Accounts::default();
    if has_table(connection, "service_accounts").await? {
        let rows: Vec<(String, String, String, String, Option<String>)> =
            sqlx::query_as("SELECT id, name, description, status, status_reason FROM service_accounts ORDER BY name")
                .fetch_all(&mut *connection)
                .await
                .context("while reading service_accounts")?;
        accounts.service_accounts = rows
            .into_iter()
            .map(|(id, name, description, status, status_reason)| ServiceAccountRow {
                id,
                name,
                description,
                status,
                status_reason,
            })
            .collect();
    }
    if has_table(connection, "projects").await? {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, name, description FROM projects ORDER BY name")
                .fetch_all(&mut *connection)
                .await
                .context("while reading projects")?;
        accounts.projects =
            rows.into_iter().map(|(id, name, description)| ProjectRow { id, name, description }).collect();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT project_id, member_id, role FROM project_members ORDER BY project_id, member_id")
                .fetch_all(&mut *connection)
                .await
                .context("while reading project_members")?;
        accounts.members =
            rows.into_iter().map(|(project_id, member_id, role)| MemberRow { project_id, member_id, role }).collect();
    }
    Ok(accounts)
}

/// Every difference between the fixture's service accounts and projects and the stored ones.
pub(super) fn check_accounts(
    fixture: &Fixture,
    accounts: &Accounts,
    directory: &Directory,
    shown_db: &str,
) -> Vec<Violation> {
    let mut violations = check_service_accounts(fixture, accounts, shown_db);
    violations.extend(check_projects(fixture, accounts, directory, shown_db));
    violations
}

fn text(value: Option<&String>) -> String {
    value.map_or_else(|| "none".to_owned(), |value| format!("{value:?}"))
}

fn check_service_accounts(fixture: &Fixture, accounts: &Accounts, shown_db: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, account) in fixture.service_accounts.iter().enumerate() {
        let line = fixture.line_of("service_accounts", index);
        let name = &account.name;
        let Some(row) = accounts.service_accounts.iter().find(|row| &row.name == name) else {
            let message = format!("service account {name} is missing from {shown_db}");
            violations.push(Violation::at(FIXTURE_PATH, line, message));
            continue;
        };
        let mut differ = |field: &str, stored: String, wanted: String| {
            if stored != wanted {
                let message =
                    format!("service account {name}: {field} is {stored} in the database, {wanted} in the fixture");
                violations.push(Violation::at(FIXTURE_PATH, line, message));
            }
        };
        differ("description", format!("{:?}", row.description), format!("{:?}", account.description));
        // The fixture's service accounts are active: the tokens they own are meant to work.
        differ("status", row.status.clone(), "active".to_owned());
        differ("status_reason", text(row.status_reason.as_ref()), text(None));
    }
    for row in accounts.service_accounts.iter().filter(|row| fixture.service_account(&row.name).is_none()) {
        let message = format!("service account {} ({}) is not in {FIXTURE_PATH}", row.name, row.id);
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

fn check_projects(fixture: &Fixture, accounts: &Accounts, directory: &Directory, shown_db: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, project) in fixture.projects.iter().enumerate() {
        let line = fixture.line_of("projects", index);
        let name = &project.name;
        let mut problem = |message: String| violations.push(Violation::at(FIXTURE_PATH, line, message));
        let Some(row) = accounts.projects.iter().find(|row| &row.name == name) else {
            problem(format!("project {name} is missing from {shown_db}"));
            continue;
        };
        if row.description != project.description {
            problem(format!(
                "project {name}: description is {:?} in the database, {:?} in the fixture",
                row.description, project.description
            ));
        }
        let stored: Vec<&MemberRow> = accounts.members.iter().filter(|member| member.project_id == row.id).collect();
        let mut expected_ids = Vec::new();
        for member in &project.members {
            let member_id = directory.owner_id(&member.member);
            expected_ids.extend(member_id);
            match stored.iter().find(|stored| Some(stored.member_id.as_str()) == member_id) {
                None => problem(format!("project {name}: member {} is missing from {shown_db}", member.member)),
                Some(stored) if stored.role != member.role => problem(format!(
                    "project {name}: member {} has role {} in the database, {} in the fixture",
                    member.member, stored.role, member.role
                )),
                Some(_) => {}
            }
        }
        for member in stored.iter().filter(|member| !expected_ids.contains(&member.member_id.as_str())) {
            problem(format!(
                "project {name}: {} ({}) is a {} in the database but not in the fixture",
                directory.describe(&member.member_id),
                member.member_id,
                member.role
            ));
        }
    }
    for row in accounts.projects.iter().filter(|row| fixture.project(&row.name).is_none()) {
        let message = format!("project {} ({}) is not in {FIXTURE_PATH}", row.name, row.id);
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

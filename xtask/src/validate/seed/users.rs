//! `validate seed`, users: every fixture user is there with its email, role, status and reason, the
//! development password verifies against its stored hash, and there is no other user.

use anyhow::Context;
use sqlx::SqliteConnection;

use crate::fixture::{FIXTURE_PATH, Fixture};
use crate::validate::Violation;

/// A user row as stored.
#[derive(Debug)]
pub(super) struct UserRow {
    id: String,
    username: String,
    email: String,
    role: String,
    status: String,
    status_reason: Option<String>,
    password_hash: String,
}

impl UserRow {
    /// The role of the user with `id`, when there is one.
    pub(super) fn role_of<'a>(rows: &'a [UserRow], id: &str) -> Option<&'a str> {
        rows.iter().find(|row| row.id == id).map(|row| row.role.as_str())
    }
}

pub(super) async fn read_users(connection: &mut SqliteConnection) -> anyhow::Result<Vec<UserRow>> {
    type Row = (String, String, String, String, String, Option<String>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, username, email, role, status, status_reason, password_hash FROM users ORDER BY username",
    )
    .fetch_all(connection)
    .await
    .context("while reading users")?;
    Ok(rows
        .into_iter()
        .map(|(id, username, email, role, status, status_reason, password_hash)| UserRow {
            id,
            username,
            email,
            role,
            status,
            status_reason,
            password_hash,
        })
        .collect())
}

/// Every difference between the fixture's users and `rows`.
pub(super) fn check_users(fixture: &Fixture, rows: &[UserRow], shown_db: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, user) in fixture.users.iter().enumerate() {
        let line = fixture.line_of("users", index);
        let name = &user.username;
        let Some(row) = rows.iter().find(|row| &row.username == name) else {
            violations.push(Violation::at(FIXTURE_PATH, line, format!("user {name} is missing from {shown_db}")));
            continue;
        };
        let mut differ = |field: &str, stored: String, wanted: String| {
            if stored != wanted {
                let message = format!("user {name}: {field} is {stored} in the database, {wanted} in the fixture");
                violations.push(Violation::at(FIXTURE_PATH, line, message));
            }
        };
        let text = |value: Option<&String>| value.map_or_else(|| "none".to_owned(), |value| format!("{value:?}"));
        differ("email", row.email.clone(), user.email.clone());
        differ("role", row.role.clone(), user.role.clone());
        differ("status", row.status.clone(), user.status.as_str().to_owned());
        differ("status_reason", text(row.status_reason.as_ref()), text(user.status_reason.as_ref()));
        if !bcrypt::verify(&fixture.password, &row.password_hash).unwrap_or(false) {
            let message = format!("user {name}: the development password does not verify against the stored hash");
            violations.push(Violation::at(FIXTURE_PATH, line, message));
        }
    }
    for row in rows.iter().filter(|row| fixture.user(&row.username).is_none()) {
        let message = format!("user {} ({}) is not in {FIXTURE_PATH}", row.username, row.id);
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

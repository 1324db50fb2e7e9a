//! Seeding users: create the missing ones with the development password, suspend those the fixture
//! wants suspended.

use std::path::Path;

use anyhow::Context;
use zeroize::Zeroizing;

use super::SeedOutcome;
use crate::db::with_connection;
use crate::fixture::{Fixture, UserStatus};
use crate::tollgate::Tollgate;

/// The bcrypt cost of the development users' password hashes: the lowest tollgate accepts, so seeding
/// stays quick (the development password is public anyway).
const DEV_BCRYPT_COST: &str = "10";

/// A user row, as far as seeding cares.
#[derive(Debug)]
struct UserRow {
    username: String,
    status: String,
}

async fn read_users(connection: &mut sqlx::SqliteConnection) -> anyhow::Result<Vec<UserRow>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT username, status FROM users")
        .fetch_all(connection)
        .await
        .context("while reading users")?;
    Ok(rows.into_iter().map(|(username, status)| UserRow { username, status }).collect())
}

/// Creates the fixture's missing users and suspends those the fixture wants suspended. A user who is
/// present is left as it is (validate reports any drift), except that one still active is suspended,
/// so an interrupted seed converges.
pub(super) fn seed_users(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let before = with_connection(db, async |connection| read_users(connection).await)?;
    for user in &fixture.users {
        let present = before.iter().find(|row| row.username == user.username);
        if present.is_some() {
            outcome.users_present += 1;
        } else {
            let arguments = [
                "--bcrypt-cost",
                DEV_BCRYPT_COST,
                "user",
                "create",
                "--username",
                &user.username,
                "--email",
                &user.email,
                "--role",
                &user.role,
                "--password-stdin",
            ];
            let password = Zeroizing::new(format!("{}\n", fixture.password));
            tollgate
                .run(db, &arguments, Some(&password))
                .with_context(|| format!("while creating user {}", user.username))?;
            outcome.users_added += 1;
        }
        let active = present.is_none_or(|row| row.status == UserStatus::Active.as_str());
        if let (UserStatus::Suspended, Some(reason), true) = (user.status, &user.status_reason, active) {
            tollgate
                .run(db, &["user", "suspend", &user.username, "--reason", reason], None)
                .with_context(|| format!("while suspending user {}", user.username))?;
            outcome.users_suspended += 1;
        }
    }
    Ok(())
}

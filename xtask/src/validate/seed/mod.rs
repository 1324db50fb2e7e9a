//! `validate seed`: the development database holds exactly the fixture — every user (users.rs), service
//! account and project with its members (accounts.rs), every token with its metadata, owner and project
//! (by id, and their display names), times (from the seed anchor), state, display hint and the HMAC of
//! its development secret under the database's key, the limits and usage (metering.rs), the provider
//! keys with their ciphertext and never a plaintext secret (provider_keys.rs), the agents with their
//! credentials in their states (agents.rs) — and nothing else.

mod accounts;
mod agents;
mod metering;
mod provider_keys;
mod users;

use std::path::Path;

use anyhow::Context;
use sqlx::Row;
use tollgate_types::{KeyId, TokenHasher, TokenPrefix, TokenSecret};
use zeroize::Zeroizing;

use self::accounts::{check_accounts, read_accounts};
use self::agents::{AgentContext, AgentRow, CredentialRow, check_agents, read_agents, read_credentials};
use self::metering::{check_metering, read_metering};
use self::provider_keys::{KeyRow, check_no_plaintext, check_provider_keys, read_provider_keys, read_vault_key_ids};
use self::users::{UserRow, check_users, read_users};
use super::Violation;
use crate::db::{has_table, marker, now_micros, with_connection};
use crate::directory::Directory;
use crate::fixture::{FIXTURE_PATH, Fixture, FixtureToken, TokenState};
use crate::workspace::{shown, with_suffix};

/// A token row as stored.
#[derive(Debug)]
struct TokenRow {
    id: String,
    name: String,
    owner_id: String,
    owner_name: String,
    owner_role: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    permission: String,
    scopes: String,
    description: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
    display_hint: String,
    hash: Vec<u8>,
    key_id: i64,
}

/// The stored provider keys, agents and credentials; `None` when the schema has no agents yet.
type Vault = Option<(Vec<KeyRow>, Vec<AgentRow>, Vec<CredentialRow>)>;

/// Checks the database at `db` against `fixture`; every difference is a violation.
pub fn check_seed(root: &Path, db: &Path, fixture: &Fixture) -> anyhow::Result<Vec<Violation>> {
    let mut violations = fixture.check();
    let shown_db = shown(root, db);
    if !db.is_file() {
        violations.push(Violation::in_file(shown_db, "does not exist: run cargo xtask dev-fresh".to_owned()));
        return Ok(violations);
    }
    let (marker, rows, users, accounts, directory, metering, vault) = with_connection(db, async |connection| {
        let marker = marker(connection).await?;
        let users = read_users(connection).await?;
        let accounts = read_accounts(connection).await?;
        let directory = Directory::read(connection).await?;
        let metering = read_metering(connection).await?;
        let vault: Vault = if has_table(connection, "agents").await? {
            Some((
                read_provider_keys(connection).await?,
                read_agents(connection).await?,
                read_credentials(connection).await?,
            ))
        } else {
            None
        };
        let rows = sqlx::query(
            "SELECT id, name, owner_id, owner_name, owner_role, project_id, project_name, permission, scopes,
                    description, created_at, expires_at, revoked_at, revoke_reason, display_hint, hash, key_id
             FROM tokens ORDER BY id",
        )
        .fetch_all(&mut *connection)
        .await
        .context("while reading tokens")?;
        let rows: Vec<TokenRow> = rows
            .iter()
            .map(|row| TokenRow {
                id: row.get("id"),
                name: row.get("name"),
                owner_id: row.get("owner_id"),
                owner_name: row.get("owner_name"),
                owner_role: row.get("owner_role"),
                project_id: row.get("project_id"),
                project_name: row.get("project_name"),
                permission: row.get("permission"),
                scopes: row.get("scopes"),
                description: row.get("description"),
                created_at: row.get("created_at"),
                expires_at: row.get("expires_at"),
                revoked_at: row.get("revoked_at"),
                revoke_reason: row.get("revoke_reason"),
                display_hint: row.get("display_hint"),
                hash: row.get("hash"),
                key_id: row.get("key_id"),
            })
            .collect();
        Ok((marker, rows, users, accounts, directory, metering, vault))
    })?;
    let Some(marker) = marker else {
        violations.push(Violation::in_file(
            shown_db,
            "is not a development database (no marker): run cargo xtask dev-fresh".into(),
        ));
        return Ok(violations);
    };
    let Some(anchor) = marker.seed_anchor else {
        violations.push(Violation::in_file(shown_db, "has not been seeded: run cargo xtask seed".into()));
        return Ok(violations);
    };
    let hasher = match read_key_file(&with_suffix(db, ".key")) {
        Ok(hasher) => Some(hasher),
        Err(error) => {
            violations.push(Violation::in_file(format!("{shown_db}.key"), format!("{error:#}")));
            None
        }
    };
    violations.extend(check_users(fixture, &users, &shown_db));
    violations.extend(check_accounts(fixture, &accounts, &directory, &shown_db));
    if let Some(metering) = &metering {
        violations.extend(check_metering(fixture, metering, &directory, anchor, &shown_db));
    }
    let now = now_micros();
    if let Some((keys, agents, credentials)) = &vault {
        let master_key_ids = if keys.is_empty() && fixture.provider_keys.is_empty() {
            None
        } else {
            match read_vault_key_ids(db) {
                Ok(ids) => Some(ids),
                Err(error) => {
                    violations.push(Violation::in_file(format!("{shown_db}.vault.key"), format!("{error:#}")));
                    None
                }
            }
        };
        violations.extend(check_provider_keys(fixture, keys, &directory, master_key_ids.as_deref(), &shown_db));
        let context = AgentContext { keys, directory: &directory, now, shown_db: &shown_db };
        violations.extend(check_agents(fixture, agents, credentials, &context));
    }
    violations.extend(check_no_plaintext(fixture, db, &shown_db)?);
    for (index, token) in fixture.tokens.iter().enumerate() {
        let line = fixture.line_of("tokens", index);
        match rows.iter().find(|row| row.id == token.id) {
            None => violations.push(Violation::at(
                FIXTURE_PATH,
                line,
                format!("token {} is missing from {shown_db}", token.id),
            )),
            Some(row) => {
                let context =
                    Comparison { anchor, now, hasher: hasher.as_ref(), users: &users, directory: &directory, fixture };
                for difference in token_differences(token, row, &context) {
                    violations.push(Violation::at(FIXTURE_PATH, line, format!("token {}: {difference}", token.id)));
                }
            }
        }
    }
    // Agents' credentials are tokens too: agents.rs checks them against their agents.
    for row in rows.iter().filter(|row| fixture.token(&row.id).is_none() && !directory.is_credential(&row.id)) {
        violations.push(Violation::in_file(
            shown_db.clone(),
            format!("token {} ({}) is not in {FIXTURE_PATH}", row.id, row.name),
        ));
    }
    Ok(violations)
}

/// What a token row is compared in.
struct Comparison<'a> {
    /// The seed anchor (Unix microseconds).
    anchor: i64,
    /// Now (Unix microseconds): the state a token shows is the state it has now.
    now: i64,
    /// The database's key, when its key file could be read.
    hasher: Option<&'a TokenHasher>,
    /// The database's users: a user-owned token's `owner_role` is its owner's role.
    users: &'a [UserRow],
    /// The database's names and ids, to name a token's owner and project.
    directory: &'a Directory,
    /// The fixture, to tell a user owner from a service account.
    fixture: &'a Fixture,
}

/// The state a stored token is in at `now`.
fn state_at(row: &TokenRow, now: i64) -> TokenState {
    match (row.revoked_at, row.expires_at) {
        (Some(_), _) => TokenState::Revoked,
        (None, Some(expiry)) if expiry <= now => TokenState::Expired,
        _ => TokenState::Active,
    }
}

/// What differs between a fixture token and its row, one message per field.
fn token_differences(token: &FixtureToken, row: &TokenRow, context: &Comparison<'_>) -> Vec<String> {
    let (anchor, hasher) = (context.anchor, context.hasher);
    let mut differences = Vec::new();
    let mut compare = |field: &str, stored: String, wanted: String| {
        if stored != wanted {
            differences.push(format!("{field} is {stored} in the database, {wanted} in the fixture"));
        }
    };
    let time = |micros: Option<i64>| {
        micros.map_or_else(
            || "none".to_owned(),
            |micros| tollgate_types::Timestamp::from_unix_micros(micros).to_rfc3339(),
        )
    };
    let text = |value: Option<&String>| value.map_or_else(|| "none".to_owned(), |value| format!("{value:?}"));
    compare("name", format!("{:?}", row.name), format!("{:?}", token.name));
    // The owner and project by id (what every decision uses), then the names kept for display.
    let directory = context.directory;
    let wanted_owner = match context.fixture.owner_kind(&token.owner) {
        Some(kind) => format!("{} {}", kind.as_str(), token.owner),
        None => format!("unknown {}", token.owner),
    };
    compare("owner", directory.describe(&row.owner_id), wanted_owner);
    compare("owner_name", format!("{:?}", row.owner_name), format!("{:?}", token.owner));
    let project = row
        .project_id
        .as_deref()
        .map(|id| directory.name_of(id).map_or_else(|| format!("unknown project {id}"), |name| format!("{name:?}")));
    compare("project", project.unwrap_or_else(|| "none".to_owned()), text(token.project.as_ref()));
    compare("project_name", text(row.project_name.as_ref()), text(token.project.as_ref()));
    compare("permission", row.permission.clone(), token.permission.clone());
    let mut scopes = token.scopes.clone();
    scopes.sort();
    scopes.dedup();
    compare("scopes", row.scopes.clone(), serde_json::to_string(&scopes).unwrap_or_default());
    compare("description", format!("{:?}", row.description), format!("{:?}", token.description));
    compare("created_at", time(Some(row.created_at)), time(Some(token.created_at.at(anchor))));
    compare("expires_at", time(row.expires_at), time(token.expires_at.map(|offset| offset.at(anchor))));
    compare("revoked_at", time(row.revoked_at), time(token.revoked_at.map(|offset| offset.at(anchor))));
    compare("revoke_reason", text(row.revoke_reason.as_ref()), text(token.revoke_reason.as_ref()));
    // The secret: what its hint and its HMAC under this database's key must be.
    if let Ok(secret) = TokenSecret::parse(&TokenPrefix::default(), &token.secret) {
        compare("display_hint", row.display_hint.clone(), secret.display_hint());
        if let Some(hasher) = hasher {
            if row.key_id != i64::from(hasher.current_key_id().0) {
                differences.push(format!(
                    "key_id is {} but the key file holds key {}",
                    row.key_id,
                    hasher.current_key_id().0
                ));
            } else if hasher.hash(&secret).as_bytes().as_slice() != row.hash.as_slice() {
                differences.push(
                    "its stored hash is not the HMAC of the fixture's secret: the secret would not verify".into(),
                );
            }
        }
    }
    // owner_role is kept equal to the owning user's role (none for a service account): it bounds the token.
    let owner_role = UserRow::role_of(context.users, &row.owner_id);
    if row.owner_role.as_deref() != owner_role {
        let stored = text(row.owner_role.as_ref());
        differences.push(match owner_role {
            Some(role) => format!("owner_role is {stored} in the database but its owner's role is {role:?}"),
            None => format!("owner_role is {stored} in the database but a token not owned by a user has none"),
        });
    }
    let state = state_at(row, context.now);
    if state != token.state {
        differences.push(format!(
            "it is {} now but the fixture says {} (a development database ages: cargo xtask dev-fresh)",
            state.as_str(),
            token.state.as_str()
        ));
    }
    differences
}

/// Reads a `tollgate-key v1 <id> <hex>` key file into a hasher.
fn read_key_file(path: &Path) -> anyhow::Result<TokenHasher> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
    let mut parts = text.split_whitespace();
    let (Some("tollgate-key"), Some("v1"), Some(id), Some(hex)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("{} is not a tollgate-key v1 file", path.display());
    };
    let id: u32 = id.parse().with_context(|| format!("{}: bad key id", path.display()))?;
    let key: Zeroizing<Vec<u8>> = Zeroizing::new(
        (0..hex.len())
            .step_by(2)
            .map(|index| hex.get(index..index + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .with_context(|| format!("{}: the key is not hex", path.display()))?,
    );
    TokenHasher::new(KeyId(id), &key).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

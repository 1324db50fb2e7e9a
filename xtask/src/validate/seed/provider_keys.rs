//! `validate seed`, provider keys: every fixture key is stored (found by owner and description) with its
//! provider, owner, project, enabled, and the masked hint of the fixture's secret; its ciphertext is all
//! there, as long as the sealed secret would be, under a master key the vault key file holds; no other
//! key is stored; and no fixture secret appears in plaintext in the database's files.

use std::path::Path;

use anyhow::Context;
use sqlx::{Row, SqliteConnection};
use tollgate_types::ProviderSecret;
use zeroize::Zeroizing;

use crate::directory::Directory;
use crate::fixture::{FIXTURE_PATH, Fixture};
use crate::validate::Violation;
use crate::workspace::with_suffix;

/// What AES-256-GCM adds to a sealed secret: its 16-byte tag.
const TAG_BYTES: usize = 16;

/// A provider key as stored (without the wrapped data key and nonce, of which only presence matters).
#[derive(Debug)]
pub(super) struct KeyRow {
    pub(super) id: String,
    provider: String,
    owner_name: String,
    project_id: Option<String>,
    description: String,
    enabled: bool,
    masked: String,
    ciphertext_len: Option<usize>,
    has_nonce_and_wrapped_key: bool,
    master_key_id: Option<i64>,
    deleted: bool,
}

pub(super) async fn read_provider_keys(connection: &mut SqliteConnection) -> anyhow::Result<Vec<KeyRow>> {
    let rows = sqlx::query(
        "SELECT id, provider, owner_name, project_id, description, enabled, masked,
                length(ciphertext) AS ciphertext_len, nonce IS NOT NULL AND wrapped_key IS NOT NULL AS sealed,
                master_key_id, deleted_at IS NOT NULL AS deleted
         FROM provider_keys ORDER BY id",
    )
    .fetch_all(connection)
    .await
    .context("while reading provider_keys")?;
    Ok(rows
        .iter()
        .map(|row| KeyRow {
            id: row.get("id"),
            provider: row.get("provider"),
            owner_name: row.get("owner_name"),
            project_id: row.get("project_id"),
            description: row.get("description"),
            enabled: row.get::<i64, _>("enabled") != 0,
            masked: row.get("masked"),
            ciphertext_len: row.get::<Option<i64>, _>("ciphertext_len").and_then(|len| usize::try_from(len).ok()),
            has_nonce_and_wrapped_key: row.get::<i64, _>("sealed") != 0,
            master_key_id: row.get("master_key_id"),
            deleted: row.get::<i64, _>("deleted") != 0,
        })
        .collect())
}

/// The master key ids in the vault key file beside `db` (`tollgate-vault-key v1 <id> <hex>` lines).
pub(super) fn read_vault_key_ids(db: &Path) -> anyhow::Result<Vec<i64>> {
    let path = with_suffix(db, ".vault.key");
    let text =
        Zeroizing::new(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next().and_then(|id| id.parse().ok())) {
                (Some("tollgate-vault-key"), Some("v1"), Some(id)) => Ok(id),
                _ => anyhow::bail!("{} is not a tollgate-vault-key v1 file", path.display()),
            }
        })
        .collect()
}

/// Every difference between the fixture's provider keys and the stored ones. `master_key_ids` are the
/// vault key file's, when it could be read.
pub(super) fn check_provider_keys(
    fixture: &Fixture,
    rows: &[KeyRow],
    directory: &Directory,
    master_key_ids: Option<&[i64]>,
    shown_db: &str,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut matched = Vec::new();
    for (index, key) in fixture.provider_keys.iter().enumerate() {
        let line = fixture.line_of("provider_keys", index);
        let name = &key.key_ref;
        let mut problem = |message: String| violations.push(Violation::at(FIXTURE_PATH, line, message));
        let found = directory.provider_key_id(&key.owner, &key.description);
        let Some(row) = found.and_then(|id| rows.iter().find(|row| row.id == id)) else {
            problem(format!(
                "provider key {name} ({} key of {} described {:?}) is missing from {shown_db}",
                key.provider, key.owner, key.description
            ));
            continue;
        };
        matched.push(row.id.as_str());
        let mut differ = |field: &str, stored: String, wanted: String| {
            if stored != wanted {
                problem(format!("provider key {name}: {field} is {stored} in the database, {wanted} in the fixture"));
            }
        };
        let text = |value: Option<&str>| value.map_or_else(|| "none".to_owned(), |value| format!("{value:?}"));
        differ("provider", row.provider.clone(), key.provider.clone());
        differ("owner_name", format!("{:?}", row.owner_name), format!("{:?}", key.owner));
        let project = row.project_id.as_deref().map(|id| directory.name_of(id).unwrap_or(id));
        differ("project", text(project), text(key.project.as_deref()));
        differ("enabled", row.enabled.to_string(), true.to_string());
        let Ok(secret) = ProviderSecret::parse(&key.secret) else { continue };
        differ("masked", format!("{:?}", row.masked), format!("{:?}", secret.masked()));
        match (row.ciphertext_len, row.has_nonce_and_wrapped_key, row.master_key_id) {
            (Some(stored), true, Some(master_key_id)) => {
                let sealed = key.secret.len() + TAG_BYTES;
                if stored != sealed {
                    problem(format!(
                        "provider key {name}: its ciphertext is {stored} bytes, but the fixture's secret sealed would \
                         be {sealed}: it does not hold that secret"
                    ));
                }
                if master_key_ids.is_some_and(|ids| !ids.contains(&master_key_id)) {
                    problem(format!(
                        "provider key {name}: it is wrapped by master key {master_key_id}, which the vault key file \
                         {shown_db}.vault.key does not hold: it cannot be opened"
                    ));
                }
            }
            _ => problem(format!(
                "provider key {name}: its ciphertext, nonce, wrapped key or master key id is missing{}",
                if row.deleted { " (it is deleted)" } else { "" }
            )),
        }
    }
    for row in rows.iter().filter(|row| !matched.contains(&row.id.as_str())) {
        let deleted = if row.deleted { "deleted " } else { "" };
        let message = format!(
            "{deleted}provider key {} ({} key of {} described {:?}, {}) is not in {FIXTURE_PATH}",
            row.id, row.provider, row.owner_name, row.description, row.masked
        );
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

/// A violation for every fixture secret found in plaintext in the database or its -wal or -journal
/// file: the vault must hold only ciphertext.
pub(super) fn check_no_plaintext(fixture: &Fixture, db: &Path, shown_db: &str) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        let path = with_suffix(db, suffix);
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("while reading {}", path.display()))?;
        for (index, key) in fixture.provider_keys.iter().enumerate() {
            let secret = key.secret.as_bytes();
            if !secret.is_empty() && bytes.windows(secret.len()).any(|window| window == secret) {
                let message = format!(
                    "provider key {}: its secret is in plaintext in {shown_db}{suffix}: the vault must store only its \
                     ciphertext",
                    key.key_ref
                );
                violations.push(Violation::at(FIXTURE_PATH, fixture.line_of("provider_keys", index), message));
            }
        }
    }
    Ok(violations)
}

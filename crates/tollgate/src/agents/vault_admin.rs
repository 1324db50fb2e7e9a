//! Operating the vault: adding a master key and re-wrapping every data key under it, retiring an
//! old master key once nothing uses it, and counting what each key wraps.

use serde::Serialize;
use tollgate_store::Rewrap;
use tollgate_types::{AuditEvent, Principal};

use super::AgentService;
use crate::authz::{Operation, authorize};
use crate::{Error, MasterKeyId, MasterKeys, Result};
use tollgate_store::SealedKey;

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct MasterKeyRotation {
    /// The new current master key (`None` for a re-wrap alone).
    pub added: Option<u32>,
    /// How many provider keys were re-wrapped under it.
    pub rewrapped: u64,
    /// The master keys in the key file after.
    pub master_keys: Vec<u32>,
}

/// The vault's keys and what they wrap.
#[derive(Debug, Clone, Serialize)]
pub struct VaultStatus {
    /// The key file (empty for keys held in memory).
    pub key_file: String,
    /// The current master key.
    pub current: u32,
    /// Every master key in the file, with how many provider keys it wraps.
    pub master_keys: Vec<(u32, u64)>,
    /// Master keys that stored rows name but the file does not hold (those rows cannot be opened).
    pub missing: Vec<u32>,
}

impl AgentService {
    /// Adds a new master key to the key file and re-wraps every provider key's data key under it in
    /// one transaction. The old keys stay in the file (rows a running server wrapped with an older
    /// key meanwhile still open) until [`retire_master_key`](Self::retire_master_key).
    pub async fn rotate_master_key(&self, principal: &Principal) -> Result<MasterKeyRotation> {
        authorize(principal, Operation::ManageVault)?;
        let mut keys = self.fresh_keys()?;
        let added = keys.add_key()?;
        self.keys.replace(keys);
        let rewrapped = self.rewrap_all(principal, Some(added)).await?;
        Ok(MasterKeyRotation {
            added: Some(added.0),
            rewrapped,
            master_keys: self.keys.keys().ids().iter().map(|id| id.0).collect(),
        })
    }

    /// Re-wraps every provider key not under the current master key (after a server wrapped new rows
    /// with an older key during a rotation). Idempotent.
    pub async fn rewrap_provider_keys(&self, principal: &Principal) -> Result<MasterKeyRotation> {
        authorize(principal, Operation::ManageVault)?;
        self.keys.replace(self.fresh_keys()?);
        let rewrapped = self.rewrap_all(principal, None).await?;
        Ok(MasterKeyRotation {
            added: None,
            rewrapped,
            master_keys: self.keys.keys().ids().iter().map(|id| id.0).collect(),
        })
    }

    /// Removes master key `id` from the key file. Refused while any stored provider key is still
    /// wrapped by it (re-wrap first), and for the current key.
    pub async fn retire_master_key(&self, principal: &Principal, id: u32) -> Result<()> {
        authorize(principal, Operation::ManageVault)?;
        let mut keys = self.fresh_keys()?;
        if keys.current_id() == MasterKeyId(id) {
            let reason = format!("master key {id} is the current one: rotate to a new key before retiring it");
            return Err(tollgate_types::ValidationError::new("key_id", reason).into());
        }
        let in_use = self.store.provider_keys_by_master_key().await?;
        if let Some((_, rows)) = in_use.iter().find(|(key, rows)| *key == id && *rows > 0) {
            return Err(Error::Conflict(format!(
                "master key {id} still wraps {rows} provider keys: run `tollgate vault rewrap` first"
            )));
        }
        keys.retire(MasterKeyId(id))?;
        self.keys.replace(keys);
        let event =
            AuditEvent::new(principal.actor(), "vault.retire_master_key", format!("master_key:{id}"), self.now());
        self.store.append_audit(&event).await?;
        Ok(())
    }

    /// The master keys and how many provider keys each wraps.
    pub async fn vault_status(&self, principal: &Principal) -> Result<VaultStatus> {
        authorize(principal, Operation::ReadVault)?;
        let keys = self.keys.reload()?;
        let counts = self.store.provider_keys_by_master_key().await?;
        let ids = keys.ids();
        Ok(VaultStatus {
            key_file: keys.path().display().to_string(),
            current: keys.current_id().0,
            master_keys: ids
                .iter()
                .map(|id| (id.0, counts.iter().find(|(key, _)| *key == id.0).map_or(0, |(_, rows)| *rows)))
                .collect(),
            missing: counts.iter().filter(|(key, _)| !ids.contains(&MasterKeyId(*key))).map(|(key, _)| *key).collect(),
        })
    }

    /// The key file as it is now (another process may have changed it).
    fn fresh_keys(&self) -> Result<MasterKeys> {
        let current = self.keys.keys();
        if current.path().as_os_str().is_empty() {
            return Err(Error::Config("the vault keys are held in memory only: there is no key file to change".into()));
        }
        MasterKeys::load(current.path())
    }

    async fn rewrap_all(&self, principal: &Principal, added: Option<MasterKeyId>) -> Result<u64> {
        let keys = self.keys.keys();
        let current = keys.current_id();
        let mut rewraps = Vec::new();
        for (id, sealed) in self.store.sealed_provider_keys().await? {
            if sealed.master_key_id == current.0 {
                continue;
            }
            let from = sealed.master_key_id;
            let rewrapped: SealedKey = keys.rewrap(&id.to_string(), &sealed.into())?.into();
            rewraps.push(Rewrap {
                id,
                from,
                wrapped_key: rewrapped.wrapped_key,
                master_key_id: rewrapped.master_key_id,
            });
        }
        let action = if added.is_some() { "vault.rotate_master_key" } else { "vault.rewrap" };
        let mut event = AuditEvent::new(principal.actor(), action, format!("master_key:{current}"), self.now());
        event.after = Some(serde_json::json!({ "current": current.0, "added": added.map(|id| id.0) }));
        Ok(self.store.rewrap_provider_keys(&rewraps, &event).await?)
    }
}

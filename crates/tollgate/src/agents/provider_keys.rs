//! Storing, reading, changing and deleting provider keys. Secrets are sealed before they reach
//! the store and are never decrypted here: lists show the masked form.

use tollgate_store::{NewSecret, Page, PageRequest, ProviderKeyFilter, ProviderKeyInsert, SealedKey};
use tollgate_types::{
    AuditEvent, NewProviderKey, Permission, Principal, ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord,
    ProviderSecret, ValidationError,
};

use super::{AgentService, hidden};
use crate::authz::{Operation, authorize};
use crate::vault::SealedSecret;
use crate::{Caller, Error, MasterKeyId, Result};

impl From<SealedSecret> for SealedKey {
    fn from(sealed: SealedSecret) -> Self {
        Self {
            ciphertext: sealed.ciphertext,
            nonce: sealed.nonce,
            wrapped_key: sealed.wrapped_key,
            master_key_id: sealed.master_key_id.0,
        }
    }
}

impl From<SealedKey> for SealedSecret {
    fn from(sealed: SealedKey) -> Self {
        Self {
            ciphertext: sealed.ciphertext,
            nonce: sealed.nonce,
            wrapped_key: sealed.wrapped_key,
            master_key_id: MasterKeyId(sealed.master_key_id),
        }
    }
}

fn snapshot(key: &ProviderKeyRecord) -> serde_json::Value {
    serde_json::to_value(key).unwrap_or(serde_json::Value::Null)
}

impl AgentService {
    /// Stores a new provider key for `key.owner` (a non-admin stores keys only for itself); it never
    /// touches another key. Bound to a project, the caller must be a member of it.
    pub async fn create_provider_key(
        &self,
        caller: &Caller,
        key: NewProviderKey,
        secret: ProviderSecret,
    ) -> Result<ProviderKeyRecord> {
        let principal = &caller.principal;
        key.check()?;
        if principal.level() != Permission::Admin && principal.owner_id() != Some(key.owner) {
            return Err(Error::Forbidden("you can store provider keys only for yourself".to_owned()));
        }
        authorize(principal, Operation::CreateProviderKey { owner: key.owner })?;
        let owner = self.store.owner(&key.owner).await.map_err(hidden("owner"))?;
        if let Some(project) = key.project {
            self.check_project_for_key(principal, project).await?;
        }
        let id = ProviderKeyId::generate();
        let sealed = self.keys.seal(&id.to_string(), secret.expose().as_bytes())?;
        let now = self.now();
        let insert = ProviderKeyInsert {
            id,
            owner_name: owner.name.to_owner(),
            masked: secret.masked(),
            sealed: sealed.into(),
            key,
            created_at: now,
        };
        let mut event = AuditEvent::new(principal.actor(), "provider_key.create", id, now);
        event.ip = caller.ip;
        event.after = Some(serde_json::json!({
            "provider": insert.key.provider,
            "owner": insert.key.owner,
            "project": insert.key.project,
            "masked": insert.masked,
        }));
        Ok(self.store.insert_provider_key(&insert, &event).await?)
    }

    /// One provider key's metadata (never its secret). Keys the principal may not read are `NotFound`.
    pub async fn provider_key(&self, principal: &Principal, id: &ProviderKeyId) -> Result<ProviderKeyRecord> {
        let key = self.store.provider_key(id).await.map_err(hidden("provider_key"))?;
        authorize(principal, Operation::ReadProviderKeys { owner: Some(key.owner) })
            .map_err(|_| Error::NotFound { entity: "provider_key" })?;
        Ok(key)
    }

    /// Lists provider keys (masked), newest first. Non-admins see their own.
    pub async fn list_provider_keys(
        &self,
        principal: &Principal,
        filter: &ProviderKeyFilter,
        page: &PageRequest,
    ) -> Result<Page<ProviderKeyRecord>> {
        let mut filter = filter.clone();
        if principal.level() != Permission::Admin {
            if filter.owner.is_some() && filter.owner != principal.owner_id() {
                authorize(principal, Operation::ReadProviderKeys { owner: filter.owner })?;
            }
            filter.owner = principal.owner_id();
        }
        authorize(principal, Operation::ReadProviderKeys { owner: filter.owner })?;
        Ok(self.store.list_provider_keys(&filter, page).await?)
    }

    /// Changes a provider key: notes, enabled, balance, base URL, project, metadata and, with
    /// `secret`, the secret itself (after a leak: rotate it at the provider, then store the new one).
    /// Disabling it stops its delivery at once; moving it to another project unassigns it from
    /// agents outside that project.
    pub async fn update_provider_key(
        &self,
        caller: &Caller,
        id: &ProviderKeyId,
        patch: &ProviderKeyPatch,
        secret: Option<ProviderSecret>,
    ) -> Result<ProviderKeyRecord> {
        if patch.is_empty() && secret.is_none() {
            return Err(ValidationError::new("patch", "names no field to change").into());
        }
        let principal = &caller.principal;
        let before = self.provider_key(principal, id).await?;
        authorize(principal, Operation::ManageProviderKey { owner: before.owner })?;
        if let Some(Some(project)) = patch.project {
            self.check_project_for_key(principal, project).await?;
            authorize(principal, Operation::AssignProviderKey { key_owner: before.owner, agent_owner: before.owner })?;
        }
        let base_url = patch.base_url.clone().unwrap_or_else(|| before.base_url.clone());
        tollgate_types::check_base_url(&before.provider, base_url.as_ref())?;
        let secret = match secret {
            Some(secret) => Some(NewSecret {
                masked: secret.masked(),
                sealed: self.keys.seal(&id.to_string(), secret.expose().as_bytes())?.into(),
            }),
            None => None,
        };
        let now = self.now();
        let action = match patch.enabled {
            Some(false) => "provider_key.disable",
            Some(true) => "provider_key.enable",
            None => "provider_key.update",
        };
        let mut event = AuditEvent::new(principal.actor(), action, id, now);
        event.ip = caller.ip;
        event.before = Some(snapshot(&before));
        event.after = Some(serde_json::json!({ "secret_replaced": secret.is_some() }));
        Ok(self.store.update_provider_key(id, patch, secret.as_ref(), now, &event).await?)
    }

    /// Deletes a provider key: its ciphertext is erased and every agent that had it loses it at once.
    pub async fn delete_provider_key(&self, caller: &Caller, id: &ProviderKeyId) -> Result<()> {
        let principal = &caller.principal;
        let before = self.provider_key(principal, id).await?;
        authorize(principal, Operation::ManageProviderKey { owner: before.owner })?;
        let now = self.now();
        let mut event = AuditEvent::new(principal.actor(), "provider_key.delete", id, now);
        event.ip = caller.ip;
        event.before = Some(snapshot(&before));
        self.store.delete_provider_key(id, now, &event).await?;
        Ok(())
    }

    /// A project a key may be bound to: one the principal belongs to (any, for an admin).
    async fn check_project_for_key(&self, principal: &Principal, project: tollgate_types::ProjectId) -> Result<()> {
        self.store.project(&project).await.map_err(hidden("project"))?;
        if principal.level() == Permission::Admin {
            return Ok(());
        }
        let member = match principal.owner_id() {
            Some(owner) => self.store.project_role(&project, &owner).await?,
            None => None,
        };
        if member != Some(tollgate_types::ProjectRole::Member) {
            return Err(Error::NotFound { entity: "project" });
        }
        Ok(())
    }
}

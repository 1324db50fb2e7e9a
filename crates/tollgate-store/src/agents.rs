//! Agents and the provider-key vault: agent rows, provider-key rows with their ciphertext, and the
//! one read the key delivery needs.
//!
//! Agent credentials are tokens ([`TokenInsert::agent`](crate::TokenInsert)): they live in the token
//! table and verify on the token path; the store keeps each credential's copy of its agent's status
//! current, as it keeps a token's owner role current.

use async_trait::async_trait;
use tollgate_types::{
    AgentId, AgentPatch, AgentRecord, AgentStatus, AuditEvent, NewAgent, NewProviderKey, OwnerId, OwnerName, ProjectId,
    ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord, ProviderName, Timestamp,
};

use crate::{Page, PageRequest, Result};

/// Everything needed to store a new agent.
#[derive(Debug, Clone)]
pub struct AgentInsert {
    /// The new id.
    pub id: AgentId,
    /// The validated request.
    pub agent: NewAgent,
    /// The owner's name, for display.
    pub owner_name: OwnerName,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Agent list filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Owner equals.
    pub owner: Option<OwnerId>,
    /// Project equals.
    pub project: Option<ProjectId>,
    /// Status equals.
    pub status: Option<AgentStatus>,
}

/// A provider key's secret as stored: AES-256-GCM ciphertext under a per-key data key, and that
/// data key wrapped by the vault master key `master_key_id`. Opaque to the store.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The secret, encrypted (with its tag).
    pub ciphertext: Vec<u8>,
    /// The secret's nonce.
    pub nonce: Vec<u8>,
    /// The data key, wrapped (its nonce first, its tag last).
    pub wrapped_key: Vec<u8>,
    /// Which master key wraps the data key.
    pub master_key_id: u32,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything needed to store a new provider key.
#[derive(Debug, Clone)]
pub struct ProviderKeyInsert {
    /// The new id (bound into the ciphertext: it must be the id the secret was sealed for).
    pub id: ProviderKeyId,
    /// The validated request.
    pub key: NewProviderKey,
    /// The owner's name, for display.
    pub owner_name: OwnerName,
    /// The masked secret shown in lists.
    pub masked: String,
    /// The encrypted secret.
    pub sealed: SealedKey,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A new secret for a stored provider key.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// Its masked form.
    pub masked: String,
    /// It, encrypted for the same row.
    pub sealed: SealedKey,
}

/// Provider-key list filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderKeyFilter {
    /// Owner equals.
    pub owner: Option<OwnerId>,
    /// Provider equals.
    pub provider: Option<ProviderName>,
    /// Project equals.
    pub project: Option<ProjectId>,
}

/// What a key delivery reads in one go: the agent and the enabled provider key assigned to it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The agent, as it is now.
    pub agent: AgentRecord,
    /// Its provider key.
    pub key: ProviderKeyRecord,
    /// The key's secret, encrypted.
    pub sealed: SealedKey,
}

/// A re-wrapped data key: `wrapped_key` under `master_key_id`, replacing the one under `from`.
#[derive(Debug, Clone)]
pub struct Rewrap {
    /// Which key.
    pub id: ProviderKeyId,
    /// The master key it was wrapped by when it was read: a row that has moved since is left alone.
    pub from: u32,
    /// The data key wrapped by the new master key.
    pub wrapped_key: Vec<u8>,
    /// The new master key.
    pub master_key_id: u32,
}

/// Agent storage. Every mutation writes its audit event in the same transaction.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new agent. `NotFound` (entity `owner`, `project` or `provider_key`) when one it
    /// names does not exist (a deleted key does not).
    async fn insert_agent(&self, insert: &AgentInsert, audit: &AuditEvent) -> Result<AgentRecord>;

    /// The agent with `id`, or `NotFound` (also once deleted).
    async fn agent(&self, id: &AgentId) -> Result<AgentRecord>;

    /// Agents newest first, one page at a time; deleted ones are not listed. The cursor is an id.
    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<AgentRecord>>;

    /// Changes an agent. `NotFound` when it does not exist or a provider key it names does not.
    async fn update_agent(
        &self,
        id: &AgentId,
        patch: &AgentPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord>;

    /// Sets an agent's status and, in the same transaction, the status its credentials carry.
    /// Setting the status it has changes nothing and writes nothing.
    async fn set_agent_status(
        &self,
        id: &AgentId,
        status: AgentStatus,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord>;

    /// Deletes an agent: it is no longer found or listed, and its live credentials are revoked in the
    /// same transaction (one `token.revoke` event each, after `audit`). Returns the revoked ids.
    async fn delete_agent(
        &self,
        id: &AgentId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<Vec<tollgate_types::TokenId>>;
}

/// Provider-key storage: metadata, ciphertext, assignment and re-wrapping.
#[async_trait]
pub trait ProviderKeyStore: Send + Sync {
    /// Stores a new provider key (never touches another). `NotFound` (entity `owner` or `project`)
    /// when one it names does not exist.
    async fn insert_provider_key(&self, insert: &ProviderKeyInsert, audit: &AuditEvent) -> Result<ProviderKeyRecord>;

    /// The provider key with `id`, without its secret; `NotFound` also once deleted.
    async fn provider_key(&self, id: &ProviderKeyId) -> Result<ProviderKeyRecord>;

    /// Provider keys newest first, without secrets; deleted ones are not listed.
    async fn list_provider_keys(
        &self,
        filter: &ProviderKeyFilter,
        page: &PageRequest,
    ) -> Result<Page<ProviderKeyRecord>>;

    /// Changes a provider key and, with `secret`, replaces its secret. Moving it to another project
    /// unassigns it, in the same transaction, from agents outside that project.
    async fn update_provider_key(
        &self,
        id: &ProviderKeyId,
        patch: &ProviderKeyPatch,
        secret: Option<&NewSecret>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<ProviderKeyRecord>;

    /// Deletes a provider key: its ciphertext is erased, it is unassigned from every agent, and it is
    /// no longer found or listed, all in one transaction. Returns the agents that lost it.
    async fn delete_provider_key(&self, id: &ProviderKeyId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<AgentId>>;

    /// The agent (not deleted) and the enabled, not deleted provider key assigned to it, read together;
    /// `None` when the agent has no such key. `NotFound` when the agent does not exist.
    async fn delivery(&self, agent: &AgentId) -> Result<Option<Delivery>>;

    /// Every stored (not deleted) ciphertext, for re-wrapping under a new master key.
    async fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKeyId, SealedKey)>>;

    /// Replaces wrapped data keys in one transaction; a row whose master key is no longer `from` is
    /// left alone. Returns how many rows changed. Writes `audit` with the count.
    async fn rewrap_provider_keys(&self, rewraps: &[Rewrap], audit: &AuditEvent) -> Result<u64>;

    /// How many stored ciphertexts each master key wraps, by master key id.
    async fn provider_keys_by_master_key(&self) -> Result<Vec<(u32, u64)>>;
}

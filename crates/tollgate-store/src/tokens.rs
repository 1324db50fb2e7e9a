//! Token storage: insert, look up by hash, list, revoke, rotate, update, touch and clean up.

use async_trait::async_trait;
use tollgate_types::{
    AgentBinding, AgentId, AgentStatus, AuditEvent, Imposed, KeyId, NewToken, OwnerId, OwnerName, ProjectId,
    ProjectName, Role, Timestamp, TokenHash, TokenId, TokenPatch, TokenRecord,
};

use crate::{Page, PageRequest, Result};

/// Everything needed to store a new token. The secret itself never reaches storage.
#[derive(Debug, Clone)]
pub struct TokenInsert {
    /// The new id.
    pub id: TokenId,
    /// The validated request.
    pub token: NewToken,
    /// The owner's name, for display.
    pub owner_name: OwnerName,
    /// The owning user's role now (`None` for a service account); the store refuses a wrong one.
    pub owner_role: Option<Role>,
    /// The project's name, for display.
    pub project_name: Option<ProjectName>,
    /// Which constraints an admin imposed on the owner.
    pub imposed: Imposed,
    /// HMAC of the secret.
    pub hash: TokenHash,
    /// Which key made the hash.
    pub key_id: KeyId,
    /// Non-secret hint of the secret.
    pub display_hint: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// For an agent credential: the agent it authenticates (the store refuses a deleted or disabled
    /// agent, and copies the agent's status onto the credential). `None` for an API token.
    pub agent: Option<AgentId>,
}

impl TokenInsert {
    /// The record this insert stores, as a read would return it right after (for a credential, of
    /// an agent whose status is `agent_status`).
    pub fn record(&self, agent_status: AgentStatus) -> TokenRecord {
        let token = &self.token;
        TokenRecord {
            id: self.id,
            name: token.name.clone(),
            owner: token.owner,
            owner_name: self.owner_name.clone(),
            owner_role: self.owner_role,
            project: token.project,
            project_name: self.project_name.clone(),
            permission: token.permission,
            scopes: token.scopes.clone(),
            allowed_tools: token.allowed_tools.clone(),
            ip_allow: token.ip_allow.clone(),
            expires_at: token.expires_at,
            description: token.description.clone(),
            imposed: self.imposed,
            display_hint: self.display_hint.clone(),
            key_id: self.key_id,
            created_at: self.created_at,
            updated_at: self.created_at,
            last_used_at: None,
            revoked_at: None,
            revoke_reason: None,
            rotated_at: None,
            previous_valid_until: None,
            agent: self.agent.map(|id| AgentBinding { id, status: agent_status }),
        }
    }
}

/// A new secret for an existing token.
#[derive(Debug, Clone)]
pub struct SecretRotation {
    /// Which token.
    pub id: TokenId,
    /// HMAC of the new secret.
    pub hash: TokenHash,
    /// Which key made it.
    pub key_id: KeyId,
    /// Hint of the new secret.
    pub display_hint: String,
    /// Until when the old secret keeps working (`None` or a past time: not at all).
    pub previous_valid_until: Option<Timestamp>,
    /// When.
    pub at: Timestamp,
}

/// Which of a token's secrets a presented hash matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMatch {
    /// The current secret.
    Current,
    /// The secret before the last rotation (valid until `previous_valid_until`).
    Previous,
}

/// A token found by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    /// Its metadata.
    pub record: TokenRecord,
    /// Which secret matched.
    pub matched: HashMatch,
}

/// Which tokens a list shows, by status at the time of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusFilter {
    /// Not revoked and not expired.
    #[default]
    Active,
    /// Revoked.
    Revoked,
    /// Not revoked but past expiry.
    Expired,
    /// All.
    All,
}

/// List filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Owner equals.
    pub owner: Option<OwnerId>,
    /// Project equals.
    pub project: Option<ProjectId>,
    /// Status at `now`.
    pub status: StatusFilter,
    /// `None`: API tokens only; `Some(agent)`: that agent's credentials only.
    pub agent: Option<AgentId>,
}

/// Token storage. Every mutation writes its audit event in the same transaction.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token. `Conflict` when the id or the hash already exists, when the owner does
    /// not exist or is not active (or `owner_role` is not its role), or when a project is named that
    /// does not exist or the owner is not a member of with the member role. (The facade resolves
    /// owners and projects first and answers those cases with `NotFound`; the store keeps them true
    /// for any writer.)
    async fn insert_token(&self, insert: &TokenInsert, audit: &AuditEvent) -> Result<TokenRecord>;

    /// Finds the token whose current secret, or previous secret still within its grace period at `now`,
    /// hashes to `hash`. `None` when there is none.
    async fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>>;

    /// The token with `id`, or `NotFound`.
    async fn token(&self, id: &TokenId) -> Result<TokenRecord>;

    /// Tokens matching `filter` at `now`, newest first, one page at a time. The cursor is a token id.
    async fn list_tokens(&self, filter: &TokenFilter, page: &PageRequest, now: Timestamp) -> Result<Page<TokenRecord>>;

    /// Revokes a token. Idempotent: revoking a revoked token changes nothing, writes no audit
    /// event and returns it as it is. `NotFound` when it does not exist.
    async fn revoke_token(&self, id: &TokenId, reason: Option<&str>, audit: &AuditEvent) -> Result<TokenRecord>;

    /// Replaces a token's secret atomically; the old secret moves to the grace slot (replacing any
    /// older one). `Conflict` when the token is revoked, `NotFound` when it does not exist.
    async fn rotate_token(&self, rotation: &SecretRotation, audit: &AuditEvent) -> Result<TokenRecord>;

    /// Changes metadata (and adds `patch.impose` to what is imposed). `NotFound` when the token does
    /// not exist, `Conflict` when it is revoked.
    async fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<TokenRecord>;

    /// Records successful uses (batched by the caller). Unknown ids are ignored; a time never moves backwards.
    async fn touch_tokens(&self, uses: &[(TokenId, Timestamp)]) -> Result<()>;

    /// Deletes tokens revoked before `cutoff` or expired before `cutoff`; returns how many.
    async fn delete_inactive_tokens(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64>;
}

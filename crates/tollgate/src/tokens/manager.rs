//! [`TokenManager`]: the token lifecycle over any [`Store`], with authorization and audit.

use std::sync::Arc;
use std::time::Duration;

use tollgate_store::{Page, PageRequest, SecretRotation, Store, TokenFilter, TokenInsert};
use tollgate_types::{
    AuditEvent, Clock, NewToken, Permission, Principal, SystemClock, Timestamp, TokenHasher, TokenId, TokenPatch,
    TokenPrefix, TokenRecord, TokenSecret, ValidationError,
};

use super::cache::{CacheStats, VerifyCache};
use super::last_used::LastUsed;
use crate::authz::{Operation, authorize};
use crate::{Error, Metering, Result};

/// A token just created or rotated: the secret (show it once, then drop it) and its metadata.
#[derive(Debug)]
pub struct CreatedToken {
    /// The plaintext token. Redacted in `Debug`; zeroized on drop.
    pub secret: TokenSecret,
    /// What was stored.
    pub record: TokenRecord,
}

/// Builds a [`TokenManager`]; every setting has a production default.
#[derive(Debug)]
pub struct TokenManagerBuilder {
    store: Arc<dyn Store>,
    hasher: TokenHasher,
    prefix: TokenPrefix,
    agent_prefix: TokenPrefix,
    clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    cache_capacity: usize,
    metering: Option<Metering>,
}

impl TokenManagerBuilder {
    /// The token prefix (default `tg`).
    pub fn prefix(mut self, prefix: TokenPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// The prefix of agent credentials (default `tga`). Credentials and API tokens never verify in
    /// each other's place: a credential is refused wherever an API token is expected, and back.
    pub fn agent_prefix(mut self, prefix: TokenPrefix) -> Self {
        self.agent_prefix = prefix;
        self
    }

    /// The clock (default: the system clock). Tests pass a [`ManualClock`](tollgate_types::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a verified token is served from memory (default 2 s; zero disables the cache).
    /// A revoke in this process evicts at once; a revoke by another process is seen within this time.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How many verified tokens the cache holds at most (default 100,000).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity.max(1);
        self
    }

    /// Enforce the quotas (and rate limits) of `metering` in `verify`; without it, verify checks
    /// identity only. `flush` then also flushes metering.
    pub fn metering(mut self, metering: Metering) -> Self {
        self.metering = Some(metering);
        self
    }

    /// The manager.
    pub fn build(self) -> TokenManager {
        TokenManager {
            store: self.store,
            hasher: Arc::new(self.hasher),
            prefix: self.prefix,
            agent_prefix: self.agent_prefix,
            clock: self.clock,
            cache: Arc::new(VerifyCache::new(self.cache_ttl, self.cache_capacity)),
            last_used: Arc::new(LastUsed::default()),
            metering: self.metering,
        }
    }
}

/// Issues, verifies and governs API tokens. Cheap to clone (shared state behind `Arc`s).
#[derive(Debug, Clone)]
pub struct TokenManager {
    pub(super) store: Arc<dyn Store>,
    pub(crate) hasher: Arc<TokenHasher>,
    pub(super) prefix: TokenPrefix,
    pub(super) agent_prefix: TokenPrefix,
    pub(super) clock: Arc<dyn Clock>,
    pub(crate) cache: Arc<VerifyCache>,
    pub(super) last_used: Arc<LastUsed>,
    pub(super) metering: Option<Metering>,
}

/// Which kind of token an operation is about: the token routes manage API tokens, the agent
/// routes manage credentials, and neither reaches the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An API token.
    ApiToken,
    /// An agent credential.
    Credential,
}

/// Checks a free-text reason (revocations, suspensions): at most 1024 characters, no control characters.
pub(crate) fn check_reason(reason: Option<&str>) -> Result<()> {
    if let Some(reason) = reason {
        if reason.chars().count() > 1024 {
            return Err(ValidationError::new("reason", "must be at most 1024 characters").into());
        }
        if reason.chars().any(char::is_control) {
            return Err(ValidationError::new("reason", "must not contain control characters (including NUL)").into());
        }
    }
    Ok(())
}

fn snapshot(record: &TokenRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

impl TokenManager {
    /// Starts building a manager over `store`, hashing with `hasher`.
    pub fn builder(store: Arc<dyn Store>, hasher: TokenHasher) -> TokenManagerBuilder {
        TokenManagerBuilder {
            store,
            hasher,
            prefix: TokenPrefix::default(),
            agent_prefix: TokenPrefix::parse("tga").expect("the default agent prefix is valid"),
            clock: Arc::new(SystemClock),
            cache_ttl: Duration::from_secs(2),
            cache_capacity: 100_000,
            metering: None,
        }
    }

    /// The metering whose quotas `verify` enforces, when one is attached.
    pub fn metering(&self) -> Option<&Metering> {
        self.metering.as_ref()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The token prefix.
    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    /// The agent-credential prefix.
    pub fn agent_prefix(&self) -> &TokenPrefix {
        &self.agent_prefix
    }

    /// Creates a token for `token.owner` (a non-admin can create tokens only for itself; see
    /// [`TokenManager::resolve_owner`]). The returned secret is the only copy: show it once.
    #[tracing::instrument(skip_all, fields(owner = %token.owner, permission = %token.permission))]
    pub async fn create(&self, principal: &Principal, token: NewToken) -> Result<CreatedToken> {
        let now = self.clock.now();
        if token.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        let placement = self.place(principal, &token).await?;
        let secret = TokenSecret::generate(&self.prefix)
            .map_err(|error| Error::Config(format!("cannot generate a token: {error}")))?;
        let insert = TokenInsert {
            id: TokenId::generate(),
            owner_name: placement.owner.name.to_owner(),
            owner_role: placement.owner.role,
            project_name: placement.project.map(|project| project.name),
            imposed: placement.imposed,
            token,
            hash: self.hasher.hash(&secret),
            key_id: self.hasher.current_key_id(),
            display_hint: secret.display_hint(),
            created_at: now,
            agent: None,
        };
        let record = self.store.insert_token(&insert, &creation_event(principal, &insert)).await?;
        tracing::info!(token_id = %record.id, "token created");
        Ok(CreatedToken { secret, record })
    }

    /// One API token's metadata. Tokens the principal may not read are `NotFound`, and so are
    /// agent credentials (they are managed through their agent).
    pub async fn show(&self, principal: &Principal, id: &TokenId) -> Result<TokenRecord> {
        self.show_kind(principal, id, Kind::ApiToken).await
    }

    async fn show_kind(&self, principal: &Principal, id: &TokenId, kind: Kind) -> Result<TokenRecord> {
        let record = self.store.token(id).await?;
        authorize(principal, Operation::ReadTokens { owner: Some(record.owner) })
            .map_err(|_| Error::NotFound { entity: "token" })?;
        if record.agent.is_some() != (kind == Kind::Credential) {
            return Err(Error::NotFound { entity: "token" });
        }
        Ok(record)
    }

    /// Lists tokens, newest first. A principal that may not read everybody's tokens sees its own.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>> {
        let mut filter = filter.clone();
        if principal.level() != Permission::Admin {
            let own = principal.owner_id();
            if filter.owner.is_some() && filter.owner != own {
                authorize(principal, Operation::ReadTokens { owner: filter.owner })?;
            }
            filter.owner = own;
        }
        authorize(principal, Operation::ReadTokens { owner: filter.owner })?;
        Ok(self.store.list_tokens(&filter, page, self.clock.now()).await?)
    }

    /// Fetches a token of `kind` for a change and checks the principal may manage it.
    async fn token_to_manage(&self, principal: &Principal, id: &TokenId, kind: Kind) -> Result<TokenRecord> {
        let record = self.show_kind(principal, id, kind).await?;
        authorize(principal, Operation::ManageToken { owner: record.owner })?;
        Ok(record)
    }

    /// Changes a token's name, description, allowed tools, IP allow-list or expiry. A constraint an
    /// admin imposed can be changed by anyone else only to a tighter one.
    #[tracing::instrument(skip_all, fields(token_id = %id))]
    pub async fn update(&self, principal: &Principal, id: &TokenId, patch: &TokenPatch) -> Result<TokenRecord> {
        if patch.is_empty() {
            return Err(ValidationError::new("patch", "names no field to change").into());
        }
        let before = self.token_to_manage(principal, id, Kind::ApiToken).await?;
        let now = self.clock.now();
        if let Some(Some(expiry)) = patch.expires_at
            && expiry <= now
        {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        let patch = TokenPatch { impose: self.check_constraints(principal, &before, patch, now)?, ..patch.clone() };
        let mut event = AuditEvent::new(principal.actor(), "token.update", id, now);
        event.before = Some(snapshot(&before));
        let record = self.store.update_token(id, &patch, now, &event).await?;
        self.cache.evict(id);
        Ok(record)
    }

    /// Revokes a token; it is refused on the very next verify in this process. Idempotent.
    pub async fn revoke(&self, principal: &Principal, id: &TokenId, reason: Option<&str>) -> Result<TokenRecord> {
        self.revoke_kind(principal, id, reason, Kind::ApiToken).await
    }

    #[tracing::instrument(skip_all, fields(token_id = %id))]
    pub(crate) async fn revoke_kind(
        &self,
        principal: &Principal,
        id: &TokenId,
        reason: Option<&str>,
        kind: Kind,
    ) -> Result<TokenRecord> {
        check_reason(reason)?;
        let before = self.token_to_manage(principal, id, kind).await?;
        let now = self.clock.now();
        let mut event = AuditEvent::new(principal.actor(), "token.revoke", id, now);
        event.reason = reason.map(str::to_owned);
        event.before = Some(snapshot(&before));
        // Evict before and after: the eviction after the write drops any lookup that read the old row
        // (see the cache's epoch), and every lookup after it reads the committed revocation.
        self.cache.evict(id);
        let record = self.store.revoke_token(id, reason, &event).await;
        self.cache.evict(id);
        Ok(record?)
    }

    /// Issues a new secret for the same token id. The old secret keeps working for `grace`
    /// (never past the token's own expiry); a zero grace ends it at once.
    pub async fn rotate(&self, principal: &Principal, id: &TokenId, grace: Duration) -> Result<CreatedToken> {
        self.rotate_kind(principal, id, grace, Kind::ApiToken).await
    }

    #[tracing::instrument(skip_all, fields(token_id = %id))]
    pub(crate) async fn rotate_kind(
        &self,
        principal: &Principal,
        id: &TokenId,
        grace: Duration,
        kind: Kind,
    ) -> Result<CreatedToken> {
        let before = self.token_to_manage(principal, id, kind).await?;
        let now = self.clock.now();
        if before.status(now) != tollgate_types::TokenStatus::Active {
            return Err(Error::Conflict(format!("token is {}", before.status(now).as_str())));
        }
        let prefix = if before.agent.is_some() { &self.agent_prefix } else { &self.prefix };
        let secret = TokenSecret::generate(prefix)
            .map_err(|error| Error::Config(format!("cannot generate a token: {error}")))?;
        let mut grace_until = now.saturating_add(grace);
        if let Some(expiry) = before.expires_at {
            grace_until = grace_until.min(expiry);
        }
        let rotation = SecretRotation {
            id: *id,
            hash: self.hasher.hash(&secret),
            key_id: self.hasher.current_key_id(),
            display_hint: secret.display_hint(),
            previous_valid_until: (grace_until > now).then_some(grace_until),
            at: now,
        };
        let mut event = AuditEvent::new(principal.actor(), "token.rotate", id, now);
        event.before = Some(snapshot(&before));
        event.after = Some(serde_json::json!({ "previous_valid_until": rotation.previous_valid_until }));
        self.cache.evict(id);
        let record = self.store.rotate_token(&rotation, &event).await;
        self.cache.evict(id);
        Ok(CreatedToken { secret, record: record? })
    }

    /// Deletes tokens revoked or expired more than `older_than` ago; returns how many.
    /// Irreversible: an age under [`MIN_DELETE_AGE`](crate::MIN_DELETE_AGE) is refused unless
    /// `force` is set.
    pub async fn cleanup(&self, principal: &Principal, older_than: Duration, force: bool) -> Result<u64> {
        authorize(principal, Operation::CleanupTokens)?;
        crate::check_delete_age(older_than, force)?;
        let now = self.clock.now();
        let event = AuditEvent::new(principal.actor(), "token.cleanup", "tokens", now);
        Ok(self.store.delete_inactive_tokens(now.saturating_sub(older_than), &event).await?)
    }

    /// Writes pending `last_used_at` times, and flushes the attached metering (queued usage and
    /// quota counters). Call on an interval and before shutdown.
    pub async fn flush(&self) -> Result<()> {
        let uses = self.last_used.take();
        if let Err(error) = self.store.touch_tokens(&uses).await {
            self.last_used.restore(uses);
            return Err(error.into());
        }
        if let Some(metering) = &self.metering {
            metering.flush().await?;
        }
        Ok(())
    }

    /// Applies pending schema migrations to the store; returns how many ran and the schema version after.
    pub async fn store_migrations(&self) -> Result<(usize, i64)> {
        let applied = self.store.migrate().await?;
        Ok((applied, self.store.schema_version().await?))
    }

    /// Forgets every cached verify result (after changes that affect many tokens, such as suspending a user).
    pub fn invalidate_cache(&self) {
        self.cache.clear();
    }

    /// How many verified tokens are cached now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Verify-cache hits, misses and entries, for metrics.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// The audit event of a creation: what was asked for, never the secret or its hash.
fn creation_event(principal: &Principal, insert: &TokenInsert) -> AuditEvent {
    let token = &insert.token;
    let mut event = AuditEvent::new(principal.actor(), "token.create", insert.id, insert.created_at);
    event.after = Some(serde_json::json!({
        "name": token.name,
        "owner": token.owner,
        "owner_name": insert.owner_name,
        "project": token.project,
        "imposed": insert.imposed,
        "permission": token.permission,
        "scopes": token.scopes,
        "allowed_tools": token.allowed_tools,
        "ip_allow": token.ip_allow,
        "expires_at": token.expires_at,
        "display_hint": insert.display_hint,
    }));
    event
}

//! [`UserService`]: users over any [`Store`], with authorization and audit, and its builder.
//! Login and sessions are in `login.rs` and `sessions/`; this file holds the account lifecycle.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate_store::{Page, PageRequest, PasswordChange, StatusChange, Store, StoreError, UserFilter, UserInsert};
use tollgate_types::{
    AuditEvent, Clock, NewUser, Password, Principal, Role, TokenHasher, TokenPrefix, UserId, UserRecord, UserStatus,
    Username, ValidationError,
};

use super::failures::FailureDigest;
use super::passwords::{DEFAULT_COST, MIN_COST, Passwords};
use super::throttle::{IpThrottle, IpThrottlePolicy, LockoutPolicy};
use crate::authz::{Operation, authorize};
use crate::sessions::{JwtCodec, JwtKeys};
use crate::{Caller, Error, Result, TokenManager};

/// Builds a [`UserService`]; every setting has a production default.
#[derive(Debug)]
pub struct UserServiceBuilder {
    tokens: TokenManager,
    jwt_keys: JwtKeys,
    refresh_hasher: TokenHasher,
    clock: Arc<dyn Clock>,
    bcrypt_cost: u32,
    min_bcrypt_cost: u32,
    lockout: LockoutPolicy,
    ip_throttle: IpThrottlePolicy,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    leeway: Duration,
}

impl UserServiceBuilder {
    /// The clock (default: the token manager's). Tests pass a [`ManualClock`](tollgate_types::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The bcrypt cost for new hashes (default 12; [`build`](Self::build) refuses less than 10).
    pub fn bcrypt_cost(mut self, cost: u32) -> Self {
        self.bcrypt_cost = cost;
        self
    }

    /// A bcrypt cost as low as 4, for tests only: it makes passwords cheap to guess.
    pub fn insecure_bcrypt_cost_for_tests(mut self, cost: u32) -> Self {
        self.bcrypt_cost = cost;
        self.min_bcrypt_cost = 4;
        self
    }

    /// Account lockout (default: 5 failures lock for 15 minutes).
    pub fn lockout(mut self, policy: LockoutPolicy) -> Self {
        self.lockout = policy;
        self
    }

    /// Per-client-address failure limit (default: 20 failures per 15 minutes).
    pub fn ip_throttle(mut self, policy: IpThrottlePolicy) -> Self {
        self.ip_throttle = policy;
        self
    }

    /// The `iss` of access tokens (default `tollgate`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` of access tokens (default `tollgate-api`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Access-token lifetime (default 15 minutes).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 7 days); each refresh starts a new one.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Clock difference tolerated on access-token `exp`/`nbf` between servers (default 0).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The service. `Config` when the bcrypt cost is out of range or a lifetime is zero.
    pub fn build(self) -> Result<UserService> {
        if !(self.min_bcrypt_cost..=31).contains(&self.bcrypt_cost) {
            return Err(Error::Config(format!(
                "bcrypt cost {} is out of range ({}..=31)",
                self.bcrypt_cost, self.min_bcrypt_cost
            )));
        }
        if self.access_ttl.is_zero() || self.refresh_ttl.is_zero() {
            return Err(Error::Config("token lifetimes must be longer than zero".to_owned()));
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(Error::Config("jwt issuer and audience must not be empty".to_owned()));
        }
        let jwt = JwtCodec::new(self.jwt_keys, &self.issuer, &self.audience, self.access_ttl, self.leeway);
        let store = Arc::clone(self.tokens.store());
        Ok(UserService {
            inner: Arc::new(Inner {
                store: Arc::clone(&store),
                tokens: self.tokens,
                clock: self.clock,
                passwords: Passwords::new(self.bcrypt_cost),
                lockout: LockoutPolicy { max_failures: self.lockout.max_failures.max(1), ..self.lockout },
                throttle: IpThrottle::new(self.ip_throttle, Arc::clone(&store)),
                failures: FailureDigest::default(),
                jwt,
                refresh_hasher: self.refresh_hasher,
                refresh_prefix: TokenPrefix::parse("tgr").expect("a valid literal prefix"),
                refresh_ttl: self.refresh_ttl,
            }),
        })
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) tokens: TokenManager,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: Passwords,
    pub(crate) lockout: LockoutPolicy,
    pub(crate) throttle: IpThrottle,
    pub(crate) failures: FailureDigest,
    pub(crate) jwt: JwtCodec,
    pub(crate) refresh_hasher: TokenHasher,
    pub(crate) refresh_prefix: TokenPrefix,
    pub(crate) refresh_ttl: Duration,
}

/// Users, passwords, logins and sessions. Cheap to clone (shared state behind an `Arc`).
///
/// Mutations take a [`Caller`] (principal and client address, both audited); reads take a [`Principal`].
#[derive(Debug, Clone)]
pub struct UserService {
    pub(crate) inner: Arc<Inner>,
}

/// Checks a free-text reason: at most 1024 characters, no control characters.
pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.chars().count() > 1024 {
        return Err(ValidationError::new("reason", "must be at most 1024 characters").into());
    }
    if reason.chars().any(char::is_control) {
        return Err(ValidationError::new("reason", "must not contain control characters (including NUL)").into());
    }
    Ok(())
}

fn check_search(search: &str) -> Result<()> {
    if search.is_empty() || search.chars().count() > 64 {
        return Err(ValidationError::new("search", "must be 1 to 64 characters").into());
    }
    if search.chars().any(char::is_control) {
        return Err(ValidationError::new("search", "must not contain control characters").into());
    }
    Ok(())
}

impl UserService {
    /// Starts building a service next to `tokens` (sharing its store and clock, and evicting its verify
    /// cache when users are suspended). `jwt_keys` sign access tokens; `refresh_hasher` hashes refresh
    /// tokens (use the same server key as API tokens, e.g. `key_file.hasher()`).
    pub fn builder(tokens: &TokenManager, jwt_keys: JwtKeys, refresh_hasher: TokenHasher) -> UserServiceBuilder {
        UserServiceBuilder {
            clock: Arc::clone(tokens.clock()),
            tokens: tokens.clone(),
            jwt_keys,
            refresh_hasher,
            bcrypt_cost: DEFAULT_COST,
            min_bcrypt_cost: MIN_COST,
            lockout: LockoutPolicy::default(),
            ip_throttle: IpThrottlePolicy::default(),
            issuer: "tollgate".to_owned(),
            audience: "tollgate-api".to_owned(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            leeway: Duration::ZERO,
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The access-token codec (pure signature and claims checks, no store access).
    pub fn jwt(&self) -> &JwtCodec {
        &self.inner.jwt
    }

    /// The bcrypt cost of new hashes.
    pub fn bcrypt_cost(&self) -> u32 {
        self.inner.passwords.cost()
    }

    /// How many bcrypt verifications have run (a metric; also lets tests prove that every login path pays for one).
    pub fn password_verifications(&self) -> u64 {
        self.inner.passwords.verifications()
    }

    /// bcrypt work done by password checks, in rounds (`2^cost` per run): every login costs the
    /// configured cost's, whatever cost the stored hash was made at (a metric; tests prove it).
    pub fn password_work(&self) -> u64 {
        self.inner.passwords.work()
    }

    /// How many passwords have been hashed.
    pub fn password_hashes(&self) -> u64 {
        self.inner.passwords.hashes()
    }

    /// The cost of the dummy hash unknown usernames are checked against, once it exists.
    pub fn dummy_hash_cost(&self) -> Option<u32> {
        self.inner.passwords.dummy_cost()
    }

    /// Prepares what the first login needs (the dummy hash). Call at startup; login calls it too.
    pub async fn warm_up(&self) -> Result<()> {
        self.inner.passwords.warm_up().await
    }

    pub(super) fn event(&self, caller: &Caller, action: &str, target: UserId) -> AuditEvent {
        let mut event = AuditEvent::new(caller.principal.actor(), action, target, self.inner.clock.now());
        event.ip = caller.ip;
        event
    }

    /// Creates a user. The password is hashed with bcrypt on the blocking pool.
    #[tracing::instrument(skip_all, fields(username = %user.username, role = %user.role))]
    pub async fn create(&self, caller: &Caller, user: NewUser, password: Password) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::CreateUser { role: user.role })?;
        let password_hash = self.inner.passwords.hash(&password).await?;
        let id = UserId::generate();
        let mut event = self.event(caller, "user.create", id);
        event.after = Some(json!({
            "username": user.username,
            "email": user.email,
            "role": user.role,
            "must_change_password": user.must_change_password,
        }));
        let insert = UserInsert { id, user, password_hash, created_at: event.at };
        let record = self.inner.store.insert_user(&insert, &event).await?;
        tracing::info!(user_id = %record.id, "user created");
        Ok(record)
    }

    /// One user. Users the principal may not read are `NotFound`.
    pub async fn show(&self, principal: &Principal, id: &UserId) -> Result<UserRecord> {
        authorize(principal, Operation::ReadUsers { user: Some(*id) })
            .map_err(|_| Error::NotFound { entity: "user" })?;
        Ok(self.inner.store.user(id).await?)
    }

    /// One user by username. Users the principal may not read are `NotFound`.
    pub async fn find(&self, principal: &Principal, username: &Username) -> Result<UserRecord> {
        let found = self.inner.store.user_credentials(username).await?.ok_or(Error::NotFound { entity: "user" })?;
        authorize(principal, Operation::ReadUsers { user: Some(found.record.id) })
            .map_err(|_| Error::NotFound { entity: "user" })?;
        Ok(found.record)
    }

    /// Lists users, newest first (admins only).
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<UserRecord>> {
        authorize(principal, Operation::ReadUsers { user: None })?;
        if let Some(search) = &filter.search {
            check_search(search)?;
        }
        Ok(self.inner.store.list_users(filter, page).await?)
    }

    async fn change_status(
        &self,
        caller: &Caller,
        id: &UserId,
        status: UserStatus,
        reason: Option<&str>,
    ) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::ChangeUserStatus { user: *id, status })?;
        if let Some(reason) = reason {
            check_reason(reason)?;
        }
        let before = self.inner.store.user(id).await?;
        let action = match status {
            UserStatus::Active => "user.activate",
            UserStatus::Suspended => "user.suspend",
            UserStatus::Deleted => "user.delete",
        };
        let mut event = self.event(caller, action, *id);
        event.before = Some(json!({ "status": before.status }));
        event.after = Some(json!({ "status": status }));
        event.reason = reason.map(str::to_owned);
        let change = StatusChange { id: *id, status, reason: reason.map(str::to_owned), at: event.at };
        // Evict before and after: a verify racing the write cannot keep a stale positive for long,
        // and the store refuses the revoked tokens from the moment the transaction commits.
        self.inner.tokens.invalidate_cache();
        let changed = self.inner.store.set_user_status(&change, &event).await;
        self.inner.tokens.invalidate_cache();
        let changed = changed?;
        tracing::info!(
            user_id = %id,
            status = %status,
            tokens_revoked = changed.revoked_tokens.len(),
            sessions_revoked = changed.revoked_sessions,
            "user status changed"
        );
        Ok(changed.record)
    }

    /// Suspends a user, for a reason: their sessions and API tokens are revoked in the same transaction.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn suspend(&self, caller: &Caller, id: &UserId, reason: &str) -> Result<UserRecord> {
        if reason.trim().is_empty() {
            return Err(ValidationError::new("reason", "must say why the user is suspended").into());
        }
        self.change_status(caller, id, UserStatus::Suspended, Some(reason)).await
    }

    /// Activates a suspended user. Tokens revoked by the suspension stay revoked.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn activate(&self, caller: &Caller, id: &UserId) -> Result<UserRecord> {
        self.change_status(caller, id, UserStatus::Active, None).await
    }

    /// Soft-deletes a user: kept for the audit trail, never usable again; sessions and tokens revoked.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn delete(&self, caller: &Caller, id: &UserId, reason: Option<&str>) -> Result<UserRecord> {
        self.change_status(caller, id, UserStatus::Deleted, reason).await
    }

    /// Changes a user's role. Their sessions and tokens act with the new role from the next request.
    #[tracing::instrument(skip_all, fields(user_id = %id, role = %role))]
    pub async fn set_role(&self, caller: &Caller, id: &UserId, role: Role) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::ChangeUserRole { user: *id, role })?;
        let before = self.inner.store.user(id).await?;
        let mut event = self.event(caller, "user.set_role", *id);
        event.before = Some(json!({ "role": before.role }));
        event.after = Some(json!({ "role": role }));
        // The store moves the user's tokens to the new role in the same transaction; cached verifies
        // of them go, so the next request acts with the new role.
        let changed = self.inner.store.set_user_role(id, role, event.at, &event).await;
        self.inner.tokens.invalidate_cache();
        Ok(changed?)
    }

    /// Sets a new password for a user (an admin reset), optionally forcing a change at the next login.
    /// The user's sessions are revoked.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn reset_password(
        &self,
        caller: &Caller,
        id: &UserId,
        password: Password,
        must_change_password: bool,
    ) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::ResetPassword { user: *id })?;
        self.inner.store.user(id).await?;
        let password_hash = self.inner.passwords.hash(&password).await?;
        let mut event = self.event(caller, "user.reset_password", *id);
        event.after = Some(json!({ "must_change_password": must_change_password }));
        let change = PasswordChange { id: *id, password_hash, must_change_password, at: event.at };
        Ok(self.inner.store.set_password(&change, &event).await?)
    }

    /// Clears a user's failed logins and lock.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn unlock(&self, caller: &Caller, id: &UserId) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::UnlockUser { user: *id })?;
        let before = self.inner.store.user(id).await?;
        let mut event = self.event(caller, "user.unlock", *id);
        event.before = Some(json!({ "failed_logins": before.failed_logins, "locked_until": before.locked_until }));
        Ok(self.inner.store.unlock_user(id, event.at, &event).await?)
    }
}

/// Maps a store conflict on a login-time write to the one login refusal.
pub(crate) fn conflict_is_refusal(error: StoreError, refusal: tollgate_types::RefusalCode) -> Error {
    match error {
        StoreError::Conflict(_) => Error::Refused(refusal.into()),
        other => other.into(),
    }
}

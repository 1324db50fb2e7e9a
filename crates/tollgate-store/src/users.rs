//! User storage: accounts, their status and role, password hashes and failed-login counting.
//!
//! Invariants every backend keeps inside its transactions (the conformance suite checks each):
//! usernames and emails are unique case-insensitively (they are stored lowercase), the last active
//! admin can be neither demoted, suspended nor deleted, a deleted user stays deleted, and taking a
//! user out of `active` revokes their sessions and API tokens in the same transaction.

use std::time::Duration;

use async_trait::async_trait;
use tollgate_types::{
    AuditEvent, Email, NewUser, PasswordHash, Role, Timestamp, TokenId, UserId, UserRecord, UserStatus, Username,
};

use crate::{Page, PageRequest, Result};

/// Everything needed to store a new user.
#[derive(Debug, Clone)]
pub struct UserInsert {
    /// The new id.
    pub id: UserId,
    /// The validated request.
    pub user: NewUser,
    /// bcrypt hash of the initial password.
    pub password_hash: PasswordHash,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A user with the hash to check a login against. Only the login path asks for this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user.
    pub record: UserRecord,
    /// The stored bcrypt hash.
    pub password_hash: PasswordHash,
}

/// User list filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Role equals.
    pub role: Option<Role>,
    /// Status equals.
    pub status: Option<UserStatus>,
    /// Username or email contains this text (case-insensitive, matched literally).
    pub search: Option<String>,
}

/// A change of status, with the actor's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// Whose.
    pub id: UserId,
    /// The new status.
    pub status: UserStatus,
    /// Why (recorded on the user and on every token it revokes).
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// What a status change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanged {
    /// The user afterwards.
    pub record: UserRecord,
    /// API tokens revoked in the same transaction (for cache eviction).
    pub revoked_tokens: Vec<TokenId>,
    /// How many live sessions were revoked.
    pub revoked_sessions: u64,
}

/// A new password hash for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChange {
    /// Whose.
    pub id: UserId,
    /// The new bcrypt hash.
    pub password_hash: PasswordHash,
    /// Whether the next login must change it again.
    pub must_change_password: bool,
    /// When.
    pub at: Timestamp,
}

/// A failed login against an existing account, and the lockout policy to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Whose account.
    pub id: UserId,
    /// When.
    pub at: Timestamp,
    /// The failure that reaches this count locks the account.
    pub max_failures: u32,
    /// For how long.
    pub lock_for: Duration,
    /// Count the failure but leave its event out (repeats within a minute are summarized instead,
    /// so failed logins cannot fill the disk); a lock is written all the same.
    pub suppressed: bool,
}

/// User storage. Every mutation writes its audit event in the same transaction.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user. `Conflict` when the id, the username or the email is taken (also by a deleted user).
    async fn insert_user(&self, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord>;

    /// The user with `id`, or `NotFound`.
    async fn user(&self, id: &UserId) -> Result<UserRecord>;

    /// The user named `username` with their password hash, whatever their status; `None` when there is none.
    async fn user_credentials(&self, username: &Username) -> Result<Option<UserCredentials>>;

    /// The user whose email is `email` (compared case-insensitively) with their password hash, whatever
    /// their status; `None` when there is none. One indexed lookup, never a scan: login by email asks
    /// this for every attempt, known address or not.
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserCredentials>>;

    /// Users matching `filter`, newest first, one page at a time. The cursor is a user id.
    async fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<UserRecord>>;

    /// Changes a user's status. Leaving `active` revokes every live session of the user and every
    /// live API token whose `user_id` is the user or whose owner is the username, writing one
    /// `token.revoke` event per token (actor, ip and time from `audit`) after `audit` itself.
    /// Setting the status a user already has changes nothing and writes nothing.
    /// `Conflict` when the user is deleted, or is the last active admin and would stop being active.
    async fn set_user_status(&self, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged>;

    /// Changes a user's role. `Conflict` when that would leave no active admin or the user is deleted.
    async fn set_user_role(&self, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord>;

    /// Changes a user's email. The store fills `audit.before` and `audit.after` with the old and new
    /// address, read in the same transaction that writes them. Setting the email a user already has
    /// changes nothing and writes nothing. `Conflict` when the address belongs to another user (whatever
    /// its case, deleted users included) or the user is deleted.
    async fn set_user_email(&self, id: &UserId, email: &Email, at: Timestamp, audit: &AuditEvent)
    -> Result<UserRecord>;

    /// Replaces a user's password hash and revokes their live sessions. `Conflict` when the user is deleted.
    async fn set_password(&self, change: &PasswordChange, audit: &AuditEvent) -> Result<UserRecord>;

    /// Stores the same password hashed anew (at another bcrypt cost) if the stored hash is still
    /// `old` — a change made meanwhile wins — and appends `audit`; sessions, `password_changed_at` and
    /// `must_change_password` stay. Returns whether it replaced the hash.
    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        audit: &AuditEvent,
    ) -> Result<bool>;

    /// Clears failed logins and any lock.
    async fn unlock_user(&self, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord>;

    /// Counts a failed login atomically. The failure that reaches `max_failures` locks the account
    /// until `at + lock_for`, resets the count and writes a `user.lock` event after `audit`.
    /// Failures while the account is locked are recorded (the audit event) but not counted. With
    /// `failure.suppressed` the failure's own event is not written.
    async fn record_login_failure(&self, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord>;
}

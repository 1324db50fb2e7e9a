//! Service accounts and the owner namespace: owners by id or by name, whichever kind they are.

use async_trait::async_trait;
use tollgate_types::{
    AccountStatus, AuditEvent, NewServiceAccount, OwnerId, OwnerRecord, ServiceAccountId, ServiceAccountRecord,
    Timestamp, TokenId, Username,
};

use crate::{Page, PageRequest, Result};

/// Everything needed to store a new service account.
#[derive(Debug, Clone)]
pub struct ServiceAccountInsert {
    /// The new id.
    pub id: ServiceAccountId,
    /// The validated request.
    pub account: NewServiceAccount,
    /// Creation time.
    pub created_at: Timestamp,
}

/// What a service account's status change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatusChanged {
    /// The account afterwards.
    pub record: ServiceAccountRecord,
    /// Tokens revoked in the same transaction (for cache eviction).
    pub revoked_tokens: Vec<TokenId>,
}

/// Service accounts, and owners of either kind. Every mutation writes its audit event in the same
/// transaction. Usernames and service account names are one namespace (case-insensitively, deleted
/// users included): the backend refuses a name the other kind already has.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a new service account. `Conflict` when the name is taken by a user or a service account.
    async fn insert_service_account(
        &self,
        insert: &ServiceAccountInsert,
        audit: &AuditEvent,
    ) -> Result<ServiceAccountRecord>;

    /// The service account with `id`, or `NotFound`.
    async fn service_account(&self, id: &ServiceAccountId) -> Result<ServiceAccountRecord>;

    /// Service accounts, newest first. The cursor is an id.
    async fn list_service_accounts(&self, page: &PageRequest) -> Result<Page<ServiceAccountRecord>>;

    /// Suspends or activates a service account. Suspending revokes its live tokens in the same
    /// transaction (one `token.revoke` event each, after `audit`). Setting the status it has changes
    /// nothing and writes nothing.
    async fn set_service_account_status(
        &self,
        id: &ServiceAccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<AccountStatusChanged>;

    /// The owner with `id`, whichever kind, or `NotFound` (entity `owner`).
    async fn owner(&self, id: &OwnerId) -> Result<OwnerRecord>;

    /// The user or service account named `name`; `None` when there is none.
    async fn owner_by_name(&self, name: &Username) -> Result<Option<OwnerRecord>>;
}

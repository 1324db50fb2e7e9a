//! Service accounts: owners that are not people (a CI system, a gateway, a dashboard), created and
//! suspended by admins. Suspending one revokes its tokens in the same transaction, like a user's.

use serde_json::json;
use tollgate_store::{Page, PageRequest, ServiceAccountInsert};
use tollgate_types::{
    AccountStatus, AuditEvent, NewServiceAccount, OwnerId, Principal, ServiceAccountId, ServiceAccountRecord,
};

use super::service::check_reason;
use crate::authz::{Operation, authorize};
use crate::{Caller, Error, Result, UserService};

impl UserService {
    fn account_event(&self, caller: &Caller, action: &str, target: ServiceAccountId) -> AuditEvent {
        let mut event = AuditEvent::new(caller.principal.actor(), action, target, self.inner.clock.now());
        event.ip = caller.ip;
        event
    }

    /// Creates a service account (admins). `Conflict` when a user or a service account has the name.
    #[tracing::instrument(skip_all, fields(name = %account.name))]
    pub async fn create_service_account(
        &self,
        caller: &Caller,
        account: NewServiceAccount,
    ) -> Result<ServiceAccountRecord> {
        authorize(&caller.principal, Operation::ManageServiceAccounts)?;
        let id = ServiceAccountId::generate();
        let mut event = self.account_event(caller, "service_account.create", id);
        event.after = Some(json!({ "name": account.name, "description": account.description }));
        let insert = ServiceAccountInsert { id, account, created_at: event.at };
        let record = self.inner.store.insert_service_account(&insert, &event).await?;
        tracing::info!(service_account_id = %record.id, "service account created");
        Ok(record)
    }

    /// One service account: admins, or a token of that account. Others get `NotFound`.
    pub async fn service_account(&self, principal: &Principal, id: &ServiceAccountId) -> Result<ServiceAccountRecord> {
        authorize(principal, Operation::ReadServiceAccounts { account: Some(*id) })
            .map_err(|_| Error::NotFound { entity: "service account" })?;
        Ok(self.inner.store.service_account(id).await?)
    }

    /// Every service account, newest first (admins).
    pub async fn list_service_accounts(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<ServiceAccountRecord>> {
        authorize(principal, Operation::ReadServiceAccounts { account: None })?;
        Ok(self.inner.store.list_service_accounts(page).await?)
    }

    /// The service account a text names: its id or its name.
    pub async fn find_service_account(&self, principal: &Principal, text: &str) -> Result<ServiceAccountRecord> {
        let id = match ServiceAccountId::parse(text) {
            Ok(id) => id,
            Err(_) => {
                let name = tollgate_types::Username::parse_field("service_account", text)?;
                match self.inner.store.owner_by_name(&name).await? {
                    Some(owner) => match owner.id {
                        OwnerId::ServiceAccount(id) => id,
                        OwnerId::User(_) => return Err(Error::NotFound { entity: "service account" }),
                    },
                    None => return Err(Error::NotFound { entity: "service account" }),
                }
            }
        };
        self.service_account(principal, &id).await
    }

    /// Suspends a service account, for a reason: its tokens are revoked in the same transaction.
    #[tracing::instrument(skip_all, fields(service_account_id = %id))]
    pub async fn suspend_service_account(
        &self,
        caller: &Caller,
        id: &ServiceAccountId,
        reason: &str,
    ) -> Result<ServiceAccountRecord> {
        if reason.trim().is_empty() {
            return Err(tollgate_types::ValidationError::new("reason", "must say why the account is suspended").into());
        }
        self.change_account_status(caller, id, AccountStatus::Suspended, Some(reason)).await
    }

    /// Activates a suspended service account. Tokens revoked by the suspension stay revoked.
    #[tracing::instrument(skip_all, fields(service_account_id = %id))]
    pub async fn activate_service_account(
        &self,
        caller: &Caller,
        id: &ServiceAccountId,
    ) -> Result<ServiceAccountRecord> {
        self.change_account_status(caller, id, AccountStatus::Active, None).await
    }

    async fn change_account_status(
        &self,
        caller: &Caller,
        id: &ServiceAccountId,
        status: AccountStatus,
        reason: Option<&str>,
    ) -> Result<ServiceAccountRecord> {
        authorize(&caller.principal, Operation::ManageServiceAccounts)?;
        if let Some(reason) = reason {
            check_reason(reason)?;
        }
        let action = match status {
            AccountStatus::Active => "service_account.activate",
            AccountStatus::Suspended => "service_account.suspend",
        };
        let mut event = self.account_event(caller, action, *id);
        event.after = Some(json!({ "status": status }));
        event.reason = reason.map(str::to_owned);
        let changed = self.inner.store.set_service_account_status(id, status, reason, &event).await;
        self.inner.tokens.invalidate_cache();
        let changed = changed?;
        tracing::info!(status = %status, tokens_revoked = changed.revoked_tokens.len(), "service account status changed");
        Ok(changed.record)
    }
}

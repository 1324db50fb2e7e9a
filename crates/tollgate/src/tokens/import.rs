//! Importing a token whose id and secret the caller already has: the development data set
//! (`cargo xtask seed` loads fixed, public development tokens) and moving tokens between deployments.

use tollgate_store::TokenInsert;
use tollgate_types::{AuditEvent, NewToken, Principal, TokenId, TokenRecord, TokenSecret, ValidationError};

use super::manager::TokenManager;
use crate::Result;
use crate::authz::{Operation, authorize};

impl TokenManager {
    /// Stores `token` under `id` with a secret chosen by the caller, hashed like a generated one, and
    /// created at the manager clock's `now`. Only admins may import (a known secret is only as safe as
    /// the place it came from); the secret must be in this manager's format, prefix included.
    /// `Conflict` when the id or the secret is already stored.
    #[tracing::instrument(skip_all, fields(token_id = %id, owner = %token.owner))]
    pub async fn import(
        &self,
        principal: &Principal,
        id: TokenId,
        token: NewToken,
        secret: &TokenSecret,
    ) -> Result<TokenRecord> {
        authorize(principal, Operation::ImportToken)?;
        let placement = self.place(principal, &token).await?;
        // The caller may have parsed the secret under another prefix: this manager must be able to verify it.
        TokenSecret::parse(&self.prefix, secret.expose())
            .map_err(|error| ValidationError::new("token", format!("is not a token of this deployment: {error}")))?;
        let now = self.now();
        if token.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(ValidationError::new("expires_at", "must be after the creation time").into());
        }
        let insert = TokenInsert {
            id,
            owner_name: placement.owner.name.to_owner(),
            owner_role: placement.owner.role,
            project_name: placement.project.map(|project| project.name),
            imposed: placement.imposed,
            token,
            hash: self.hasher.hash(secret),
            key_id: self.hasher.current_key_id(),
            display_hint: secret.display_hint(),
            created_at: now,
            agent: None,
        };
        let mut event = AuditEvent::new(principal.actor(), "token.import", insert.id, now);
        event.after = Some(serde_json::json!({
            "name": insert.token.name,
            "owner": insert.token.owner,
            "owner_name": insert.owner_name,
            "project": insert.token.project,
            "permission": insert.token.permission,
            "scopes": insert.token.scopes,
            "expires_at": insert.token.expires_at,
            "display_hint": insert.display_hint,
        }));
        let record = self.store.insert_token(&insert, &event).await?;
        tracing::info!(token_id = %record.id, "token imported");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tollgate_store::ServiceAccountInsert;
    use tollgate_types::{
        Actor, Description, KeyId, ManualClock, NewServiceAccount, OwnerId, Permission, Role, ServiceAccountId,
        Timestamp, TokenHasher, TokenName, TokenPrefix, UserId, Username,
    };

    use super::*;
    use crate::{Error, VerifyRequest};

    const SECRET: &str = "tg_DevOnlyAdminActive00000000000000000000000001KeWaK";

    /// The fixture's owner, a service account, created before any token.
    const OWNER: &str = "svc_0192f3a4b5c6d7e8f90a1b2c3d4e5f60";

    async fn manager(at: Timestamp) -> TokenManager {
        let store = crate::open("sqlite::memory:").await.unwrap();
        let account = NewServiceAccount {
            name: Username::parse_field("name", "fixtures").unwrap(),
            description: Description::default(),
        };
        let insert = ServiceAccountInsert { id: ServiceAccountId::parse(OWNER).unwrap(), account, created_at: at };
        store
            .insert_service_account(&insert, &AuditEvent::new(Actor::cli(), "service_account.create", OWNER, at))
            .await
            .unwrap();
        let hasher = TokenHasher::new(KeyId(1), &[9u8; 32]).unwrap();
        TokenManager::builder(store, hasher).clock(Arc::new(ManualClock::new(at))).build()
    }

    fn new_token() -> NewToken {
        NewToken::new(TokenName::parse("fixture").unwrap(), OwnerId::parse(OWNER).unwrap())
    }

    fn secret() -> TokenSecret {
        TokenSecret::parse(&TokenPrefix::default(), SECRET).unwrap()
    }

    #[tokio::test]
    async fn an_imported_secret_verifies_and_keeps_its_id_and_time() {
        let at = Timestamp::parse_rfc3339("at", "2026-01-10T09:00:00Z").unwrap();
        let manager = manager(at).await;
        let id = TokenId::parse("tok_00000000000070008000000000000002").unwrap();
        let record = manager.import(&Principal::Operator, id, new_token(), &secret()).await.unwrap();
        assert_eq!((record.id, record.created_at), (id, at));
        assert_eq!(record.display_hint, secret().display_hint());
        let context = manager.verify(SECRET, &VerifyRequest::default()).await.unwrap();
        assert_eq!(context.token_id, id);
    }

    #[tokio::test]
    async fn only_admins_import_and_never_twice() {
        let manager = manager(Timestamp::from_unix_micros(1_000_000)).await;
        let id = TokenId::parse("tok_00000000000070008000000000000002").unwrap();
        let user =
            Principal::User { id: UserId::generate(), username: Username::parse("someone").unwrap(), role: Role::User };
        let refused = manager.import(&user, id, new_token(), &secret()).await.unwrap_err();
        assert!(matches!(refused, Error::Forbidden(_)), "{refused:?}");
        manager.import(&Principal::Operator, id, new_token(), &secret()).await.unwrap();
        let again = manager.import(&Principal::Operator, id, new_token(), &secret()).await.unwrap_err();
        assert!(matches!(again, Error::Conflict(_)), "{again:?}");
    }

    #[tokio::test]
    async fn a_secret_of_another_prefix_or_an_expiry_before_creation_is_refused() {
        let at = Timestamp::from_unix_micros(10_000_000);
        let manager = manager(at).await;
        let id = TokenId::parse("tok_00000000000070008000000000000003").unwrap();
        let other = TokenSecret::generate(&TokenPrefix::parse("acme").unwrap()).unwrap();
        match manager.import(&Principal::Operator, id, new_token(), &other).await.unwrap_err() {
            Error::Validation(error) => assert_eq!(error.field, "token"),
            other => panic!("expected a validation error, got {other:?}"),
        }
        let mut expired = new_token();
        expired.permission = Permission::ReadOnly;
        expired.expires_at = Some(at);
        match manager.import(&Principal::Operator, id, expired, &secret()).await.unwrap_err() {
            Error::Validation(error) => assert_eq!(error.field, "expires_at"),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
}

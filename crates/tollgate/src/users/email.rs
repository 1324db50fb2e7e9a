//! Users by email: the admin change of a user's email. Login by email is in `login.rs`, on the
//! same path as login by username.

use tollgate_types::{Email, UserId, UserRecord};

use super::service::UserService;
use crate::authz::{Operation, authorize};
use crate::{Caller, Result};

impl UserService {
    /// Changes a user's email (admins; see `user.set_email` in docs/security.md). The store audits
    /// the old and new address in the same transaction. Sessions and tokens are untouched; the next
    /// login by email uses the new address.
    ///
    /// `Conflict` when another user, even a deleted one, has the address (in any case) or the user is
    /// deleted; `NotFound` for an unknown user. Setting the current address changes nothing.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn set_email(&self, caller: &Caller, id: &UserId, email: Email) -> Result<UserRecord> {
        authorize(&caller.principal, Operation::ChangeUserEmail { user: *id })?;
        let event = self.event(caller, "user.set_email", *id);
        let record = self.inner.store.set_user_email(id, &email, event.at, &event).await?;
        tracing::info!(user_id = %id, "user email changed");
        Ok(record)
    }
}

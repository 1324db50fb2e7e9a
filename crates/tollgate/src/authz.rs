//! The permission matrix, enforced in one place: every facade operation asks [`authorize`] first.
//!
//! Rows are operations, columns are effective levels (`read_only` ≈ viewer, `standard` ≈ user,
//! `admin` ≈ admin); "own" means the target belongs to the principal. `docs/security.md` shows the
//! same table; a data-driven test checks every cell.

use tollgate_types::{OwnerName, Permission, Principal, Role, UserId, UserStatus};

use crate::{Error, Result};

/// Something a principal asks to do, with the owner of its target where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Create a token for `owner` with `permission`.
    CreateToken {
        /// Owner of the new token.
        owner: &'a OwnerName,
        /// Owning user of the new token.
        user_id: Option<UserId>,
        /// Permission asked for.
        permission: Permission,
    },
    /// Read a token's metadata, or list tokens of `owner` (`None`: everybody's).
    ReadTokens {
        /// Whose tokens.
        owner: Option<&'a OwnerName>,
    },
    /// Revoke, rotate or update a token of `owner`.
    ManageToken {
        /// Whose token.
        owner: &'a OwnerName,
    },
    /// Delete long-inactive tokens of everybody.
    CleanupTokens,
    /// Store a token whose secret the caller chose (development fixtures, moving tokens between
    /// deployments). Operator only: a known secret is only as safe as the place it came from.
    ImportToken,
    /// Create a user with `role`.
    CreateUser {
        /// The new user's role.
        role: Role,
    },
    /// Read one user (`Some`), or list every user (`None`).
    ReadUsers {
        /// Which user.
        user: Option<UserId>,
    },
    /// Suspend, activate or delete a user. Nobody may suspend or delete themselves.
    ChangeUserStatus {
        /// Whose status.
        user: UserId,
        /// The new status.
        status: UserStatus,
    },
    /// Change a user's role. Nobody may demote themselves.
    ChangeUserRole {
        /// Whose role.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// Set a user's password (an admin reset).
    ResetPassword {
        /// Whose password.
        user: UserId,
    },
    /// Clear a user's failed logins and lock.
    UnlockUser {
        /// Whose account.
        user: UserId,
    },
    /// Change a user's email (an admin change, like a password reset: the email is a login name).
    ChangeUserEmail {
        /// Whose email.
        user: UserId,
    },
    /// List or revoke a user's login sessions.
    ManageSessions {
        /// Whose sessions.
        user: UserId,
    },
    /// Read the audit log.
    ReadAudit,
    /// Verify the audit log's hash chain.
    VerifyAudit,
    /// Record usage for a token of `owner`.
    RecordUsage {
        /// Whose token.
        owner: &'a OwnerName,
    },
    /// Read usage and limits of `owner` (`None`: everybody's, analytics).
    ReadUsage {
        /// Whose usage.
        owner: Option<&'a OwnerName>,
    },
    /// Set or remove limits, rate limits and prices; purge raw usage.
    ManageMetering,
}

/// Whether `principal` owns things owned by `owner`.
fn owns(principal: &Principal, owner: &OwnerName) -> bool {
    principal.owner() == Some(owner)
}

/// Decides whether `principal` may perform `operation`; `Forbidden` names what is missing.
pub fn authorize(principal: &Principal, operation: Operation<'_>) -> Result<()> {
    let level = principal.level();
    let admin = level == Permission::Admin;
    let allowed = match operation {
        Operation::CreateToken { owner, user_id, permission } => {
            if permission > level {
                return Err(Error::Forbidden(format!("cannot grant permission {permission} above your own ({level})")));
            }
            admin
                || (level >= Permission::Standard
                    && owns(principal, owner)
                    && (user_id.is_none() || user_id == principal.user_id()))
        }
        Operation::ReadTokens { owner } => admin || owner.is_some_and(|owner| owns(principal, owner)),
        Operation::ManageToken { owner } => admin || (level >= Permission::Standard && owns(principal, owner)),
        Operation::CleanupTokens => admin,
        Operation::ImportToken => matches!(principal, Principal::Operator),
        Operation::CreateUser { .. } | Operation::ResetPassword { .. } | Operation::UnlockUser { .. } => admin,
        Operation::ReadUsers { user } => admin || user.is_some_and(|user| is_self(principal, user)),
        Operation::ChangeUserStatus { user, status } => {
            if admin && status != UserStatus::Active && is_self(principal, user) {
                return Err(Error::Forbidden(format!("you cannot set your own account to {status}")));
            }
            admin
        }
        Operation::ChangeUserRole { user, role } => {
            if admin && role != Role::Admin && is_self(principal, user) {
                return Err(Error::Forbidden("you cannot demote yourself".to_owned()));
            }
            admin
        }
        Operation::ChangeUserEmail { .. } => admin,
        Operation::ManageSessions { user } => admin || is_self(principal, user),
        Operation::ReadAudit | Operation::VerifyAudit => admin,
        Operation::RecordUsage { owner } => admin || (level >= Permission::Standard && owns(principal, owner)),
        Operation::ReadUsage { owner } => admin || owner.is_some_and(|owner| owns(principal, owner)),
        Operation::ManageMetering => admin,
    };
    if allowed { Ok(()) } else { Err(Error::Forbidden(format!("{} may not do this", describe(principal)))) }
}

/// Whether `principal` is (or acts for) the user `user`.
fn is_self(principal: &Principal, user: UserId) -> bool {
    principal.user_id() == Some(user)
}

fn describe(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "the operator".to_owned(),
        Principal::User { role, .. } => format!("a user with role {role}"),
        Principal::Token { permission, .. } => format!("a token with permission {permission}"),
    }
}

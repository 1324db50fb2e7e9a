//! The permission matrix, enforced in one place: every facade operation asks [`authorize`] first.
//!
//! Rows are operations, columns are effective levels (`read_only` ≈ viewer, `standard` ≈ user,
//! `admin` ≈ admin); "own" means the target belongs to the principal, by id: a user owns what its
//! id owns, a token acts for its owner's id. Names are never compared. `docs/security.md` shows the
//! same table; a data-driven test checks every cell.

use tollgate_types::{
    AgentId, AgentStatus, OwnerId, Permission, Principal, ProjectRole, Role, ServiceAccountId, UserId, UserStatus,
};

use crate::{Error, Result};

/// Whose usage a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageScope {
    /// Everybody's (analytics, reports across owners).
    Everything,
    /// One owner's tokens (or one token of that owner).
    Owner(OwnerId),
    /// One project's tokens; the principal's role in that project (`None`: not a member).
    Project(Option<ProjectRole>),
}

/// Something a principal asks to do, with the owner of its target where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create a token for `owner` with `permission`, bound to a project or not.
    CreateToken {
        /// Owner of the new token.
        owner: OwnerId,
        /// Permission asked for.
        permission: Permission,
        /// `None` for no project; else the new token's owner's role in the project (`None`: not a
        /// member). For a non-admin, who creates tokens only for itself, that is its own role.
        project: Option<Option<ProjectRole>>,
    },
    /// Read a token's metadata, or list tokens of `owner` (`None`: everybody's).
    ReadTokens {
        /// Whose tokens.
        owner: Option<OwnerId>,
    },
    /// Revoke, rotate or update a token of `owner`.
    ManageToken {
        /// Whose token.
        owner: OwnerId,
    },
    /// Loosen or remove a constraint an admin imposed on a token (IP allow-list, tools, scopes, expiry).
    LoosenConstraints {
        /// Whose token.
        owner: OwnerId,
    },
    /// Delete long-inactive tokens of everybody.
    CleanupTokens,
    /// Store a token whose secret the caller chose (development fixtures, moving tokens between
    /// deployments). Admins only: a known secret is only as safe as the place it came from.
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
    /// Create, suspend or activate service accounts.
    ManageServiceAccounts,
    /// Read one service account (`Some`), or list them all (`None`).
    ReadServiceAccounts {
        /// Which account.
        account: Option<ServiceAccountId>,
    },
    /// Create projects and manage their members.
    ManageProjects,
    /// Read one project and its members; the principal's role in it (`None`: not a member).
    ReadProject {
        /// The principal's role in the project.
        role: Option<ProjectRole>,
    },
    /// List every project (others list the projects they belong to).
    ListAllProjects,
    /// Read the audit log.
    ReadAudit,
    /// Verify the audit log's hash chain.
    VerifyAudit,
    /// Record usage for a token of `owner`.
    RecordUsage {
        /// Whose token.
        owner: OwnerId,
    },
    /// Read usage and limits.
    ReadUsage {
        /// Whose.
        scope: UsageScope,
    },
    /// Set or remove limits, rate limits and prices; purge raw usage.
    ManageMetering,
    /// Register an agent for `owner`.
    CreateAgent {
        /// Owner of the new agent.
        owner: OwnerId,
    },
    /// Read an agent and its credentials, or list the agents of `owner` (`None`: everybody's).
    ReadAgents {
        /// Whose agents.
        owner: Option<OwnerId>,
    },
    /// Change, delete, or issue, rotate and revoke credentials of an agent of `owner`.
    ManageAgent {
        /// Whose agent.
        owner: OwnerId,
    },
    /// Change the status of an agent of `owner` from `from` to `to`: its owner may pause, resume and
    /// disable it, but only an admin brings a disabled agent back.
    ChangeAgentStatus {
        /// Whose agent.
        owner: OwnerId,
        /// Its status now.
        from: AgentStatus,
    },
    /// Store a provider key for `owner`.
    CreateProviderKey {
        /// Owner of the new key.
        owner: OwnerId,
    },
    /// Read a provider key's metadata (never its secret), or list the keys of `owner` (`None`: everybody's).
    ReadProviderKeys {
        /// Whose keys.
        owner: Option<OwnerId>,
    },
    /// Change, disable or delete a provider key of `owner`.
    ManageProviderKey {
        /// Whose key.
        owner: OwnerId,
    },
    /// Give the provider key of `key_owner` to an agent of `agent_owner` (or to a project the caller
    /// is a member of: then `agent_owner` is the caller).
    AssignProviderKey {
        /// Whose key.
        key_owner: OwnerId,
        /// Whose agent (or project).
        agent_owner: OwnerId,
    },
    /// Receive the decrypted provider key assigned to `agent`: only that agent, by its own credential.
    ReceiveProviderKey {
        /// The agent the key is assigned to.
        agent: AgentId,
    },
    /// Receive live events about what `owner` owns (`None`: every event, system ones included).
    ReadLiveEvents {
        /// Whose events.
        owner: Option<OwnerId>,
    },
    /// Send analytics events about `agent`'s LLM calls: only that agent, by its credential.
    ReportAnalytics {
        /// The agent the events are about.
        agent: AgentId,
    },
    /// Open, report on, refresh and return leases of `agent`'s budget: only that agent, by its credential.
    UseBudget {
        /// The agent the budget belongs to.
        agent: AgentId,
    },
    /// Read the budget, leases and history of an agent of `owner` (`None`: every agent's leases).
    ReadBudget {
        /// Whose agent.
        owner: Option<OwnerId>,
    },
    /// Set an agent's allocation directly, or revoke a lease.
    ManageBudget,
    /// Ask for a new allocation for an agent of `owner`.
    RequestBudget {
        /// Whose agent.
        owner: OwnerId,
    },
    /// Approve or reject a change request; `own_request`: the principal made it (separation of duties).
    DecideBudgetRequest {
        /// Whether the principal is the requester.
        own_request: bool,
    },
    /// Cancel a change request; `own_request`: the principal made it.
    CancelBudgetRequest {
        /// Whether the principal is the requester.
        own_request: bool,
    },
    /// Check every budget invariant.
    VerifyBudgets,
    /// Add, retire or re-wrap vault master keys: only the operator, who holds the key file.
    ManageVault,
    /// Read how many provider keys each master key wraps.
    ReadVault,
    /// Look up found (leaked) secrets by hash — which token, session or credential each is — and
    /// revoke them. Admins only: the answer names ids of everybody's secrets.
    HandleLeaks,
}

/// Whether `principal` acts for `owner`.
fn owns(principal: &Principal, owner: OwnerId) -> bool {
    principal.owner_id() == Some(owner)
}

/// Decides whether `principal` may perform `operation`; `Forbidden` names what is missing.
pub fn authorize(principal: &Principal, operation: Operation) -> Result<()> {
    // An agent acts for nobody: whatever the rows below would make of its (absent) owner and
    // memberships, it may only receive what is assigned to it.
    if let Principal::Agent { id, .. } = principal {
        return match operation {
            Operation::ReceiveProviderKey { agent }
            | Operation::UseBudget { agent }
            | Operation::ReportAnalytics { agent }
                if agent == *id =>
            {
                Ok(())
            }
            _ => Err(Error::Forbidden("an agent may only receive what is assigned to it".to_owned())),
        };
    }
    let level = principal.level();
    let admin = level == Permission::Admin;
    let standard = level >= Permission::Standard;
    let allowed = match operation {
        Operation::CreateToken { owner, permission, project } => {
            if permission > level {
                return Err(Error::Forbidden(format!("cannot grant permission {permission} above your own ({level})")));
            }
            let may_bind = project.is_none_or(|role| role == Some(ProjectRole::Member));
            admin || (standard && owns(principal, owner) && may_bind)
        }
        Operation::ReadTokens { owner } => admin || owner.is_some_and(|owner| owns(principal, owner)),
        Operation::ManageToken { owner } => admin || (standard && owns(principal, owner)),
        Operation::LoosenConstraints { .. } => admin,
        Operation::CleanupTokens => admin,
        Operation::ImportToken => admin,
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
        Operation::ManageServiceAccounts | Operation::ManageProjects | Operation::ListAllProjects => admin,
        Operation::ReadServiceAccounts { account } => {
            admin || account.is_some_and(|account| owns(principal, OwnerId::ServiceAccount(account)))
        }
        Operation::ReadProject { role } => admin || role.is_some(),
        Operation::ReadAudit | Operation::VerifyAudit => admin,
        Operation::RecordUsage { owner } => admin || (standard && owns(principal, owner)),
        Operation::ReadUsage { scope } => match scope {
            UsageScope::Everything => admin,
            UsageScope::Owner(owner) => admin || owns(principal, owner),
            UsageScope::Project(role) => admin || role.is_some(),
        },
        Operation::ManageMetering => admin,
        Operation::CreateAgent { owner }
        | Operation::ManageAgent { owner }
        | Operation::CreateProviderKey { owner }
        | Operation::ManageProviderKey { owner } => admin || (standard && owns(principal, owner)),
        Operation::ReadAgents { owner } | Operation::ReadProviderKeys { owner } => {
            admin || owner.is_some_and(|owner| owns(principal, owner))
        }
        Operation::ChangeAgentStatus { owner, from } => {
            admin || (standard && owns(principal, owner) && from != AgentStatus::Disabled)
        }
        Operation::AssignProviderKey { key_owner, agent_owner } => {
            admin || (standard && owns(principal, key_owner) && owns(principal, agent_owner))
        }
        // Agents are answered above; nobody else receives a key.
        Operation::ReceiveProviderKey { .. } => false,
        Operation::UseBudget { .. } | Operation::ReportAnalytics { .. } => false,
        Operation::ReadBudget { owner } | Operation::ReadLiveEvents { owner } => {
            admin || owner.is_some_and(|owner| owns(principal, owner))
        }
        Operation::ManageBudget | Operation::VerifyBudgets => admin,
        Operation::RequestBudget { owner } => admin || (standard && owns(principal, owner)),
        Operation::DecideBudgetRequest { own_request } => {
            if admin && own_request {
                return Err(Error::Forbidden("you cannot decide your own request: another admin must".to_owned()));
            }
            admin
        }
        Operation::CancelBudgetRequest { own_request } => own_request,
        Operation::ManageVault => matches!(principal, Principal::Operator),
        Operation::ReadVault | Operation::HandleLeaks => admin,
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
        Principal::Agent { .. } => "an agent".to_owned(),
    }
}

//! The permission matrix, data-driven: the table in docs/security.md is the test data. Every cell
//! (operation × principal) is checked against `authorize` through one `check` helper, for a target the
//! principal owns and foreign ones, each in a project the principal is a member, a viewer or not a
//! member of. The demotion cases, over a real database, are in `demotion.rs`.

use tollgate::{
    AgentId, AgentStatus, Operation, OwnerId, Permission, Principal, ProjectRole, Role, ServiceAccountId, TokenId,
    UsageScope, UserId, UserStatus, Username, authorize,
};

/// Every row the table must have, in its order.
const ROWS: [&str; 60] = [
    "token.create",
    "token.create_in_project",
    "token.read",
    "token.list_all",
    "token.manage",
    "token.loosen",
    "token.cleanup",
    "token.import",
    "user.create",
    "user.read",
    "user.list",
    "user.suspend",
    "user.delete",
    "user.activate",
    "user.set_role",
    "user.reset_password",
    "user.unlock",
    "user.set_email",
    "session.manage",
    "service_account.manage",
    "service_account.read",
    "service_account.list",
    "project.manage",
    "project.read",
    "project.list_all",
    "audit.read",
    "audit.verify",
    "usage.record",
    "usage.read",
    "usage.read_project",
    "usage.read_all",
    "metering.manage",
    "agent.create",
    "agent.read",
    "agent.list_all",
    "agent.manage",
    "agent.set_status",
    "agent.revive",
    "provider_key.create",
    "provider_key.read",
    "provider_key.list_all",
    "provider_key.manage",
    "provider_key.assign",
    "provider_key.receive",
    "vault.manage",
    "vault.read",
    "budget.use",
    "analytics.report",
    "events.read",
    "events.read_all",
    "budget.read",
    "budget.read_all",
    "budget.manage",
    "budget.request",
    "budget.decide",
    "budget.decide_own",
    "budget.cancel_own",
    "budget.cancel_others",
    "budget.verify",
    "leak.handle",
];

/// A token column's cell for a token of a service account (docs/security.md says so below the
/// table): no user is its own (on user and session rows `own` is `no` and `others` is `yes`), and
/// it reads its own service account.
fn as_service_account_token<'a>(row: &str, cell: &'a str) -> &'a str {
    let about_users = row.starts_with("user.") || row.starts_with("session.");
    match (cell, row) {
        ("own", _) if about_users => "no",
        ("others", _) if about_users => "yes",
        ("no", "service_account.read") => "own",
        _ => cell,
    }
}

/// Whose things an operation is about, and the principal's role in the project it names.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// The owner of the target's tokens and usage.
    owner: OwnerId,
    /// The user a user operation is about.
    user: UserId,
    /// The service account a service-account operation is about.
    account: ServiceAccountId,
    /// The principal's role in the target project (`None`: not a member).
    membership: Option<ProjectRole>,
    /// The agent a delivery is for.
    agent: AgentId,
}

impl Target {
    /// Things of the user `user`.
    fn of_user(user: UserId) -> Self {
        Self {
            owner: OwnerId::User(user),
            user,
            account: ServiceAccountId::generate(),
            membership: None,
            agent: AgentId::generate(),
        }
    }

    /// Things of the service account `account` (the user operations are about someone else).
    fn of_service_account(account: ServiceAccountId) -> Self {
        Self {
            owner: OwnerId::ServiceAccount(account),
            user: UserId::generate(),
            account,
            membership: None,
            agent: AgentId::generate(),
        }
    }

    fn in_project(self, membership: Option<ProjectRole>) -> Self {
        Self { membership, ..self }
    }
}

/// The principals in column order: operator, three user roles, three token levels. All but the
/// operator are `me` or tokens of `me`; `me` is a user, or a service account (then only its tokens).
fn principals(me: &Target) -> Vec<(&'static str, Principal)> {
    let username = Username::parse("myself").unwrap();
    let user = |role| Principal::User { id: me.user, username: username.clone(), role };
    let token = |permission| Principal::Token { id: TokenId::generate(), owner: me.owner, permission };
    vec![
        ("operator", Principal::Operator),
        ("admin", user(Role::Admin)),
        ("user", user(Role::User)),
        ("viewer", user(Role::Viewer)),
        ("token admin", token(Permission::Admin)),
        ("token standard", token(Permission::Standard)),
        ("token read_only", token(Permission::ReadOnly)),
    ]
}

/// The operation a table row names, aimed at `target`.
fn operation(name: &str, target: &Target) -> Operation {
    let owner = target.owner;
    match name {
        "token.create" => Operation::CreateToken { owner, permission: Permission::ReadOnly, project: None },
        "token.create_in_project" => {
            Operation::CreateToken { owner, permission: Permission::ReadOnly, project: Some(target.membership) }
        }
        "token.read" => Operation::ReadTokens { owner: Some(owner) },
        "token.list_all" => Operation::ReadTokens { owner: None },
        "token.manage" => Operation::ManageToken { owner },
        "token.loosen" => Operation::LoosenConstraints { owner },
        "token.cleanup" => Operation::CleanupTokens,
        "token.import" => Operation::ImportToken,
        "user.create" => Operation::CreateUser { role: Role::Viewer },
        "user.read" => Operation::ReadUsers { user: Some(target.user) },
        "user.list" => Operation::ReadUsers { user: None },
        "user.suspend" => Operation::ChangeUserStatus { user: target.user, status: UserStatus::Suspended },
        "user.delete" => Operation::ChangeUserStatus { user: target.user, status: UserStatus::Deleted },
        "user.activate" => Operation::ChangeUserStatus { user: target.user, status: UserStatus::Active },
        "user.set_role" => Operation::ChangeUserRole { user: target.user, role: Role::User },
        "user.reset_password" => Operation::ResetPassword { user: target.user },
        "user.unlock" => Operation::UnlockUser { user: target.user },
        "user.set_email" => Operation::ChangeUserEmail { user: target.user },
        "session.manage" => Operation::ManageSessions { user: target.user },
        "service_account.manage" => Operation::ManageServiceAccounts,
        "service_account.read" => Operation::ReadServiceAccounts { account: Some(target.account) },
        "service_account.list" => Operation::ReadServiceAccounts { account: None },
        "project.manage" => Operation::ManageProjects,
        "project.read" => Operation::ReadProject { role: target.membership },
        "project.list_all" => Operation::ListAllProjects,
        "audit.read" => Operation::ReadAudit,
        "audit.verify" => Operation::VerifyAudit,
        "usage.record" => Operation::RecordUsage { owner },
        "usage.read" => Operation::ReadUsage { scope: UsageScope::Owner(owner) },
        "usage.read_project" => Operation::ReadUsage { scope: UsageScope::Project(target.membership) },
        "usage.read_all" => Operation::ReadUsage { scope: UsageScope::Everything },
        "metering.manage" => Operation::ManageMetering,
        "agent.create" => Operation::CreateAgent { owner },
        "agent.read" => Operation::ReadAgents { owner: Some(owner) },
        "agent.list_all" => Operation::ReadAgents { owner: None },
        "agent.manage" => Operation::ManageAgent { owner },
        "agent.set_status" => Operation::ChangeAgentStatus { owner, from: AgentStatus::Active },
        "agent.revive" => Operation::ChangeAgentStatus { owner, from: AgentStatus::Disabled },
        "provider_key.create" => Operation::CreateProviderKey { owner },
        "provider_key.read" => Operation::ReadProviderKeys { owner: Some(owner) },
        "provider_key.list_all" => Operation::ReadProviderKeys { owner: None },
        "provider_key.manage" => Operation::ManageProviderKey { owner },
        "provider_key.assign" => Operation::AssignProviderKey { key_owner: owner, agent_owner: owner },
        "provider_key.receive" => Operation::ReceiveProviderKey { agent: target.agent },
        "vault.manage" => Operation::ManageVault,
        "vault.read" => Operation::ReadVault,
        "budget.use" => Operation::UseBudget { agent: target.agent },
        "analytics.report" => Operation::ReportAnalytics { agent: target.agent },
        "events.read" => Operation::ReadLiveEvents { owner: Some(owner) },
        "events.read_all" => Operation::ReadLiveEvents { owner: None },
        "budget.read" => Operation::ReadBudget { owner: Some(owner) },
        "budget.read_all" => Operation::ReadBudget { owner: None },
        "budget.manage" => Operation::ManageBudget,
        "budget.request" => Operation::RequestBudget { owner },
        "budget.decide" => Operation::DecideBudgetRequest { own_request: false },
        "budget.decide_own" => Operation::DecideBudgetRequest { own_request: true },
        "budget.cancel_own" => Operation::CancelBudgetRequest { own_request: true },
        "budget.cancel_others" => Operation::CancelBudgetRequest { own_request: false },
        "budget.verify" => Operation::VerifyBudgets,
        "leak.handle" => Operation::HandleLeaks,
        other => panic!("docs/security.md names an operation this test does not know: {other}"),
    }
}

/// The row name of every operation. The match names every variant so that a new one gets a row;
/// `Operation` is `#[non_exhaustive]`, though, which forces the last arm and keeps a new variant
/// from failing to compile here (see the arm).
fn row_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::CreateToken { project: None, .. } => "token.create",
        Operation::CreateToken { project: Some(_), .. } => "token.create_in_project",
        Operation::ReadTokens { owner: Some(_) } => "token.read",
        Operation::ReadTokens { owner: None } => "token.list_all",
        Operation::ManageToken { .. } => "token.manage",
        Operation::LoosenConstraints { .. } => "token.loosen",
        Operation::CleanupTokens => "token.cleanup",
        Operation::ImportToken => "token.import",
        Operation::CreateUser { .. } => "user.create",
        Operation::ReadUsers { user: Some(_) } => "user.read",
        Operation::ReadUsers { user: None } => "user.list",
        Operation::ChangeUserStatus { status: UserStatus::Suspended, .. } => "user.suspend",
        Operation::ChangeUserStatus { status: UserStatus::Deleted, .. } => "user.delete",
        Operation::ChangeUserStatus { status: UserStatus::Active, .. } => "user.activate",
        Operation::ChangeUserRole { .. } => "user.set_role",
        Operation::ResetPassword { .. } => "user.reset_password",
        Operation::UnlockUser { .. } => "user.unlock",
        Operation::ChangeUserEmail { .. } => "user.set_email",
        Operation::ManageSessions { .. } => "session.manage",
        Operation::ManageServiceAccounts => "service_account.manage",
        Operation::ReadServiceAccounts { account: Some(_) } => "service_account.read",
        Operation::ReadServiceAccounts { account: None } => "service_account.list",
        Operation::ManageProjects => "project.manage",
        Operation::ReadProject { .. } => "project.read",
        Operation::ListAllProjects => "project.list_all",
        Operation::ReadAudit => "audit.read",
        Operation::VerifyAudit => "audit.verify",
        Operation::RecordUsage { .. } => "usage.record",
        Operation::ReadUsage { scope: UsageScope::Owner(_) } => "usage.read",
        Operation::ReadUsage { scope: UsageScope::Project(_) } => "usage.read_project",
        Operation::ReadUsage { scope: UsageScope::Everything } => "usage.read_all",
        Operation::ManageMetering => "metering.manage",
        Operation::CreateAgent { .. } => "agent.create",
        Operation::ReadAgents { owner: Some(_) } => "agent.read",
        Operation::ReadAgents { owner: None } => "agent.list_all",
        Operation::ManageAgent { .. } => "agent.manage",
        Operation::ChangeAgentStatus { from: AgentStatus::Disabled, .. } => "agent.revive",
        Operation::ChangeAgentStatus { .. } => "agent.set_status",
        Operation::CreateProviderKey { .. } => "provider_key.create",
        Operation::ReadProviderKeys { owner: Some(_) } => "provider_key.read",
        Operation::ReadProviderKeys { owner: None } => "provider_key.list_all",
        Operation::ManageProviderKey { .. } => "provider_key.manage",
        Operation::AssignProviderKey { .. } => "provider_key.assign",
        Operation::ReceiveProviderKey { .. } => "provider_key.receive",
        Operation::ManageVault => "vault.manage",
        Operation::ReadVault => "vault.read",
        Operation::UseBudget { .. } => "budget.use",
        Operation::ReportAnalytics { .. } => "analytics.report",
        Operation::ReadLiveEvents { owner: Some(_) } => "events.read",
        Operation::ReadLiveEvents { owner: None } => "events.read_all",
        Operation::ReadBudget { owner: Some(_) } => "budget.read",
        Operation::ReadBudget { owner: None } => "budget.read_all",
        Operation::ManageBudget => "budget.manage",
        Operation::RequestBudget { .. } => "budget.request",
        Operation::DecideBudgetRequest { own_request: false } => "budget.decide",
        Operation::DecideBudgetRequest { own_request: true } => "budget.decide_own",
        Operation::CancelBudgetRequest { own_request: true } => "budget.cancel_own",
        Operation::CancelBudgetRequest { own_request: false } => "budget.cancel_others",
        Operation::VerifyBudgets => "budget.verify",
        Operation::HandleLeaks => "leak.handle",
    }
}

/// The matrix rows between the markers: operation name and one cell per principal.
fn table() -> Vec<(String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
    let text = std::fs::read_to_string(path).expect("docs/security.md exists");
    let start = text.find("<!-- rbac-matrix:start -->").expect("start marker");
    let end = text.find("<!-- rbac-matrix:end -->").expect("end marker");
    let cells = |line: &str| -> Vec<String> {
        line.trim().trim_matches('|').split('|').map(|cell| cell.trim().trim_matches('`').to_owned()).collect()
    };
    let mut lines = text[start..end].lines().filter(|line| line.starts_with('|'));
    let header = cells(lines.next().expect("header row"));
    let me = Target::of_user(UserId::generate());
    let expected: Vec<String> = std::iter::once("operation".to_owned())
        .chain(principals(&me).into_iter().map(|(name, _)| name.to_owned()))
        .collect();
    assert_eq!(header, expected, "the table's columns");
    lines
        .skip(1) // the |---| separator
        .map(|line| {
            let mut row = cells(line);
            let name = row.remove(0);
            (name, row)
        })
        .collect()
}

/// What a cell allows for a target that is the principal's own or not, in a project the principal
/// has `membership` in.
fn allows(cell: &str, own: bool, membership: Option<ProjectRole>) -> bool {
    match cell {
        "yes" => true,
        "no" => false,
        "own" => own,
        "others" => !own,
        "member" => own && membership == Some(ProjectRole::Member),
        "project" => membership.is_some(),
        other => panic!("unknown cell {other:?}"),
    }
}

/// Checks one cell against `authorize`: for `mine` and each of `theirs`, in a project the principal
/// is a member, a viewer and not a member of.
fn check(row: &str, column: &str, principal: &Principal, cell: &str, mine: &Target, theirs: &[Target]) {
    let targets = std::iter::once((true, mine)).chain(theirs.iter().map(|target| (false, target)));
    for (own, target) in targets {
        for membership in [Some(ProjectRole::Member), Some(ProjectRole::Viewer), None] {
            let operation = operation(row, &target.in_project(membership));
            assert_eq!(row_name(&operation), row, "row {row} builds the operation it names");
            let allowed = authorize(principal, operation).is_ok();
            let expected = allows(cell, own, membership);
            let whose = if own { "own" } else { "foreign" };
            assert_eq!(
                allowed, expected,
                "{row} × {column}: the table says {cell:?}; target {whose} ({:?}), project role {membership:?}",
                target.owner
            );
        }
    }
}

/// Foreign targets: another user's things and a service account's.
fn foreign() -> [Target; 2] {
    [Target::of_user(UserId::generate()), Target::of_service_account(ServiceAccountId::generate())]
}

#[test]
fn every_cell_of_the_documented_matrix_holds() {
    let mine = Target::of_user(UserId::generate());
    let rows = table();
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ROWS, "one row per operation and case, in order, none twice");
    let mut checked = 0;
    for (row, cells) in &rows {
        let principals = principals(&mine);
        assert_eq!(cells.len(), principals.len(), "row {row} has a cell per principal");
        for ((column, principal), cell) in principals.iter().zip(cells) {
            check(row, column, principal, cell, &mine, &foreign());
            checked += 1;
        }
    }
    assert_eq!(checked, ROWS.len() * 7);
    assert_eq!(checked, 60 * 7);
}

#[test]
fn tokens_of_a_service_account_differ_only_where_the_doc_says() {
    let mine = Target::of_service_account(ServiceAccountId::generate());
    for (row, cells) in table() {
        let tokens = principals(&mine).into_iter().zip(cells).filter(|((column, _), _)| column.starts_with("token"));
        for ((column, principal), cell) in tokens {
            let cell = as_service_account_token(&row, &cell);
            check(&row, &format!("service account {column}"), &principal, cell, &mine, &foreign());
        }
    }
}

#[test]
fn nobody_grants_more_than_they_have() {
    let me = UserId::generate();
    let username = Username::parse("myself").unwrap();
    for (role, above) in [(Role::Viewer, Permission::Standard), (Role::User, Permission::Admin)] {
        let principal = Principal::User { id: me, username: username.clone(), role };
        for project in [None, Some(Some(ProjectRole::Member))] {
            let operation = Operation::CreateToken { owner: OwnerId::User(me), permission: above, project };
            let error = authorize(&principal, operation).unwrap_err();
            assert!(error.to_string().contains("above your own"), "{error}");
        }
    }
    let token =
        Principal::Token { id: TokenId::generate(), owner: OwnerId::User(me), permission: Permission::Standard };
    let operation = Operation::CreateToken { owner: OwnerId::User(me), permission: Permission::Admin, project: None };
    assert!(authorize(&token, operation).unwrap_err().to_string().contains("above your own"));
    // Setting one's own role to admin (a no-op for an admin) is not a demotion.
    let admin = Principal::User { id: me, username, role: Role::Admin };
    assert!(authorize(&admin, Operation::ChangeUserRole { user: me, role: Role::Admin }).is_ok());
    // An admin token of a service account is nobody's self: it may suspend any user.
    let service = Principal::Token {
        id: TokenId::generate(),
        owner: OwnerId::ServiceAccount(ServiceAccountId::generate()),
        permission: Permission::Admin,
    };
    assert!(authorize(&service, Operation::ChangeUserStatus { user: me, status: UserStatus::Suspended }).is_ok());
}

#[test]
fn an_agent_may_only_receive_its_own_key() {
    let mine = Target::of_user(UserId::generate());
    let agent = Principal::Agent { id: mine.agent, credential: TokenId::generate() };
    for row in ROWS {
        for target in std::iter::once(mine).chain(foreign()) {
            for membership in [Some(ProjectRole::Member), Some(ProjectRole::Viewer), None] {
                let operation = operation(row, &target.in_project(membership));
                let allowed = authorize(&agent, operation).is_ok();
                let own_delivery = matches!(row, "provider_key.receive" | "budget.use" | "analytics.report")
                    && target.agent == mine.agent;
                assert_eq!(allowed, own_delivery, "{row} for an agent, target {:?}", target.owner);
            }
        }
    }
}

#[test]
fn a_key_is_assigned_only_where_its_assigner_owns_both_ends() {
    let me = OwnerId::User(UserId::generate());
    let other = OwnerId::User(UserId::generate());
    let user = Principal::Token { id: TokenId::generate(), owner: me, permission: Permission::Standard };
    let admin = Principal::Token { id: TokenId::generate(), owner: me, permission: Permission::Admin };
    for (key_owner, agent_owner, allowed) in [(me, me, true), (me, other, false), (other, me, false)] {
        let operation = Operation::AssignProviderKey { key_owner, agent_owner };
        assert_eq!(authorize(&user, operation).is_ok(), allowed, "{key_owner:?} → {agent_owner:?}");
        assert!(authorize(&admin, operation).is_ok());
    }
}

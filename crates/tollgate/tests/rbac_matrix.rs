//! The permission matrix, data-driven: the table in docs/security.md is the test data. Every cell
//! (operation × principal) is checked against `authorize` for a target the principal owns and one it
//! does not, through one `check` helper.

use tollgate::{Operation, OwnerName, Permission, Principal, Role, TokenId, UserId, UserStatus, authorize};

/// Whose things an operation is about.
struct Target {
    user: UserId,
    owner: OwnerName,
}

/// The principals in column order: operator, three user roles, three token levels. All but the
/// operator are (or belong to) `me`.
fn principals(me: &Target) -> Vec<(&'static str, Principal)> {
    let user = |role| Principal::User { id: me.user, username: me.owner.clone(), role };
    let token = |permission| Principal::Token {
        id: TokenId::generate(),
        owner: me.owner.clone(),
        user_id: Some(me.user),
        permission,
    };
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
fn operation<'a>(name: &str, target: &'a Target) -> Operation<'a> {
    match name {
        "token.create" => Operation::CreateToken {
            owner: &target.owner,
            user_id: Some(target.user),
            permission: Permission::ReadOnly,
        },
        "token.read" => Operation::ReadTokens { owner: Some(&target.owner) },
        "token.list_all" => Operation::ReadTokens { owner: None },
        "token.manage" => Operation::ManageToken { owner: &target.owner },
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
        "audit.read" => Operation::ReadAudit,
        "audit.verify" => Operation::VerifyAudit,
        "usage.record" => Operation::RecordUsage { owner: &target.owner },
        "usage.read" => Operation::ReadUsage { owner: Some(&target.owner) },
        "usage.read_all" => Operation::ReadUsage { owner: None },
        "metering.manage" => Operation::ManageMetering,
        other => panic!("docs/security.md names an operation this test does not know: {other}"),
    }
}

/// The row name of every operation; the exhaustive match makes a new `Operation` variant fail to
/// compile here until it has a row.
fn row_name(operation: &Operation<'_>) -> &'static str {
    match operation {
        Operation::CreateToken { .. } => "token.create",
        Operation::ReadTokens { owner: Some(_) } => "token.read",
        Operation::ReadTokens { owner: None } => "token.list_all",
        Operation::ManageToken { .. } => "token.manage",
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
        Operation::ReadAudit => "audit.read",
        Operation::VerifyAudit => "audit.verify",
        Operation::RecordUsage { .. } => "usage.record",
        Operation::ReadUsage { owner: Some(_) } => "usage.read",
        Operation::ReadUsage { owner: None } => "usage.read_all",
        Operation::ManageMetering => "metering.manage",
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
    let expected: Vec<String> = std::iter::once("operation".to_owned())
        .chain(principals(&me()).into_iter().map(|(name, _)| name.to_owned()))
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

fn me() -> Target {
    Target { user: UserId::generate(), owner: OwnerName::parse("me").unwrap() }
}

/// Checks one cell: `yes`, `no`, `own` (only the own target) or `others` (only a foreign target).
fn check(row: &str, column: &str, principal: &Principal, cell: &str, mine: &Target, theirs: &Target) {
    let allowed = |target: &Target| {
        let operation = operation(row, target);
        assert_eq!(row_name(&operation), row, "row {row} builds the operation it names");
        authorize(principal, operation).is_ok()
    };
    let (own, foreign) = (allowed(mine), allowed(theirs));
    let expected = match cell {
        "yes" => (true, true),
        "no" => (false, false),
        "own" => (true, false),
        "others" => (false, true),
        other => panic!("unknown cell {other:?} in row {row}"),
    };
    assert_eq!((own, foreign), expected, "{row} × {column}: the table says {cell:?} (own, foreign)");
}

#[test]
fn every_cell_of_the_documented_matrix_holds() {
    let mine = me();
    let theirs = Target { user: UserId::generate(), owner: OwnerName::parse("someone-else").unwrap() };
    let rows = table();
    let mut checked = 0;
    for (row, cells) in &rows {
        let principals = principals(&mine);
        assert_eq!(cells.len(), principals.len(), "row {row} has a cell per principal");
        for ((column, principal), cell) in principals.iter().zip(cells) {
            check(row, column, principal, cell, &mine, &theirs);
            checked += 1;
        }
    }
    assert_eq!(rows.len(), 23, "one row per operation");
    assert_eq!(checked, 23 * 7);
    let mut names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len(), "no operation twice");
}

#[test]
fn nobody_grants_more_than_they_have() {
    let mine = me();
    for (role, above) in [(Role::Viewer, Permission::Standard), (Role::User, Permission::Admin)] {
        let principal = Principal::User { id: mine.user, username: mine.owner.clone(), role };
        let operation = Operation::CreateToken { owner: &mine.owner, user_id: Some(mine.user), permission: above };
        let error = authorize(&principal, operation).unwrap_err();
        assert!(error.to_string().contains("above your own"), "{error}");
    }
    // Setting one's own role to admin (a no-op for an admin) is not a demotion.
    let admin = Principal::User { id: mine.user, username: mine.owner.clone(), role: Role::Admin };
    assert!(authorize(&admin, Operation::ChangeUserRole { user: mine.user, role: Role::Admin }).is_ok());
    // An admin token without a user is nobody's self: it may suspend any user.
    let service = Principal::Token {
        id: TokenId::generate(),
        owner: OwnerName::parse("ops").unwrap(),
        user_id: None,
        permission: Permission::Admin,
    };
    assert!(
        authorize(&service, Operation::ChangeUserStatus { user: mine.user, status: UserStatus::Suspended }).is_ok()
    );
}

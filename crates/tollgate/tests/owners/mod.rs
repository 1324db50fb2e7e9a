//! Who owns the tokens of the integration tests: a user service next to a test's token manager
//! (bcrypt at the test-only cost 4), users, and service accounts and projects the operator creates
//! on first use. Every token needs an existing, active owner; the fixtures build on these.

#![allow(dead_code, unreachable_pub)]

use tollgate::{
    Caller, Description, Email, Error, JwtKeys, KeyId, NewProject, NewServiceAccount, NewUser, OwnerId, Password,
    Principal, ProjectId, ProjectName, ProjectRole, Role, TokenHasher, TokenManager, UserRecord, UserService,
    UserServiceBuilder, Username,
};

/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A user service over `tokens` with the test keys and bcrypt at cost 4, to be configured further.
pub fn user_service_builder(tokens: &TokenManager) -> UserServiceBuilder {
    UserService::builder(
        tokens,
        JwtKeys::new("k1", &[9; 32]).expect("valid key"),
        TokenHasher::new(KeyId(1), &[7; 32]).expect("valid key"),
    )
    .insecure_bcrypt_cost_for_tests(4)
}

/// A user service over `tokens` with the test settings.
pub fn user_service(tokens: &TokenManager) -> UserService {
    user_service_builder(tokens).build().expect("valid settings")
}

pub fn password(text: &str) -> Password {
    Password::new(text.to_owned()).expect("test password meets the policy")
}

pub fn new_user(name: &str, role: Role) -> NewUser {
    NewUser::new(
        Username::parse(name).expect("valid username"),
        Email::parse(&format!("{name}@example.com")).expect("valid email"),
        role,
    )
}

/// Creates the user `name` with `role` and the test password, as the operator.
pub async fn user(users: &UserService, name: &str, role: Role) -> UserRecord {
    users.create(&Caller::operator(), new_user(name, role), password(PASSWORD)).await.expect("user created")
}

/// The service account named `name`, created by the operator on first use.
pub async fn service_account(users: &UserService, name: &str) -> OwnerId {
    match users.find_service_account(&Principal::Operator, name).await {
        Ok(account) => OwnerId::ServiceAccount(account.id),
        Err(Error::NotFound { .. }) => {
            let account = NewServiceAccount {
                name: Username::parse_field("name", name).expect("valid service account name"),
                description: Description::default(),
            };
            let created = users.create_service_account(&Caller::operator(), account).await;
            OwnerId::ServiceAccount(created.expect("service account created").id)
        }
        Err(other) => panic!("looking up service account {name}: {other}"),
    }
}

/// The project named `name`, created by the operator on first use.
pub async fn project(tokens: &TokenManager, users: &UserService, name: &str) -> ProjectId {
    match tokens.resolve_project(&Principal::Operator, name).await {
        Ok(id) => id,
        Err(Error::NotFound { .. }) => {
            let project = NewProject {
                name: ProjectName::parse(name).expect("valid project name"),
                description: Description::default(),
            };
            users.create_project(&Caller::operator(), project).await.expect("project created").id
        }
        Err(other) => panic!("looking up project {name}: {other}"),
    }
}

/// Makes `member` a member of `project` with `role` (the operator adds it; an existing membership
/// with that role is left alone, so setup writes no audit entry twice).
pub async fn join(users: &UserService, project: ProjectId, member: OwnerId, role: ProjectRole) {
    let current = users.store().project_role(&project, &member).await.expect("membership read");
    if current != Some(role) {
        users.put_project_member(&Caller::operator(), &project, &member, role).await.expect("member added");
    }
}

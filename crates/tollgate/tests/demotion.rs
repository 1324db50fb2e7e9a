//! Demotion bites on the next request: for every role pair (admin→user, admin→viewer, user→viewer),
//! after `UserService::set_role` the next authorization of the user's access JWT and of the user's
//! API tokens (cached ones included) uses the new role, over a real SQLite file. Promotion back
//! restores what the tokens' own levels allow.

mod identity_common;
use identity_common as common;

use common::{Fixture, PASSWORD, presented};
use tollgate::{
    Caller, Error, OwnerId, PageRequest, Permission, Principal, Role, TokenFilter, TokenId, TokenPatch, UserFilter,
    UserRecord, VerifyRequest,
};

const PAIRS: [(Role, Role); 3] = [(Role::Admin, Role::User), (Role::Admin, Role::Viewer), (Role::User, Role::Viewer)];

/// What happened to an attempt: allowed, or refused as `forbidden`.
fn allowed<T: std::fmt::Debug>(label: &str, result: tollgate::Result<T>) -> bool {
    match result {
        Ok(_) => true,
        Err(Error::Forbidden(_)) => false,
        Err(other) => panic!("{label}: expected success or forbidden, got {other:?}"),
    }
}

/// Asserts that `principal`, acting for `user`, may do exactly what `role` allows through the facade:
/// list users and promote itself (admins), create and change its own tokens (users and admins), and
/// read its own tokens (everybody).
async fn assert_acts_as(fx: &Fixture, label: &str, principal: &Principal, user: &UserRecord, own_token: TokenId) {
    let role = fx.users.show(&Principal::Operator, &user.id).await.unwrap().role;
    let label = format!("{label} acting as {role}");
    assert_eq!(principal.level(), role.max_permission(), "{label}: the principal's level");
    assert_eq!(principal.user_id(), Some(user.id), "{label}: acts for its user");
    let admin = role == Role::Admin;
    let standard = role >= Role::User;

    let listed = fx.users.list(principal, &UserFilter::default(), &PageRequest::default()).await;
    assert_eq!(allowed(&format!("{label}: list users"), listed), admin, "{label}: list users");
    let promoted = fx.users.set_role(&Caller::new(principal.clone()), &user.id, Role::Admin).await;
    assert_eq!(allowed(&format!("{label}: promote itself"), promoted), admin, "{label}: promote itself");
    assert_eq!(fx.users.show(&Principal::Operator, &user.id).await.unwrap().role, role, "{label}: role unchanged");

    let mut token = fx.new_token("more", user.id);
    token.permission = Permission::ReadOnly;
    let created = fx.tokens.create(principal, token).await;
    assert_eq!(allowed(&format!("{label}: create a token"), created), standard, "{label}: create its own token");
    let patch = TokenPatch { name: Some(tollgate::TokenName::parse("renamed").unwrap()), ..TokenPatch::default() };
    let updated = fx.tokens.update(principal, &own_token, &patch).await;
    assert_eq!(allowed(&format!("{label}: update a token"), updated), standard, "{label}: change its own token");
    let mut above = fx.new_token("above", user.id);
    above.permission = Permission::Admin;
    let above = fx.tokens.create(principal, above).await;
    assert_eq!(allowed(&format!("{label}: admin token"), above), admin, "{label}: grant admin");

    let own = fx.tokens.list(principal, &TokenFilter::default(), &PageRequest::default()).await.unwrap();
    let only_own = own.items.iter().all(|record| record.owner == OwnerId::User(user.id));
    assert!(admin || only_own, "{label}: lists only its own tokens");
    let theirs = TokenFilter { owner: Some(OwnerId::User(fx.admin.id)), ..TokenFilter::default() };
    let listed = fx.tokens.list(principal, &theirs, &PageRequest::default()).await;
    assert_eq!(allowed(&format!("{label}: list others' tokens"), listed), admin, "{label}: list others' tokens");
    assert!(fx.tokens.show(principal, &own_token).await.is_ok(), "{label}: reads its own token");
}

/// The principal of a token secret now, through `authenticate_token`, checked against `verify`.
async fn token_principal(fx: &Fixture, secret: &str, expected: Permission) -> Principal {
    let context = fx.tokens.verify(secret, &VerifyRequest::default()).await.unwrap();
    assert_eq!(context.effective_permission, expected, "verify's effective permission");
    let (context, principal) = fx.users.authenticate_token(secret, &VerifyRequest::default()).await.unwrap();
    assert_eq!(context.effective_permission, expected, "authenticate_token's effective permission");
    assert_eq!(principal, fx.users.principal_for_token(&context));
    assert_eq!(principal.level(), expected, "the token principal's level");
    principal
}

#[tokio::test]
async fn a_demoted_users_jwt_acts_with_the_new_role_on_the_next_request() {
    let fx = Fixture::new().await;
    for (index, (from, to)) in PAIRS.into_iter().enumerate() {
        let user = fx.user(&format!("jwt-{index}"), from).await;
        let own_token = fx.tokens.create(&Principal::Operator, fx.new_token("own", user.id)).await.unwrap().record.id;
        let session = fx.users.login(user.username.as_str(), presented(PASSWORD), None).await.unwrap();
        let access = session.access_token.expose().to_owned();
        let before = fx.users.authenticate_access(&access).await.unwrap().principal;
        assert_acts_as(&fx, &format!("JWT {from}→{to}, before"), &before, &user, own_token).await;

        fx.users.set_role(&fx.as_admin(), &user.id, to).await.unwrap();
        let after = fx.users.authenticate_access(&access).await.unwrap();
        assert_eq!(after.user.role, to);
        assert!(matches!(after.principal, Principal::User { role, .. } if role == to), "{:?}", after.principal);
        assert_acts_as(&fx, &format!("JWT {from}→{to}, after"), &after.principal, &user, own_token).await;

        fx.users.set_role(&fx.as_admin(), &user.id, from).await.unwrap();
        let again = fx.users.authenticate_access(&access).await.unwrap().principal;
        assert_acts_as(&fx, &format!("JWT {from}→{to}, promoted back"), &again, &user, own_token).await;
    }
}

#[tokio::test]
async fn a_demoted_users_tokens_act_with_the_new_role_on_the_next_request_even_when_cached() {
    let fx = Fixture::new().await;
    for (index, (from, to)) in PAIRS.into_iter().enumerate() {
        let user = fx.user(&format!("token-{index}"), from).await;
        // One token of every level the user may hold, issued by the user itself (the top one is the
        // principal under test) and below it by the operator.
        let mut secrets = Vec::new();
        for permission in Permission::ALL.into_iter().filter(|level| *level <= from.max_permission()) {
            let mut token = fx.new_token(&format!("{permission}"), user.id);
            token.permission = permission;
            let creator = if permission == from.max_permission() { user.principal() } else { Principal::Operator };
            let created = fx.tokens.create(&creator, token).await.unwrap();
            assert_eq!(created.record.owner, OwnerId::User(user.id));
            secrets.push((permission, created.secret.expose().to_owned(), created.record.id));
        }
        let (top, top_secret, top_id) = secrets.last().cloned().unwrap();
        let before = token_principal(&fx, &top_secret, top).await;
        assert_acts_as(&fx, &format!("token {from}→{to}, before"), &before, &user, top_id).await;
        // Every token verified again just before the demotion: all of them are cached with the old role.
        fx.tokens.invalidate_cache();
        for (permission, secret, _) in &secrets {
            token_principal(&fx, secret, *permission).await;
        }
        assert_eq!(fx.tokens.cached_tokens(), secrets.len(), "the tokens are served from the cache now");

        fx.users.set_role(&fx.as_admin(), &user.id, to).await.unwrap();
        for (permission, secret, id) in &secrets {
            let capped = (*permission).min(to.max_permission());
            let after = token_principal(&fx, secret, capped).await;
            let record = fx.tokens.show(&Principal::Operator, id).await.unwrap();
            assert_eq!((record.permission, record.owner_role), (*permission, Some(to)), "the row keeps its level");
            assert_eq!(record.effective_permission(), capped);
            if *permission == top {
                assert_acts_as(&fx, &format!("token {from}→{to}, after"), &after, &user, top_id).await;
            }
        }

        fx.users.set_role(&fx.as_admin(), &user.id, from).await.unwrap();
        for (permission, secret, _) in &secrets {
            token_principal(&fx, secret, *permission).await;
        }
        let again = token_principal(&fx, &top_secret, top).await;
        assert_acts_as(&fx, &format!("token {from}→{to}, promoted back"), &again, &user, top_id).await;
    }
}

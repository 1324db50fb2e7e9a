//! The user lifecycle through `UserService`: permissions, self-protection, the last admin, audit.

mod identity_common;
use identity_common as common;

use common::{Fixture, PASSWORD, new_user, operator, password, presented};
use tollgate::{
    Caller, Email, Error, OwnerId, PageRequest, Permission, Principal, RefusalCode, Role, TokenStatus, UserFilter,
    UserStatus, Username, VerifyRequest,
};

#[tokio::test]
async fn create_show_find_and_list() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    assert_eq!((alice.username.as_str(), alice.role, alice.status), ("alice", Role::User, UserStatus::Active));
    assert_eq!(fx.users.show(&Principal::Operator, &alice.id).await.unwrap(), alice);
    let found = fx.users.find(&fx.admin.principal(), &Username::parse("ALICE").unwrap()).await.unwrap();
    assert_eq!(found.id, alice.id);
    // A user reads themselves, not others; others are NotFound rather than Forbidden.
    assert_eq!(fx.users.show(&alice.principal(), &alice.id).await.unwrap().id, alice.id);
    let hidden = fx.users.show(&alice.principal(), &fx.admin.id).await.unwrap_err();
    assert!(matches!(hidden, Error::NotFound { entity: "user" }), "{hidden:?}");
    assert!(matches!(
        fx.users.list(&alice.principal(), &UserFilter::default(), &PageRequest::default()).await,
        Err(Error::Forbidden(_))
    ));

    let filter = UserFilter { role: Some(Role::User), ..UserFilter::default() };
    let page = fx.users.list(&fx.admin.principal(), &filter, &PageRequest::default()).await.unwrap();
    assert_eq!(page.items.iter().map(|user| user.id).collect::<Vec<_>>(), [alice.id]);
    let bad = UserFilter { search: Some("x".repeat(65)), ..UserFilter::default() };
    let error = fx.users.list(&fx.admin.principal(), &bad, &PageRequest::default()).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref v) if v.field == "search"), "{error:?}");

    // Serialized records never carry the password hash.
    let json = serde_json::to_string(&alice).unwrap();
    assert!(!json.contains("$2b$") && !json.contains("password_hash"), "{json}");
}

#[tokio::test]
async fn only_admins_create_users_and_duplicates_conflict() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let by_user =
        fx.users.create(&Caller::new(alice.principal()), new_user("mallory", Role::Admin), password(PASSWORD)).await;
    assert!(matches!(by_user, Err(Error::Forbidden(_))), "{by_user:?}");
    let mut twin = new_user("ALICE", Role::Viewer);
    twin.email = Email::parse("other@example.com").unwrap();
    let duplicate = fx.users.create(&fx.as_admin(), twin, password(PASSWORD)).await.unwrap_err();
    assert!(matches!(duplicate, Error::Conflict(ref message) if message.contains("username")), "{duplicate:?}");
    let hashes_before = fx.users.password_hashes();
    let weak = tollgate::Password::new("short".to_owned()).unwrap_err();
    assert_eq!(weak.field, "password");
    assert_eq!(fx.users.password_hashes(), hashes_before);
}

#[tokio::test]
async fn admins_cannot_suspend_delete_or_demote_themselves() {
    let fx = Fixture::new().await;
    let second = fx.user("second", Role::Admin).await;
    let me = fx.as_admin();
    let forbidden = |result: tollgate::Result<tollgate::UserRecord>| matches!(result, Err(Error::Forbidden(_)));
    assert!(forbidden(fx.users.suspend(&me, &fx.admin.id, "testing").await));
    assert!(forbidden(fx.users.delete(&me, &fx.admin.id, None).await));
    assert!(forbidden(fx.users.set_role(&me, &fx.admin.id, Role::User).await));
    // An admin token of the same user is bound by the same rule.
    let token_of_admin = Caller::new(Principal::Token {
        id: tollgate::TokenId::generate(),
        owner: OwnerId::User(fx.admin.id),
        permission: Permission::Admin,
    });
    assert!(forbidden(fx.users.suspend(&token_of_admin, &fx.admin.id, "testing").await));
    // Another admin may.
    let demoted = fx.users.set_role(&Caller::new(second.principal()), &fx.admin.id, Role::User).await.unwrap();
    assert_eq!(demoted.role, Role::User);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed_even_by_the_operator() {
    let fx = Fixture::new().await;
    let conflict = |result: tollgate::Result<tollgate::UserRecord>| matches!(result, Err(Error::Conflict(_)));
    assert!(conflict(fx.users.suspend(&operator(), &fx.admin.id, "compromised").await));
    assert!(conflict(fx.users.delete(&operator(), &fx.admin.id, None).await));
    assert!(conflict(fx.users.set_role(&operator(), &fx.admin.id, Role::Viewer).await));
    fx.user("backup", Role::Admin).await;
    let suspended = fx.users.suspend(&operator(), &fx.admin.id, "compromised").await.unwrap();
    assert_eq!((suspended.status, suspended.status_reason.as_deref()), (UserStatus::Suspended, Some("compromised")));
}

#[tokio::test]
async fn every_change_is_audited_with_actor_reason_and_address() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let caller = fx.as_admin().with_ip(Some("198.51.100.4".parse().unwrap()));
    fx.users.set_role(&caller, &alice.id, Role::Viewer).await.unwrap();
    fx.users.suspend(&caller, &alice.id, "left the team").await.unwrap();
    fx.users.activate(&caller, &alice.id).await.unwrap();
    fx.users.reset_password(&caller, &alice.id, password("a brand new password"), true).await.unwrap();
    fx.users.delete(&caller, &alice.id, Some("gone")).await.unwrap();
    let page = fx
        .store
        .list_audit(
            &tollgate::AuditFilter { target: Some(alice.id.to_string()), ..Default::default() },
            &PageRequest::first(20),
        )
        .await
        .unwrap();
    let mut entries = page.items;
    entries.reverse();
    let actions: Vec<_> = entries.iter().map(|entry| entry.event.action.as_str()).collect();
    assert_eq!(
        actions,
        ["user.create", "user.set_role", "user.suspend", "user.activate", "user.reset_password", "user.delete"]
    );
    for entry in &entries[1..] {
        assert_eq!(entry.event.actor.as_str(), fx.admin.id.to_string());
        assert_eq!(entry.event.ip, Some("198.51.100.4".parse().unwrap()));
    }
    assert_eq!(entries[1].event.before.as_ref().unwrap()["role"], "user");
    assert_eq!(entries[1].event.after.as_ref().unwrap()["role"], "viewer");
    assert_eq!(entries[2].event.reason.as_deref(), Some("left the team"));
    // No audit entry carries a password or a hash.
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("brand new") && !text.contains("$2b$"), "{text}");
    // A deleted user is final.
    assert!(matches!(fx.users.activate(&caller, &alice.id).await, Err(Error::Conflict(_))));
}

#[tokio::test]
async fn a_suspension_needs_a_reason_and_reasons_are_bounded() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    for reason in ["", "  ", &"x".repeat(1025), "bad\u{0}reason"] {
        let error = fx.users.suspend(&fx.as_admin(), &alice.id, reason).await.unwrap_err();
        assert!(matches!(error, Error::Validation(ref v) if v.field == "reason"), "{reason:?}: {error:?}");
    }
    assert_eq!(fx.users.show(&Principal::Operator, &alice.id).await.unwrap().status, UserStatus::Active);
}

#[tokio::test]
async fn a_token_carries_no_more_rights_than_its_user_has_now() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::Admin).await;
    let mut token = fx.new_token("ops", alice.id);
    token.permission = Permission::Admin;
    let created = fx.tokens.create(&Principal::Operator, token).await.unwrap();
    let (context, principal) =
        fx.users.authenticate_token(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!((context.effective_permission, principal.level()), (Permission::Admin, Permission::Admin));
    assert_eq!(principal.user_id(), Some(alice.id));

    fx.users.set_role(&fx.as_admin(), &alice.id, Role::Viewer).await.unwrap();
    let (context, principal) =
        fx.users.authenticate_token(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!(context.record.permission, Permission::Admin, "the token itself is unchanged");
    assert_eq!(context.effective_permission, Permission::ReadOnly, "but it acts with the user's current role");
    assert_eq!(principal.level(), Permission::ReadOnly);

    // A service account's token keeps its own permission.
    let mut service = fx.new_token("svc", fx.service_account("billing").await);
    service.permission = Permission::ReadOnly;
    let service = fx.tokens.create(&Principal::Operator, service).await.unwrap();
    let (_, principal) = fx.users.authenticate_token(service.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!((principal.level(), principal.user_id()), (Permission::ReadOnly, None));
    assert_eq!(principal.owner_id(), Some(service.record.owner));
}

#[tokio::test]
async fn a_suspended_users_tokens_are_refused_at_once_even_when_cached() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let by_operator = fx.tokens.create(&Principal::Operator, fx.new_token("ci", alice.id)).await.unwrap();
    let by_herself = fx.tokens.create(&alice.principal(), fx.new_token("laptop", alice.id)).await.unwrap();
    for created in [&by_operator, &by_herself] {
        fx.tokens.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    }
    assert_eq!(fx.tokens.cached_tokens(), 2, "both tokens are served from the cache now");

    fx.users.suspend(&fx.as_admin(), &alice.id, "laptop stolen").await.unwrap();
    for created in [&by_operator, &by_herself] {
        let refused = fx.tokens.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap_err();
        assert!(matches!(refused, Error::Refused(ref r) if r.code == RefusalCode::Revoked), "{refused:?}");
        let record = fx.tokens.show(&Principal::Operator, &created.record.id).await.unwrap();
        assert_eq!(record.status(fx.now()), TokenStatus::Revoked);
    }
    // No new token can be issued to the suspended user.
    let again = fx.tokens.create(&Principal::Operator, fx.new_token("again", alice.id)).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let refused = fx.users.login("alice", presented(PASSWORD), None).await.unwrap_err();
    assert!(matches!(refused, Error::Refused(ref r) if r.code == RefusalCode::InvalidCredentials));
    // Activation does not bring the revoked tokens back.
    fx.users.activate(&fx.as_admin(), &alice.id).await.unwrap();
    let still = fx.tokens.verify(by_operator.secret.expose(), &VerifyRequest::default()).await.unwrap_err();
    assert!(matches!(still, Error::Refused(ref r) if r.code == RefusalCode::Revoked), "{still:?}");
}

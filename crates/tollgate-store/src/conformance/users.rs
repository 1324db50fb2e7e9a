//! Conformance cases for [`UserStore`](crate::UserStore).

use std::time::Duration;

use tollgate_types::{
    Actor, AuditEvent, Email, OwnerId, OwnerName, Role, TokenStatus, UserId, UserRecord, UserStatus, Username,
};

use super::fixtures::{
    T0, at, audit, create_token, create_user, fake_password_hash, insert, join_all, owner, project, refuses_missing,
    sorted, start_session, user_insert, user_owner,
};
use crate::{LoginFailure, PageRequest, PasswordChange, StatusChange, Store, StoreError, UserFilter};

fn change(id: UserId, status: UserStatus, seconds: i64) -> StatusChange {
    StatusChange { id, status, reason: Some(format!("test {status}")), at: at(seconds) }
}

async fn set_status(
    store: &dyn Store,
    user: &UserRecord,
    status: UserStatus,
    seconds: i64,
) -> crate::Result<UserRecord> {
    let event = audit(&format!("user.{status}"), user.id, at(seconds));
    store.set_user_status(&change(user.id, status, seconds), &event).await.map(|changed| changed.record)
}

fn actions(chain: &[tollgate_types::AuditEntry]) -> Vec<&str> {
    chain.iter().map(|entry| entry.event.action.as_str()).collect()
}

/// Every field survives a round trip; lookups by id and by username agree; the hash is only in credentials.
pub async fn user_insert_and_get_round_trip(store: &dyn Store) {
    let mut insert = user_insert("alice", Role::Admin, T0);
    insert.user.must_change_password = true;
    let created = store.insert_user(&insert, &audit("user.create", insert.id, T0)).await.unwrap();
    assert_eq!(created.id, insert.id);
    assert_eq!(created.username.as_str(), "alice");
    assert_eq!(created.email.as_str(), "alice@example.com");
    assert_eq!((created.role, created.status), (Role::Admin, UserStatus::Active));
    assert!(created.must_change_password);
    assert_eq!((created.failed_logins, created.locked_until, created.last_login_at), (0, None, None));
    assert_eq!((created.created_at, created.updated_at, created.password_changed_at), (T0, T0, T0));
    assert_eq!(store.user(&insert.id).await.unwrap(), created);
    let credentials = store.user_credentials(&Username::parse("ALICE").unwrap()).await.unwrap().expect("found");
    assert_eq!(credentials.record, created);
    assert_eq!(credentials.password_hash, insert.password_hash);
    assert!(store.user_credentials(&Username::parse("bob").unwrap()).await.unwrap().is_none());
    assert_eq!(actions(&store.audit_chain(0, 10).await.unwrap()), ["user.create"]);
}

/// Usernames and emails are unique whatever their case, and a deleted user keeps both taken.
pub async fn usernames_and_emails_are_unique_case_insensitively(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let mut same_name = user_insert("Alice", Role::User, T0);
    same_name.user.email = Email::parse("other@example.com").unwrap();
    let error = store.insert_user(&same_name, &audit("user.create", same_name.id, T0)).await.unwrap_err();
    assert!(matches!(&error, StoreError::Conflict(message) if message.contains("username")), "{error:?}");
    let mut same_email = user_insert("alice2", Role::User, T0);
    same_email.user.email = Email::parse("ALICE@Example.com").unwrap();
    let error = store.insert_user(&same_email, &audit("user.create", same_email.id, T0)).await.unwrap_err();
    assert!(matches!(&error, StoreError::Conflict(message) if message.contains("email")), "{error:?}");

    set_status(store, &alice, UserStatus::Deleted, 1).await.unwrap();
    let again = user_insert("alice", Role::User, T0);
    let error = store.insert_user(&again, &audit("user.create", again.id, T0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let page = store.list_users(&UserFilter::default(), &PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

/// Unknown ids are `NotFound` for every operation that names one.
pub async fn missing_user_is_not_found(store: &dyn Store) {
    let id = UserId::generate();
    let event = audit("user.update", id, T0);
    let not_found = |result: crate::Result<UserRecord>| matches!(result, Err(StoreError::NotFound { entity: "user" }));
    assert!(not_found(store.user(&id).await));
    let status = store.set_user_status(&change(id, UserStatus::Suspended, 1), &event).await;
    assert!(matches!(status, Err(StoreError::NotFound { entity: "user" })), "{status:?}");
    assert!(not_found(store.set_user_role(&id, Role::Admin, T0, &event).await));
    let password = PasswordChange { id, password_hash: fake_password_hash(1), must_change_password: false, at: T0 };
    assert!(not_found(store.set_password(&password, &event).await));
    assert!(not_found(store.unlock_user(&id, T0, &event).await));
    assert!(not_found(store.set_user_email(&id, &Email::parse("ghost@example.com").unwrap(), T0, &event).await));
    let failure = LoginFailure { id, at: T0, max_failures: 5, lock_for: Duration::from_secs(60), suppressed: false };
    assert!(not_found(store.record_login_failure(&failure, &event).await));
}

/// Filters combine (role, status, literal search in username or email) and pages cover everything once.
pub async fn list_users_filters_and_pages(store: &dyn Store) {
    let admin = create_user(store, "root_admin", Role::Admin).await;
    let alice = create_user(store, "alice", Role::User).await;
    let bob = create_user(store, "bob", Role::Viewer).await;
    let percent = create_user(store, "pct-user", Role::User).await;
    set_status(store, &bob, UserStatus::Suspended, 1).await.unwrap();
    let ids = |items: Vec<UserRecord>| items.into_iter().map(|user| user.id).collect::<Vec<_>>();
    let list = |filter: UserFilter| async move {
        ids(store.list_users(&filter, &PageRequest::first(100)).await.unwrap().items)
    };

    assert_eq!(list(UserFilter::default()).await, [percent.id, bob.id, alice.id, admin.id]);
    assert_eq!(list(UserFilter { role: Some(Role::User), ..Default::default() }).await, [percent.id, alice.id]);
    assert_eq!(list(UserFilter { status: Some(UserStatus::Suspended), ..Default::default() }).await, [bob.id]);
    let search = |text: &str| UserFilter { search: Some(text.to_owned()), ..Default::default() };
    assert_eq!(list(search("ALI")).await, [alice.id]);
    assert_eq!(list(search("example.com")).await.len(), 4);
    assert_eq!(list(search("_")).await, [admin.id], "'_' is matched literally, not as a wildcard");
    assert!(list(search("%")).await.is_empty(), "'%' is matched literally");

    let first = store.list_users(&UserFilter::default(), &PageRequest::first(3)).await.unwrap();
    assert_eq!(ids(first.items), [percent.id, bob.id, alice.id]);
    let second =
        store.list_users(&UserFilter::default(), &PageRequest::after(3, first.next_cursor.unwrap())).await.unwrap();
    assert_eq!(ids(second.items), [admin.id]);
    assert!(second.next_cursor.is_none());
    let bad = store.list_users(&UserFilter::default(), &PageRequest::after(3, "tok_nope")).await.unwrap_err();
    assert!(matches!(bad, StoreError::InvalidCursor));
}

/// Suspending revokes the user's live tokens (all of them, in a project or not, and only theirs:
/// tokens are swept by owner id, never by name) and sessions in the same transaction, auditing each
/// token; activating brings the user back but not the tokens; repeating a status is a no-op that
/// writes nothing.
pub async fn suspend_revokes_tokens_and_sessions(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let search = project(store, "search").await;
    let plain = create_token(store, "plain", &user_owner(&alice), None, 0).await;
    let in_project = create_token(store, "in project", &user_owner(&alice), Some(&search), 0).await;
    let other = create_token(store, "other", &owner(store, "bob").await, None, 0).await;
    // A token of someone else that merely shows alice's name is not hers.
    let mut namesake = insert("namesake", &owner(store, "carol").await, None, T0);
    namesake.owner_name = OwnerName::parse("alice").unwrap();
    store.insert_token(&namesake, &audit("token.create", namesake.id, T0)).await.unwrap();
    let session = start_session(store, &alice, 1).await;

    let mut event = audit("user.suspend", alice.id, at(5));
    event.after = Some(serde_json::json!({ "status": "suspended" }));
    let changed = store.set_user_status(&change(alice.id, UserStatus::Suspended, 5), &event).await.unwrap();
    assert_eq!(changed.record.status, UserStatus::Suspended);
    assert_eq!(changed.record.status_reason.as_deref(), Some("test suspended"));
    assert_eq!(changed.revoked_sessions, 1);
    assert_eq!(sorted(changed.revoked_tokens.clone()), sorted(vec![plain.id, in_project.id]));
    for id in [plain.id, in_project.id] {
        let token = store.token(&id).await.unwrap();
        assert_eq!(token.status(at(6)), TokenStatus::Revoked);
        assert!(token.revoke_reason.unwrap().contains("suspended"));
    }
    for id in [other.id, namesake.id] {
        assert_eq!(store.token(&id).await.unwrap().status(at(6)), TokenStatus::Active);
    }
    assert!(store.session(&session.id).await.unwrap().revoked_at.is_some());
    let chain = store.audit_chain(0, 100).await.unwrap();
    let tail = &chain[chain.len() - 3..];
    assert_eq!(actions(tail), ["user.suspend", "token.revoke", "token.revoke"]);
    assert_eq!(tail[0].event.after.as_ref().unwrap()["sessions_revoked"], 1);
    let targets: Vec<_> = tail[1..].iter().map(|entry| entry.event.target.parse().unwrap()).collect();
    assert_eq!(sorted(targets), sorted(vec![plain.id, in_project.id]));

    let before = chain.len();
    set_status(store, &alice, UserStatus::Suspended, 6).await.unwrap();
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), before, "a repeated status writes nothing");
    let active = set_status(store, &alice, UserStatus::Active, 7).await.unwrap();
    assert_eq!(active.status, UserStatus::Active);
    assert_eq!(store.token(&plain.id).await.unwrap().status(at(8)), TokenStatus::Revoked);
}

/// The last active admin can be neither suspended, deleted nor demoted; with another active admin it can.
pub async fn last_active_admin_cannot_be_removed(store: &dyn Store) {
    let root = create_user(store, "root", Role::Admin).await;
    let conflict = |result: crate::Result<UserRecord>| matches!(result, Err(StoreError::Conflict(_)));
    assert!(conflict(set_status(store, &root, UserStatus::Suspended, 1).await));
    assert!(conflict(set_status(store, &root, UserStatus::Deleted, 1).await));
    assert!(conflict(store.set_user_role(&root.id, Role::User, at(1), &audit("user.set_role", root.id, at(1))).await));
    // A suspended admin does not count.
    let spare = create_user(store, "spare", Role::Admin).await;
    set_status(store, &spare, UserStatus::Suspended, 2).await.unwrap();
    assert!(conflict(set_status(store, &root, UserStatus::Suspended, 3).await));
    set_status(store, &spare, UserStatus::Active, 4).await.unwrap();
    let demoted = store.set_user_role(&root.id, Role::Viewer, at(5), &audit("user.set_role", root.id, at(5))).await;
    assert_eq!(demoted.unwrap().role, Role::Viewer);
    assert!(conflict(set_status(store, &spare, UserStatus::Deleted, 6).await));
    assert_eq!(store.user(&spare.id).await.unwrap().status, UserStatus::Active);
}

/// A deleted user stays deleted: no activation, no role or password change.
pub async fn deleted_users_stay_deleted(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    set_status(store, &alice, UserStatus::Deleted, 1).await.unwrap();
    let conflict = |result: crate::Result<UserRecord>| matches!(result, Err(StoreError::Conflict(_)));
    assert!(conflict(set_status(store, &alice, UserStatus::Active, 2).await));
    assert!(conflict(set_status(store, &alice, UserStatus::Suspended, 2).await));
    assert!(conflict(
        store.set_user_role(&alice.id, Role::Admin, at(2), &audit("user.set_role", alice.id, at(2))).await
    ));
    let password =
        PasswordChange { id: alice.id, password_hash: fake_password_hash(1), must_change_password: false, at: at(2) };
    assert!(conflict(store.set_password(&password, &audit("user.reset_password", alice.id, at(2))).await));
    let email = Email::parse("alice2@example.com").unwrap();
    assert!(conflict(store.set_user_email(&alice.id, &email, at(2), &audit("user.set_email", alice.id, at(2))).await));
    assert_eq!(store.user(&alice.id).await.unwrap().status, UserStatus::Deleted);
}

/// The failure that reaches the limit locks the account and resets the count; failures while locked
/// are audited but not counted; unlock clears everything and a second unlock writes nothing.
pub async fn login_failures_lock_and_unlock(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let failure = |seconds| LoginFailure {
        id: alice.id,
        at: at(seconds),
        max_failures: 3,
        lock_for: Duration::from_secs(900),
        suppressed: false,
    };
    let failed = |seconds| {
        let mut event = AuditEvent::new(Actor::id("anonymous"), "user.login_failed", alice.id, at(seconds));
        event.ip = Some("192.0.2.9".parse().unwrap());
        event
    };
    for (seconds, count) in [(1, 1), (2, 2)] {
        let record = store.record_login_failure(&failure(seconds), &failed(seconds)).await.unwrap();
        assert_eq!((record.failed_logins, record.locked_until), (count, None));
    }
    let locked = store.record_login_failure(&failure(3), &failed(3)).await.unwrap();
    assert_eq!(locked.locked_until, Some(at(903)));
    assert_eq!(locked.failed_logins, 0);
    assert!(locked.is_locked(at(902)) && !locked.is_locked(at(903)));
    let during = store.record_login_failure(&failure(4), &failed(4)).await.unwrap();
    assert_eq!((during.failed_logins, during.locked_until), (0, Some(at(903))));
    let chain = store.audit_chain(1, 100).await.unwrap();
    assert_eq!(
        actions(&chain),
        ["user.login_failed", "user.login_failed", "user.login_failed", "user.lock", "user.login_failed"]
    );
    assert_eq!(chain[3].event.ip, Some("192.0.2.9".parse().unwrap()));

    let unlocked = store.unlock_user(&alice.id, at(5), &audit("user.unlock", alice.id, at(5))).await.unwrap();
    assert_eq!((unlocked.failed_logins, unlocked.locked_until), (0, None));
    let count = store.audit_chain(0, 100).await.unwrap().len();
    store.unlock_user(&alice.id, at(6), &audit("user.unlock", alice.id, at(6))).await.unwrap();
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), count);
}

/// A suppressed failure is counted (and locks when it reaches the limit) without its own event;
/// the lock is written all the same.
pub async fn suppressed_failures_count_without_an_event(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let failure = |seconds, suppressed| LoginFailure {
        id: alice.id,
        at: at(seconds),
        max_failures: 2,
        lock_for: Duration::from_secs(60),
        suppressed,
    };
    let event = |seconds| AuditEvent::new(Actor::id("anonymous"), "user.login_failed", alice.id, at(seconds));
    let before = store.audit_chain(0, 100).await.unwrap().len();
    let counted = store.record_login_failure(&failure(1, true), &event(1)).await.unwrap();
    assert_eq!(counted.failed_logins, 1);
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), before, "no event for a suppressed failure");
    let locked = store.record_login_failure(&failure(2, true), &event(2)).await.unwrap();
    assert_eq!(locked.locked_until, Some(at(62)));
    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(actions(&chain[before..]), ["user.lock"]);
    store.record_login_failure(&failure(3, true), &event(3)).await.unwrap();
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), before + 1, "nor while locked");
}

/// A password change stores the new hash and ends the user's sessions.
pub async fn password_change_revokes_sessions(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let session = start_session(store, &alice, 1).await;
    let change =
        PasswordChange { id: alice.id, password_hash: fake_password_hash(7), must_change_password: true, at: at(9) };
    let record = store.set_password(&change, &audit("user.reset_password", alice.id, at(9))).await.unwrap();
    assert!(record.must_change_password);
    assert_eq!(record.password_changed_at, at(9));
    let credentials = store.user_credentials(&alice.username).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, fake_password_hash(7));
    assert!(store.session(&session.id).await.unwrap().revoked_at.is_some());
}

/// A rehash replaces the hash only while it is still the one read (a change meanwhile wins), keeps
/// sessions and `password_changed_at`, and is audited.
pub async fn rehash_keeps_sessions_and_loses_to_a_change(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let session = start_session(store, &alice, 1).await;
    let before = store.user_credentials(&alice.username).await.unwrap().unwrap();
    let event = audit("user.password_rehashed", alice.id, at(5));
    assert!(store.rehash_password(&alice.id, &before.password_hash, &fake_password_hash(8), &event).await.unwrap());
    let after = store.user_credentials(&alice.username).await.unwrap().unwrap();
    assert_eq!(after.password_hash, fake_password_hash(8));
    assert_eq!(after.record.password_changed_at, before.record.password_changed_at);
    assert!(store.session(&session.id).await.unwrap().revoked_at.is_none(), "sessions stay");
    let stale = audit("user.password_rehashed", alice.id, at(6));
    assert!(!store.rehash_password(&alice.id, &before.password_hash, &fake_password_hash(9), &stale).await.unwrap());
    let kept = store.user_credentials(&alice.username).await.unwrap().unwrap();
    assert_eq!(kept.password_hash, fake_password_hash(8), "a stale rehash changes nothing");
    let chain = store.audit_chain(0, 1_000).await.unwrap();
    assert_eq!(actions(&chain).iter().filter(|action| **action == "user.password_rehashed").count(), 1);
}

/// A token can only be issued to an existing, active user; a refused token leaves nothing behind.
pub async fn tokens_need_an_active_user(store: &dyn Store) {
    let ghost = create_user(store, "ghost", Role::User).await;
    let mut orphan = insert("orphan", &user_owner(&ghost), None, T0);
    orphan.token.owner = OwnerId::User(UserId::generate());
    let error = store.insert_token(&orphan, &audit("token.create", orphan.id, T0)).await.unwrap_err();
    assert!(refuses_missing(&error, "owner"), "{error:?}");
    let alice = create_user(store, "alice", Role::User).await;
    set_status(store, &alice, UserStatus::Suspended, 1).await.unwrap();
    let suspended = insert("suspended", &user_owner(&alice), None, T0);
    let error = store.insert_token(&suspended, &audit("token.create", suspended.id, T0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    set_status(store, &ghost, UserStatus::Deleted, 2).await.unwrap();
    let deleted = insert("deleted", &user_owner(&ghost), None, T0);
    let error = store.insert_token(&deleted, &audit("token.create", deleted.id, T0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    for refused in [orphan.id, suspended.id, deleted.id] {
        assert!(matches!(store.token(&refused).await, Err(StoreError::NotFound { .. })));
    }
    assert!(!actions(&store.audit_chain(0, 100).await.unwrap()).contains(&"token.create"));
    // Active again, alice can be issued tokens, shown under her username.
    set_status(store, &alice, UserStatus::Active, 3).await.unwrap();
    let issued = create_token(store, "issued", &user_owner(&alice), None, 4).await;
    assert_eq!((issued.owner, issued.owner_name), (OwnerId::User(alice.id), alice.username.to_owner()));
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

/// Login by email: found whatever its case or the user's status, with the password hash; unknown
/// addresses are `None`.
pub async fn user_by_email_finds_the_user_with_credentials(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let bob = create_user(store, "bob", Role::User).await;
    let found = store.user_by_email(&email("ALICE@example.COM")).await.unwrap().expect("found");
    assert_eq!(found.record, alice);
    assert_eq!(found.password_hash, fake_password_hash(0));
    assert!(store.user_by_email(&email("carol@example.com")).await.unwrap().is_none());
    assert!(store.user_by_email(&email("alice@example.org")).await.unwrap().is_none(), "no partial match");
    set_status(store, &bob, UserStatus::Suspended, 1).await.unwrap();
    let suspended = store.user_by_email(&email("bob@example.com")).await.unwrap().expect("found");
    assert_eq!(suspended.record.status, UserStatus::Suspended);
}

/// An email change is stored with its audit entry (before and after), frees the old address, is
/// refused as a conflict when another user (even a deleted one) holds the address in any case, and
/// repeating it writes nothing.
pub async fn email_change_is_audited_and_stays_unique(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let bob = create_user(store, "bob", Role::User).await;
    let carol = create_user(store, "carol", Role::User).await;
    set_status(store, &carol, UserStatus::Deleted, 1).await.unwrap();

    let changed = store
        .set_user_email(&alice.id, &email("Alice.New@Example.com"), at(2), &audit("user.set_email", alice.id, at(2)))
        .await
        .unwrap();
    assert_eq!(changed.email.as_str(), "alice.new@example.com");
    assert_eq!(changed.updated_at, at(2));
    assert_eq!(store.user(&alice.id).await.unwrap(), changed);
    let chain = store.audit_chain(0, 100).await.unwrap();
    let last = &chain.last().unwrap().event;
    assert_eq!((last.action.as_str(), last.target.as_str()), ("user.set_email", alice.id.to_string().as_str()));
    assert_eq!(last.before, Some(serde_json::json!({ "email": "alice@example.com" })));
    assert_eq!(last.after, Some(serde_json::json!({ "email": "alice.new@example.com" })));
    assert_eq!(store.user_by_email(&email("alice.new@example.com")).await.unwrap().unwrap().record.id, alice.id);
    assert!(store.user_by_email(&email("alice@example.com")).await.unwrap().is_none());

    let count = chain.len();
    let event = audit("user.set_email", bob.id, at(3));
    for taken in ["ALICE.NEW@example.com", "carol@example.com"] {
        let error = store.set_user_email(&bob.id, &email(taken), at(3), &event).await.unwrap_err();
        assert!(matches!(&error, StoreError::Conflict(message) if message.contains("email")), "{taken}: {error:?}");
    }
    assert_eq!(store.user(&bob.id).await.unwrap().email.as_str(), "bob@example.com");
    let again = store.set_user_email(&alice.id, &email("alice.new@example.com"), at(4), &event).await.unwrap();
    assert_eq!(again, changed, "the same address is a no-op");
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), count, "refusals and no-ops write nothing");
    // The address alice gave up is free again.
    let moved = store.set_user_email(&bob.id, &email("alice@example.com"), at(5), &event).await.unwrap();
    assert_eq!(moved.email.as_str(), "alice@example.com");
}

/// Two users racing for one address: exactly one gets it, the other is a conflict.
pub async fn concurrent_email_changes_to_one_address_let_one_win(store: &dyn Store) {
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol", "dave"] {
        users.push(create_user(store, name, Role::User).await);
    }
    let wanted = email("shared@example.com");
    let events: Vec<AuditEvent> = users.iter().map(|user| audit("user.set_email", user.id, at(1))).collect();
    let results = join_all(
        users.iter().zip(&events).map(|(user, event)| store.set_user_email(&user.id, &wanted, at(1), event)).collect(),
    )
    .await;
    let winners: Vec<_> = results.iter().filter_map(|result| result.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results.iter().filter(|result| result.is_err()).all(|result| matches!(result, Err(StoreError::Conflict(_))))
    );
    let holder = store.user_by_email(&wanted).await.unwrap().expect("one holder");
    assert_eq!(holder.record.id, winners[0].id);
}

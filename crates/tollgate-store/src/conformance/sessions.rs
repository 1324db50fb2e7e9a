//! Conformance cases for [`SessionStore`](crate::SessionStore).

use std::collections::HashSet;
use std::time::Duration;

use tollgate_types::{KeyId, Role, SessionId, UserStatus};

use super::fixtures::{at, audit, create_user, fake_password_hash, refresh_hash, session_start, start_session};
use crate::{
    LoginFailure, PageRequest, RefreshOutcome, RefreshRotation, RefreshTokenInsert, StatusChange, Store, StoreError,
};

fn rotation(session: &SessionId, from: u8, to: u8, seconds: i64) -> RefreshRotation {
    RefreshRotation {
        presented: refresh_hash(session, from),
        next: RefreshTokenInsert {
            hash: refresh_hash(session, to),
            key_id: KeyId(1),
            expires_at: at(seconds + 86_400),
        },
        at: at(seconds),
    }
}

async fn rotate(
    store: &dyn Store,
    session: &SessionId,
    from: u8,
    to: u8,
    seconds: i64,
) -> crate::Result<RefreshOutcome> {
    let user = store.session(session).await?.user_id;
    store
        .rotate_refresh(
            &rotation(session, from, to, seconds),
            &audit("session.refresh", user, at(seconds)),
            &audit("session.reuse_detected", user, at(seconds)),
        )
        .await
}

/// A started session reads back alone, with its user, and through its refresh token; login clears
/// the user's failed attempts and records the time.
pub async fn start_session_round_trip(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let failure =
        LoginFailure { id: alice.id, at: at(1), max_failures: 5, lock_for: Duration::from_secs(60), suppressed: false };
    store.record_login_failure(&failure, &audit("user.login_failed", alice.id, at(1))).await.unwrap();
    let start = session_start(&alice, 2);
    let session = store.start_session(&start, &audit("session.create", alice.id, at(2))).await.unwrap();
    assert_eq!(session.id, start.id);
    assert_eq!((session.user_id, session.generation, session.created_at), (alice.id, 1, at(2)));
    assert_eq!((session.expires_at, session.refreshed_at, session.revoked_at), (at(2 + 86_400), None, None));
    assert_eq!(session.ip, start.ip);
    assert!(session.is_live(at(3)));
    assert_eq!(store.session(&start.id).await.unwrap(), session);
    let joined = store.session_with_user(&start.id).await.unwrap().expect("found");
    assert_eq!(joined.session, session);
    assert_eq!(joined.user.id, alice.id);
    assert_eq!((joined.user.failed_logins, joined.user.last_login_at), (0, Some(at(2))));
    let lookup = store.refresh_token(&start.refresh.hash).await.unwrap().expect("found");
    assert_eq!((lookup.session, lookup.generation, lookup.used_at), (session, 1, None));
    assert_eq!(lookup.expires_at, start.refresh.expires_at);
    assert!(store.refresh_token(&refresh_hash(&start.id, 9)).await.unwrap().is_none());
    assert!(store.session_with_user(&SessionId::generate()).await.unwrap().is_none());
    assert!(matches!(store.session(&SessionId::generate()).await, Err(StoreError::NotFound { .. })));
}

/// No session starts for a suspended or locked user, or when the password changed after it was checked.
pub async fn start_session_refuses_users_who_cannot_log_in(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let mut changed_password = session_start(&alice, 1);
    changed_password.checked_password_hash = fake_password_hash(3);
    let error = store.start_session(&changed_password, &audit("session.create", alice.id, at(1))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");

    let failure =
        LoginFailure { id: alice.id, at: at(2), max_failures: 1, lock_for: Duration::from_secs(60), suppressed: false };
    store.record_login_failure(&failure, &audit("user.login_failed", alice.id, at(2))).await.unwrap();
    let locked = session_start(&alice, 3);
    let error = store.start_session(&locked, &audit("session.create", alice.id, at(3))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    start_session(store, &alice, 62).await; // the lock has ended

    let bob = create_user(store, "bob", Role::User).await;
    let suspend = StatusChange { id: bob.id, status: UserStatus::Suspended, reason: None, at: at(4) };
    store.set_user_status(&suspend, &audit("user.suspend", bob.id, at(4))).await.unwrap();
    let suspended = session_start(&bob, 5);
    let error = store.start_session(&suspended, &audit("session.create", bob.id, at(5))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(store.list_sessions(&bob.id, &PageRequest::first(10)).await.unwrap().items.is_empty());
    assert!(store.refresh_token(&suspended.refresh.hash).await.unwrap().is_none());
}

/// Each refresh uses the presented token and adds the next; presenting a used one revokes the family.
pub async fn refresh_rotates_and_reuse_revokes_the_family(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let session = start_session(store, &alice, 0).await;
    let RefreshOutcome::Rotated { session: second, user } = rotate(store, &session.id, 1, 2, 10).await.unwrap() else {
        panic!("first refresh rotates");
    };
    assert_eq!((second.generation, second.refreshed_at, second.expires_at), (2, Some(at(10)), at(10 + 86_400)));
    assert_eq!(user.id, alice.id);
    assert_eq!(store.refresh_token(&refresh_hash(&session.id, 1)).await.unwrap().unwrap().used_at, Some(at(10)));
    assert!(matches!(rotate(store, &session.id, 2, 3, 20).await.unwrap(), RefreshOutcome::Rotated { .. }));

    let reused = rotate(store, &session.id, 1, 4, 30).await.unwrap();
    let RefreshOutcome::Reused { session: revoked } = reused else { panic!("reuse detected: {reused:?}") };
    assert_eq!(revoked.revoked_at, Some(at(30)));
    assert!(store.refresh_token(&refresh_hash(&session.id, 4)).await.unwrap().is_none());
    // The newest token of the family is dead too, and a second replay changes nothing more.
    assert!(matches!(rotate(store, &session.id, 3, 5, 40).await.unwrap(), RefreshOutcome::Ended { .. }));
    assert!(matches!(rotate(store, &session.id, 1, 6, 50).await.unwrap(), RefreshOutcome::Ended { .. }));
    let chain = store.audit_chain(0, 100).await.unwrap();
    let count = |action: &str| chain.iter().filter(|entry| entry.event.action == action).count();
    assert_eq!((count("session.refresh"), count("session.reuse_detected")), (2, 1));
}

/// Refreshing changes nothing when the token expired, the session was revoked or the user is no
/// longer active; an unknown token is `NotFound`.
pub async fn refresh_of_ended_sessions_changes_nothing(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let expiring = start_session(store, &alice, 0).await;
    assert!(matches!(rotate(store, &expiring.id, 1, 2, 86_400).await.unwrap(), RefreshOutcome::Ended { .. }));
    assert_eq!(store.refresh_token(&refresh_hash(&expiring.id, 1)).await.unwrap().unwrap().used_at, None);

    let logged_out = start_session(store, &alice, 1).await;
    store.revoke_session(&logged_out.id, "logout", &audit("session.revoke", alice.id, at(2))).await.unwrap();
    assert!(matches!(rotate(store, &logged_out.id, 1, 2, 3).await.unwrap(), RefreshOutcome::Ended { .. }));

    let unknown = rotation(&SessionId::generate(), 1, 2, 3);
    let event = audit("session.refresh", alice.id, at(3));
    let error = store.rotate_refresh(&unknown, &event, &event).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
}

/// Revoking a session is idempotent and audited once.
pub async fn revoke_session_is_idempotent(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let session = start_session(store, &alice, 0).await;
    let first = store.revoke_session(&session.id, "logout", &audit("session.revoke", alice.id, at(5))).await.unwrap();
    assert_eq!((first.revoked_at, first.revoke_reason.as_deref()), (Some(at(5)), Some("logout")));
    assert!(!first.is_live(at(5)));
    let second = store.revoke_session(&session.id, "again", &audit("session.revoke", alice.id, at(9))).await.unwrap();
    assert_eq!(second, first);
    let revokes =
        store.audit_chain(0, 100).await.unwrap().iter().filter(|e| e.event.action == "session.revoke").count();
    assert_eq!(revokes, 1);
    let missing = store.revoke_session(&SessionId::generate(), "x", &audit("session.revoke", alice.id, at(9))).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

/// A user's sessions list newest first, page by page, and only theirs.
pub async fn list_sessions_pages_newest_first(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let bob = create_user(store, "bob", Role::User).await;
    let mut created = Vec::new();
    for seconds in 0..5 {
        created.push(start_session(store, &alice, seconds).await.id);
    }
    start_session(store, &bob, 9).await;
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_sessions(&alice.id, &page).await.unwrap();
        seen.extend(result.items.iter().map(|session| session.id));
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(2, cursor),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
}

/// Cleanup deletes sessions that ended before the cutoff, with their refresh tokens, and nothing else.
pub async fn cleanup_deletes_only_ended_sessions(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::User).await;
    let live = start_session(store, &alice, 100_000).await;
    let expired = start_session(store, &alice, 0).await;
    let revoked_long_ago = start_session(store, &alice, 1).await;
    store.revoke_session(&revoked_long_ago.id, "logout", &audit("session.revoke", alice.id, at(2))).await.unwrap();
    let deleted = store.delete_ended_sessions(at(90_000), &audit("session.cleanup", "sessions", at(100_001))).await;
    assert_eq!(deleted.unwrap(), 2);
    assert!(store.session(&live.id).await.is_ok());
    for gone in [expired.id, revoked_long_ago.id] {
        assert!(matches!(store.session(&gone).await, Err(StoreError::NotFound { .. })));
        assert!(store.refresh_token(&refresh_hash(&gone, 1)).await.unwrap().is_none());
    }
}

/// A login racing a suspension never leaves a live session behind, whichever commits first.
pub async fn concurrent_suspend_and_login_leave_no_live_session(store: &dyn Store) {
    let _admin = create_user(store, "root", Role::Admin).await;
    for round in 0..10 {
        let user = create_user(store, &format!("racer{round}"), Role::User).await;
        let start = session_start(&user, 1);
        let suspend = StatusChange { id: user.id, status: UserStatus::Suspended, reason: None, at: at(1) };
        let login_event = audit("session.create", user.id, at(1));
        let suspend_event = audit("user.suspend", user.id, at(1));
        let (login, suspended) =
            tokio::join!(store.start_session(&start, &login_event), store.set_user_status(&suspend, &suspend_event),);
        suspended.unwrap();
        if let Err(error) = &login {
            assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        }
        let sessions = store.list_sessions(&user.id, &PageRequest::first(10)).await.unwrap();
        assert!(sessions.items.iter().all(|session| session.revoked_at.is_some()), "round {round}: {sessions:?}");
    }
}

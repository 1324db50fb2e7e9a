//! Password login: lockout and unlock, the per-address failure limit, no account enumeration,
//! the 72-byte bcrypt limit, forced password changes.

mod identity_common;
use identity_common as common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Fixture, PASSWORD, operator, password, presented};
use tollgate::{Error, IpThrottlePolicy, LockoutPolicy, Principal, RefusalCode, Role, UserService};

fn code(error: &Error) -> Option<RefusalCode> {
    match error {
        Error::Refused(refusal) => Some(refusal.code),
        _ => None,
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes_and_admins_can_unlock() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    // Four failures, then a success: the count starts again.
    for _ in 0..4 {
        let error = fx.users.login("alice", presented("wrong password"), None).await.unwrap_err();
        assert_eq!(code(&error), Some(RefusalCode::InvalidCredentials));
    }
    assert_eq!(fx.users.show(&Principal::Operator, &alice.id).await.unwrap().failed_logins, 4);
    fx.users.login("alice", presented(PASSWORD), None).await.unwrap();
    assert_eq!(fx.users.show(&Principal::Operator, &alice.id).await.unwrap().failed_logins, 0);

    for _ in 0..5 {
        fx.users.login("alice", presented("wrong password"), None).await.unwrap_err();
    }
    let locked = fx.users.show(&Principal::Operator, &alice.id).await.unwrap();
    assert_eq!(locked.locked_until, Some(fx.now().saturating_add(Duration::from_secs(900))));
    // Even the right password is refused now, with the same answer as a wrong one.
    let refused = fx.users.login("alice", presented(PASSWORD), None).await.unwrap_err();
    assert_eq!(code(&refused), Some(RefusalCode::InvalidCredentials));
    let actions = fx.audit_actions().await;
    assert_eq!(actions.iter().filter(|action| *action == "user.lock").count(), 1);
    assert_eq!(actions.last().map(String::as_str), Some("user.login_failed"));

    fx.advance(899);
    assert!(fx.users.login("alice", presented(PASSWORD), None).await.is_err());
    fx.advance(1);
    fx.users.login("alice", presented(PASSWORD), None).await.unwrap();

    for _ in 0..5 {
        fx.users.login("alice", presented("wrong password"), None).await.unwrap_err();
    }
    let forbidden = fx.users.unlock(&tollgate::Caller::new(alice.principal()), &alice.id).await;
    assert!(matches!(forbidden, Err(Error::Forbidden(_))));
    let unlocked = fx.users.unlock(&fx.as_admin(), &alice.id).await.unwrap();
    assert_eq!((unlocked.failed_logins, unlocked.locked_until), (0, None));
    fx.users.login("alice", presented(PASSWORD), None).await.unwrap();
    assert!(fx.audit_actions().await.contains(&"user.unlock".to_owned()));
}

#[tokio::test]
async fn lockout_is_configurable() {
    let policy = LockoutPolicy { max_failures: 2, lock_for: Duration::from_secs(60) };
    let fx = Fixture::with(|builder| builder.lockout(policy)).await;
    let alice = fx.user("alice", Role::User).await;
    for _ in 0..2 {
        fx.users.login("alice", presented("wrong password"), None).await.unwrap_err();
    }
    assert!(fx.users.show(&Principal::Operator, &alice.id).await.unwrap().is_locked(fx.now()));
    fx.advance(60);
    fx.users.login("alice", presented(PASSWORD), None).await.unwrap();
}

#[tokio::test]
async fn one_address_cannot_lock_out_everyone() {
    let throttle = IpThrottlePolicy { max_failures: 3, window: Duration::from_secs(600) };
    let fx = Fixture::with(|builder| builder.ip_throttle(throttle)).await;
    let victims = [fx.user("alice", Role::User).await, fx.user("bob", Role::User).await];
    let attacker = ip("203.0.113.66");
    for name in ["alice", "bob", "alice"] {
        fx.users.login(name, presented("guess guess guess"), attacker).await.unwrap_err();
    }
    let bcrypt_runs = fx.users.password_verifications();
    let audited = fx.audit_actions().await.len();
    // The address is over its limit: refused before the account is looked at or counted.
    for name in ["alice", "bob", "carol"] {
        let error = fx.users.login(name, presented("guess guess guess"), attacker).await.unwrap_err();
        let Error::Refused(refusal) = &error else { panic!("{error:?}") };
        assert_eq!(refusal.code, RefusalCode::RateLimited);
        assert!(refusal.retry_after.is_some_and(|after| after > Duration::ZERO && after <= Duration::from_secs(600)));
    }
    assert_eq!(fx.users.password_verifications(), bcrypt_runs, "no bcrypt for a throttled address");
    assert_eq!(fx.audit_actions().await.len(), audited, "nothing counted against any account");
    for victim in &victims {
        let record = fx.users.show(&Principal::Operator, &victim.id).await.unwrap();
        assert!(record.failed_logins <= 2 && record.locked_until.is_none(), "{record:?}");
    }
    // The victims can still log in from their own addresses, and IPv6 neighbours in one /64 share a limit.
    fx.users.login("alice", presented(PASSWORD), ip("198.51.100.1")).await.unwrap();
    for host in ["2001:db8::1", "2001:db8::2", "2001:db8::3"] {
        fx.users.login("bob", presented("guess guess guess"), ip(host)).await.unwrap_err();
    }
    let error = fx.users.login("bob", presented(PASSWORD), ip("2001:db8::ff")).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::RateLimited));
    fx.advance(600);
    fx.users.login("bob", presented(PASSWORD), ip("2001:db8::ff")).await.unwrap();
}

/// Sixteen wrong passwords at once from one address, half through another process on the same
/// database: the limit is shared and taken before bcrypt, so exactly `max_failures` attempts run
/// bcrypt and the rest are refused at once.
#[tokio::test]
async fn concurrent_failures_from_one_address_in_two_processes_pass_the_limit_only_max_times() {
    let throttle = IpThrottlePolicy { max_failures: 3, window: Duration::from_secs(600) };
    let fx = Fixture::with(|builder| builder.ip_throttle(throttle)).await;
    fx.user("alice", Role::User).await;
    let other_store = tollgate::SqliteStore::open(&fx.path, &tollgate::SqliteOptions::default()).await.unwrap();
    let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[7; 32]).unwrap();
    let other_tokens =
        tollgate::TokenManager::builder(std::sync::Arc::new(other_store), hasher).clock(fx.clock.clone()).build();
    let other = common::owners::user_service_builder(&other_tokens).ip_throttle(throttle).build().unwrap();
    let before = fx.users.password_verifications() + other.password_verifications();
    let attacker = ip("203.0.113.7");
    let attempts: Vec<_> = (0..16)
        .map(|attempt| {
            let users = if attempt % 2 == 0 { fx.users.clone() } else { other.clone() };
            tokio::spawn(
                async move { users.login("alice", presented("guess guess guess"), attacker).await.unwrap_err() },
            )
        })
        .collect();
    let mut errors = Vec::new();
    for attempt in attempts {
        errors.push(attempt.await.unwrap());
    }
    let limited = errors.iter().filter(|error| code(error) == Some(RefusalCode::RateLimited)).count();
    let refused = errors.iter().filter(|error| code(error) == Some(RefusalCode::InvalidCredentials)).count();
    assert_eq!((refused, limited), (3, 13), "{errors:?}");
    let ran = fx.users.password_verifications() + other.password_verifications() - before;
    assert_eq!(ran, 3, "bcrypt ran only for the attempts that held a slot");
    // A success gives its slot back: the right password from a fresh address is not counted.
    let friend = ip("198.51.100.9");
    for _ in 0..5 {
        fx.users.login("alice", presented(PASSWORD), friend).await.unwrap();
    }
}

/// A hash made at a cheaper cost (a database from a `--bcrypt-cost 10` deployment, say) does not make
/// its user's refusals cheaper than an unknown user's: the check is padded to the configured cost,
/// and the first successful login stores the password at the configured cost.
#[tokio::test]
async fn a_user_hashed_at_a_lower_cost_is_refused_at_the_configured_cost_and_rehashed_on_success() {
    let fx = Fixture::new().await; // hashes at cost 4
    fx.user("old", Role::User).await;
    let dearer = common::owners::user_service_builder(&fx.tokens).insecure_bcrypt_cost_for_tests(6).build().unwrap();
    dearer.warm_up().await.unwrap();
    let before = dearer.password_work();
    dearer.login("old", presented("guess guess guess"), None).await.unwrap_err();
    let known = dearer.password_work() - before;
    dearer.login("nobody", presented("guess guess guess"), None).await.unwrap_err();
    let unknown = dearer.password_work() - before - known;
    assert_eq!((known, unknown), (1 << 6, 1 << 6), "the same bcrypt work for a known and an unknown user");

    // A successful login stores the password at the configured cost (once, audited).
    let hashes = dearer.password_hashes();
    dearer.login("old", presented(PASSWORD), None).await.unwrap();
    let username = tollgate::Username::parse("old").unwrap();
    let stored = fx.store.user_credentials(&username).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.cost(), 6);
    assert_eq!(dearer.password_hashes(), hashes + 1);
    dearer.login("old", presented(PASSWORD), None).await.unwrap();
    assert_eq!(dearer.password_hashes(), hashes + 1, "nothing to re-hash the second time");
    let rehashed = fx.audit_actions().await.iter().filter(|action| *action == "user.password_rehashed").count();
    assert_eq!(rehashed, 1);
}

/// A flood of failed logins does not grow the audit log one entry per attempt: per account and
/// address, the first ten of a minute are written in full and the rest become one summary with the
/// count; lockout still counts every attempt.
#[tokio::test]
async fn repeated_failures_within_a_minute_are_summarized_not_written_one_by_one() {
    let throttle = IpThrottlePolicy { max_failures: 1_000, window: Duration::from_secs(600) };
    let fx = Fixture::with(|builder| builder.ip_throttle(throttle)).await;
    fx.user("alice", Role::User).await;
    let attacker = ip("203.0.113.99");
    for _ in 0..50 {
        fx.users.login("alice", presented("guess guess guess"), attacker).await.unwrap_err();
        fx.users.login("nobody", presented("guess guess guess"), attacker).await.unwrap_err();
    }
    let count = |actions: &[String], action: &str| actions.iter().filter(|each| *each == action).count();
    let actions = fx.audit_actions().await;
    assert_eq!(count(&actions, "user.login_failed"), 20, "ten per account and address in the minute");
    assert_eq!(count(&actions, "user.lock"), 1, "lockout counted every attempt");
    fx.users.flush_login_failures(true).await.unwrap();
    let chain = fx.store.audit_chain(0, 1_000).await.unwrap();
    let summaries: Vec<_> = chain.iter().filter(|entry| entry.event.action == "user.login_failed_repeated").collect();
    assert_eq!(summaries.len(), 2);
    for summary in summaries {
        assert_eq!(summary.event.after.as_ref().unwrap()["count"], 40, "{summary:?}");
        assert_eq!(summary.event.ip, attacker);
    }
    // The next minute starts detailed again.
    fx.advance(60);
    fx.users.login("nobody", presented("guess guess guess"), attacker).await.unwrap_err();
    assert_eq!(count(&fx.audit_actions().await, "user.login_failed"), 21);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer_at_the_same_cost() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let suspended = fx.user("suspended", Role::User).await;
    fx.users.suspend(&operator(), &suspended.id, "testing").await.unwrap();
    let locked = fx.user("locked", Role::User).await;
    for _ in 0..5 {
        fx.users.login("locked", presented("wrong password"), None).await.unwrap_err();
    }

    let mut answers = Vec::new();
    for (username, attempt) in [
        ("alice", "wrong password"),
        ("nobody", "wrong password"),
        ("nobody", PASSWORD),
        ("not a valid username!", PASSWORD),
        ("suspended", PASSWORD),
        ("locked", PASSWORD),
    ] {
        let error = fx.refused_at_login_cost(username, fx.users.login(username, presented(attempt), None)).await;
        answers.push((format!("{error}"), code(&error)));
    }
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    assert_eq!(answers[0].1, Some(RefusalCode::InvalidCredentials));
    // The dummy hash unknown users are checked against has the configured cost.
    assert_eq!(fx.users.dummy_hash_cost(), Some(fx.users.bcrypt_cost()));
    // Unknown names are not recorded (a password typed into the username field must not land in the log).
    let log = serde_json::to_string(&fx.store.audit_chain(0, 1000).await.unwrap()).unwrap();
    assert!(!log.contains("nobody") && !log.contains("not a valid"), "{log}");
    let _ = (alice, locked);
}

#[tokio::test]
async fn passwords_over_72_bytes_are_refused_never_truncated() {
    let fx = Fixture::new().await;
    let exactly_72 = "p".repeat(72);
    let alice =
        fx.users.create(&operator(), common::new_user("alice", Role::User), password(&exactly_72)).await.unwrap();
    fx.users.login("alice", presented(&exactly_72), None).await.unwrap();
    let longer = format!("{exactly_72}X");
    let error = tollgate::Password::presented(longer.clone()).unwrap_err();
    assert_eq!(error.field, "password");
    assert!(error.reason.contains("72 bytes"));
    assert!(tollgate::Password::new(longer).is_err());
    let _ = alice;
}

#[tokio::test]
async fn a_forced_password_change_blocks_login_until_done() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let session = fx.users.login("alice", presented(PASSWORD), None).await.unwrap();
    fx.users.reset_password(&fx.as_admin(), &alice.id, password("temporary password 1"), true).await.unwrap();
    // The reset ended the existing session.
    let error = fx.users.authenticate_access(session.access_token.expose()).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::Revoked));

    let error = fx.users.login("alice", presented("temporary password 1"), None).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::PasswordChangeRequired));
    let error = fx.users.login("alice", presented("wrong password"), None).await.unwrap_err();
    assert_eq!(
        code(&error),
        Some(RefusalCode::InvalidCredentials),
        "a wrong password does not learn that a change is due"
    );
    let same = fx
        .users
        .change_password("alice", presented("temporary password 1"), password("temporary password 1"), None)
        .await;
    assert!(matches!(same, Err(Error::Validation(ref v)) if v.field == "new_password"));
    let wrong =
        fx.users.change_password("alice", presented("not it at all"), password("my own new password"), None).await;
    assert_eq!(code(&wrong.unwrap_err()), Some(RefusalCode::InvalidCredentials));
    fx.users
        .change_password("alice", presented("temporary password 1"), password("my own new password"), None)
        .await
        .unwrap();
    fx.users.login("alice", presented("my own new password"), None).await.unwrap();
    assert!(fx.users.login("alice", presented("temporary password 1"), None).await.is_err());
    assert!(fx.audit_actions().await.contains(&"user.change_password".to_owned()));
}

#[tokio::test]
async fn bcrypt_cost_is_twelve_by_default_and_never_below_ten_outside_tests() {
    let fx = Fixture::new().await;
    let build = |cost: Option<u32>| {
        let builder = UserService::builder(
            &fx.tokens,
            tollgate::JwtKeys::new("k1", &[9; 32]).unwrap(),
            tollgate::TokenHasher::new(tollgate::KeyId(1), &[7; 32]).unwrap(),
        );
        match cost {
            Some(cost) => builder.bcrypt_cost(cost).build(),
            None => builder.build(),
        }
    };
    assert_eq!(build(None).unwrap().bcrypt_cost(), 12);
    assert_eq!(build(Some(10)).unwrap().bcrypt_cost(), 10);
    assert!(matches!(build(Some(9)), Err(Error::Config(_))));
    assert!(matches!(build(Some(32)), Err(Error::Config(_))));
    let new_hash = fx.users.create(&operator(), common::new_user("costly", Role::Viewer), password(PASSWORD)).await;
    assert!(new_hash.is_ok());
}

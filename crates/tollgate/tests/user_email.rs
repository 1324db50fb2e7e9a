//! Users by email through `UserService`: the admin email change (authorization, audit with the client
//! address, conflicts) and login by email on the same path and at the same cost as login by username.

mod identity_common;
use identity_common as common;

use common::{Fixture, PASSWORD, operator, presented};
use tollgate::{Caller, Email, Error, RefusalCode, Role, UserId};

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

#[tokio::test]
async fn admins_change_emails_and_the_change_is_audited() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let bob = fx.user("bob", Role::User).await;

    // Not even for themselves: the email is a login name, moved by admins only.
    for caller in [Caller::new(alice.principal()), Caller::new(bob.principal())] {
        let refused = fx.users.set_email(&caller, &alice.id, email("mine@example.com")).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    }
    let mut admin = fx.as_admin();
    admin.ip = Some("192.0.2.44".parse().unwrap());
    let changed = fx.users.set_email(&admin, &alice.id, email("Alice@Work.example")).await.unwrap();
    assert_eq!(changed.email.as_str(), "alice@work.example");
    let chain = fx.store.audit_chain(0, 1000).await.unwrap();
    let entry = &chain.last().unwrap().event;
    assert_eq!(entry.action, "user.set_email");
    assert_eq!(entry.actor, fx.admin.principal().actor());
    assert_eq!(entry.ip, admin.ip);
    assert_eq!(entry.before.as_ref().unwrap()["email"], "alice@example.com");
    assert_eq!(entry.after.as_ref().unwrap()["email"], "alice@work.example");

    let taken = fx.users.set_email(&admin, &bob.id, email("ALICE@work.example")).await.unwrap_err();
    assert!(matches!(taken, Error::Conflict(ref message) if message.contains("email")), "{taken:?}");
    let unknown = fx.users.set_email(&operator(), &UserId::generate(), email("x@example.com")).await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound { entity: "user" }), "{unknown:?}");
    fx.users.delete(&operator(), &bob.id, None).await.unwrap();
    let deleted = fx.users.set_email(&operator(), &bob.id, email("bob2@example.com")).await.unwrap_err();
    assert!(matches!(deleted, Error::Conflict(_)), "{deleted:?}");
    assert!(Email::parse("not an email").is_err_and(|error| error.field == "email"));
}

#[tokio::test]
async fn login_by_email_follows_the_username_path_at_the_same_cost() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let session = fx.users.login_by_email("ALICE@example.com", presented(PASSWORD), None).await.unwrap();
    assert_eq!(session.user.id, alice.id);

    // After a change only the new address logs in.
    fx.users.set_email(&fx.as_admin(), &alice.id, email("a@new.example")).await.unwrap();
    fx.users.login_by_email("a@new.example", presented(PASSWORD), None).await.unwrap();

    let mut answers = Vec::new();
    for (address, attempt) in [
        ("a@new.example", "wrong password"),
        ("alice@example.com", PASSWORD),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let error = fx.refused_at_login_cost(address, fx.users.login_by_email(address, presented(attempt), None)).await;
        let Error::Refused(refusal) = &error else { panic!("{address}: {error:?}") };
        answers.push((error.to_string(), refusal.code));
    }
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    assert_eq!(answers[0].1, RefusalCode::InvalidCredentials);
    // Failures by email count against the account like failures by username.
    assert_eq!(fx.users.show(&operator().principal, &alice.id).await.unwrap().failed_logins, 1);
    let log = serde_json::to_string(&fx.store.audit_chain(0, 1000).await.unwrap()).unwrap();
    assert!(!log.contains("nobody") && !log.contains("not an email"), "unknown addresses are not recorded: {log}");
}

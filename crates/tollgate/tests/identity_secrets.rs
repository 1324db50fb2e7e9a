//! Passwords, API tokens, access JWTs and refresh tokens never appear in log output (captured at
//! TRACE with a test subscriber), in error messages or in `Debug` output.

mod capture;
mod identity_common;
use identity_common as common;

use capture::capture_logs;
use common::{Fixture, operator, password, presented};
use tollgate::{Principal, Role, VerifyRequest};

const INITIAL: &str = "initial secret password";
const WRONG: &str = "wrong secret password";
const RESET: &str = "reset secret password";
const CHANGED: &str = "changed secret password";

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_debug() {
    let (captured, _guard) = capture_logs();

    let fx = Fixture::new().await;
    let alice = fx.users.create(&operator(), common::new_user("alice", Role::User), password(INITIAL)).await.unwrap();
    let created = fx.tokens.create(&Principal::Operator, fx.new_token("ci", alice.id)).await.unwrap();
    fx.users.authenticate_token(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    let wrong = fx.users.login("alice", presented(WRONG), Some("192.0.2.1".parse().unwrap())).await.unwrap_err();
    let first = fx.users.login("alice", presented(INITIAL), None).await.unwrap();
    fx.users.authenticate_access(first.access_token.expose()).await.unwrap();
    let second = fx.users.refresh(first.refresh_token.expose(), None).await.unwrap();
    let reuse = fx.users.refresh(first.refresh_token.expose(), None).await.unwrap_err();
    let expired_access = fx.users.authenticate_access(second.access_token.expose()).await.unwrap_err();
    fx.users.reset_password(&fx.as_admin(), &alice.id, password(RESET), true).await.unwrap();
    let must_change = fx.users.login("alice", presented(RESET), None).await.unwrap_err();
    fx.users.change_password("alice", presented(RESET), password(CHANGED), None).await.unwrap();
    let third = fx.users.login("alice", presented(CHANGED), None).await.unwrap();
    fx.users.logout(third.refresh_token.expose(), None).await.unwrap();
    let too_long = tollgate::Password::new(format!("{INITIAL}{}", "x".repeat(80))).unwrap_err();
    fx.users.suspend(&fx.as_admin(), &alice.id, "done").await.unwrap();
    let suspended = fx.tokens.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap_err();

    let logs = captured.text();
    assert!(logs.contains("login") && logs.contains("user created"), "the subscriber captured events:\n{logs}");
    let exposed = [
        format!(
            "{wrong} {wrong:?} {reuse} {reuse:?} {expired_access:?} {must_change:?} {too_long} {too_long:?} {suspended:?}"
        ),
        format!("{first:?} {second:?} {third:?} {created:?} {:?}", password(INITIAL)),
        logs,
        serde_json::to_string(&fx.store.audit_chain(0, 1000).await.unwrap()).unwrap(),
    ];
    let secrets = [
        INITIAL.to_owned(),
        WRONG.to_owned(),
        RESET.to_owned(),
        CHANGED.to_owned(),
        created.secret.expose().to_owned(),
        first.access_token.expose().to_owned(),
        first.refresh_token.expose().to_owned(),
        second.access_token.expose().to_owned(),
        second.refresh_token.expose().to_owned(),
        third.refresh_token.expose().to_owned(),
    ];
    for text in &exposed {
        for secret in &secrets {
            // The token prefix and the JWT header are not secret; the rest is.
            let tail = &secret[secret.len() / 2..];
            assert!(!text.contains(tail), "a secret leaked: …{tail} in\n{text}");
        }
    }
}

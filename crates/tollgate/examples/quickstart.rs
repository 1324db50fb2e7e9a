//! The facade from its docs alone: an in-memory database, a service account, a token with a daily
//! request quota, verify until the quota says no, revoke. Run: `cargo run -p tollgate --example quickstart`.

use std::sync::Arc;

use tollgate::{
    Caller, Description, Error, JwtKeys, KeyId, LimitKey, LimitSpec, LimitSubject, Metering, Metric, NewServiceAccount,
    NewToken, OwnerId, Principal, RefusalCode, TokenHasher, TokenManager, TokenName, UserService, Username,
    VerifyRequest, Window,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // A real deployment opens "sqlite://tollgate.db" or "postgres://…" and keeps its keys in files
    // (`tollgate::load_or_create_key_file`); an example uses fixed ones.
    let store = tollgate::open("sqlite::memory:").await?;
    let metering = Metering::builder(Arc::clone(&store)).start().await?;
    let tokens =
        TokenManager::builder(store, TokenHasher::new(KeyId(1), &[7u8; 32])?).metering(metering.clone()).build();
    let users = UserService::builder(&tokens, JwtKeys::new("k1", &[9u8; 32])?, TokenHasher::new(KeyId(1), &[8u8; 32])?)
        .build()?;

    // Every token belongs to a user or a service account.
    let operator = Caller::operator();
    let account = NewServiceAccount { name: Username::parse("ci-runner")?, description: Description::default() };
    let owner = OwnerId::ServiceAccount(users.create_service_account(&operator, account).await?.id);
    let created = tokens.create(&Principal::Operator, NewToken::new(TokenName::parse("deploy")?, owner)).await?;
    println!("token {} created (the secret is shown once: {})", created.record.id, created.secret.display_hint());

    // Three requests a day, enforced by verify.
    let key =
        LimitKey { subject: LimitSubject::Token(created.record.id), metric: Metric::Requests, window: Window::Day };
    metering.set_limit(&Principal::Operator, LimitSpec::new(key, 3, false)?).await?;
    for attempt in 1..=4 {
        match tokens.verify(created.secret.expose(), &VerifyRequest::default()).await {
            Ok(context) => println!("request {attempt}: allowed for {}", context.record.owner_name),
            Err(Error::Refused(refusal)) if refusal.code == RefusalCode::QuotaExceeded => {
                println!("request {attempt}: refused, the daily quota is spent");
            }
            Err(other) => return Err(other),
        }
    }

    tokens.revoke(&Principal::Operator, &created.record.id, Some("example done")).await?;
    let refused = tokens.verify(created.secret.expose(), &VerifyRequest::default()).await;
    assert!(matches!(refused, Err(Error::Refused(refusal)) if refusal.code == RefusalCode::Revoked));
    println!("revoked: refused on the very next verify");
    tokens.flush().await?;
    metering.shutdown().await?;
    Ok(())
}

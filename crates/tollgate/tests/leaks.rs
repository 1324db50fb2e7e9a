//! Leak classification over a real SQLite file: every kind found by hash (agent credentials
//! included), states, revocation with reason `leaked` through the ordinary revocations, admins only.

mod identity_common;

use identity_common::Fixture;
use tollgate::{
    AgentName, AgentService, Caller, Description, LeakState, MasterKeys, Metadata, NewAgent, ProviderList, Role,
    SecretKind, TokenSecret, TokenStatus,
};

#[tokio::test]
async fn every_kind_is_classified_and_revoked_by_admins_only() {
    let fixture = Fixture::new().await;
    let owner = fixture.service_account("deployer").await;
    let token = fixture.tokens.create(&fixture.admin.principal(), fixture.new_token("deploy", owner)).await.unwrap();
    let keys = MasterKeys::load_or_create(&fixture.directory.path().join("vault.key")).unwrap();
    let agents = AgentService::builder(&fixture.tokens, keys).build();
    let agent = NewAgent {
        name: AgentName::parse("worker").unwrap(),
        owner,
        project: None,
        providers: ProviderList::default(),
        provider_key: None,
        description: Description::default(),
        metadata: Metadata::default(),
    };
    let agent = agents.create_agent(&Caller::operator(), agent).await.unwrap();
    let credential = agents.create_credential(&Caller::operator(), &agent.id, None, None).await.unwrap();

    let scanner = fixture.users.secret_scanner();
    let text = format!("a={}\nb={}\nc=tg_{}\n", token.secret.expose(), credential.secret.expose(), "x".repeat(49));
    let found: Vec<TokenSecret> = scanner.scan(text.as_bytes()).into_iter().map(|found| found.secret).collect();
    assert_eq!(found.len(), 2, "the third has no valid checksum");

    let viewer = fixture.user("vera", Role::Viewer).await;
    let refused = fixture.users.classify_leaks(&Caller::new(viewer.principal()), &found, true).await;
    assert!(matches!(refused, Err(tollgate::Error::Forbidden(_))), "{refused:?}");
    assert_eq!(fixture.tokens.show(&fixture.admin.principal(), &token.record.id).await.unwrap().revoked_at, None);

    let looked = fixture.users.classify_leaks(&fixture.as_admin(), &found, false).await.unwrap();
    assert_eq!((looked[0].kind, looked[0].state), (SecretKind::ApiToken, LeakState::Active));
    assert_eq!(looked[0].id.as_deref(), Some(token.record.id.to_string().as_str()));
    assert_eq!((looked[1].kind, looked[1].agent), (SecretKind::AgentCredential, Some(agent.id)));
    assert!(!format!("{looked:?}").contains(&token.secret.expose()[3..]));

    let revoked = fixture.users.classify_leaks(&fixture.as_admin(), &found, true).await.unwrap();
    assert!(revoked.iter().all(|leak| leak.revoked_now && leak.state == LeakState::Revoked), "{revoked:?}");
    let record = fixture.tokens.show(&fixture.admin.principal(), &token.record.id).await.unwrap();
    assert_eq!((record.status(fixture.now()), record.revoke_reason.as_deref()), (TokenStatus::Revoked, Some("leaked")));
    let actions = fixture.audit_actions().await;
    assert_eq!(actions.iter().filter(|action| *action == "token.revoke").count(), 2, "{actions:?}");

    // A secret of the right shape this deployment never issued.
    let stranger = TokenSecret::generate(fixture.tokens.prefix()).unwrap();
    let unknown = fixture.users.classify_leaks(&fixture.as_admin(), &[stranger], true).await.unwrap();
    assert_eq!((unknown[0].state, unknown[0].revoked_now, unknown[0].id.clone()), (LeakState::NotFound, false, None));
}

//! Limits and reports by id: an owner's limit governs every token of that owner, a project's limits
//! and usage belong to the project and its members, and usage naming a token the caller may not see
//! is refused like usage naming no token at all.

use tollgate::{
    Caller, Error, LimitSubject, Metric, NewToken, OwnerId, Principal, ProjectRole, RefusalCode, Role, TokenName,
    TokenRecord, UsageFilter, UsageInput, VerifyRequest, Window,
};

use crate::{Fixture, at, event, owners};

/// Creates a token of `owner`, by `creator`; returns its secret and record.
async fn token_by(fixture: &Fixture, creator: &Principal, owner: OwnerId, name: &str) -> (String, TokenRecord) {
    let token = NewToken::new(TokenName::parse(name).unwrap(), owner);
    let created = fixture.tokens.create(creator, token).await.expect("create a token");
    (created.secret.expose().to_owned(), created.record)
}

fn day() -> UsageFilter {
    UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
}

#[tokio::test]
async fn a_users_limit_governs_every_token_the_user_creates() {
    let fixture = Fixture::new().await;
    let alice = owners::user(&fixture.users, "alice", Role::User).await;
    let bob = owners::user(&fixture.users, "bob", Role::User).await;
    let owner = OwnerId::User(alice.id);
    let (first, _) = token_by(&fixture, &alice.principal(), owner, "laptop").await;
    let (second, _) = token_by(&fixture, &alice.principal(), owner, "ci").await;
    let (bobs, _) = token_by(&fixture, &bob.principal(), OwnerId::User(bob.id), "bob").await;
    let subject = LimitSubject::Owner(owner);
    fixture.limit(subject.clone(), Metric::Requests, Window::Day, 2, false).await;

    let request = VerifyRequest::default();
    fixture.tokens.verify(&first, &request).await.unwrap();
    fixture.tokens.verify(&second, &request).await.unwrap();
    for secret in [&first, &second] {
        let Err(Error::Refused(refusal)) = fixture.tokens.verify(secret, &request).await else {
            panic!("the user's limit of 2 is spent by both tokens together");
        };
        assert_eq!(refusal.code, RefusalCode::QuotaExceeded);
    }
    assert!(fixture.tokens.verify(&bobs, &request).await.is_ok(), "bob's tokens are not alice's");
    let statuses = fixture.metering.limit_status(&alice.principal(), Some(&subject)).await.unwrap();
    assert_eq!(statuses.iter().map(|status| status.used).collect::<Vec<_>>(), [2], "she reads her own limit");
    let theirs = fixture.metering.limit_status(&bob.principal(), Some(&subject)).await;
    assert!(matches!(theirs, Err(Error::Forbidden(_))), "{theirs:?}");
}

#[tokio::test]
async fn a_projects_limits_and_usage_belong_to_the_project_and_its_members() {
    let fixture = Fixture::new().await;
    let search = fixture.project("search").await;
    let alice = owners::user(&fixture.users, "alice", Role::User).await;
    let bob = owners::user(&fixture.users, "bob", Role::Viewer).await;
    let carol = owners::user(&fixture.users, "carol", Role::User).await;
    owners::join(&fixture.users, search, OwnerId::User(alice.id), ProjectRole::Member).await;
    owners::join(&fixture.users, search, OwnerId::User(bob.id), ProjectRole::Viewer).await;
    let mut bound = NewToken::new(TokenName::parse("search").unwrap(), OwnerId::User(alice.id));
    bound.project = Some(search);
    let bound = fixture.tokens.create(&alice.principal(), bound).await.unwrap();
    let (carols, carol_token) = token_by(&fixture, &carol.principal(), OwnerId::User(carol.id), "mine").await;
    let project = LimitSubject::Project(search);
    fixture.limit(project.clone(), Metric::Requests, Window::Day, 1, false).await;

    let request = VerifyRequest::default();
    fixture.tokens.verify(bound.secret.expose(), &request).await.unwrap();
    assert!(fixture.tokens.verify(bound.secret.expose(), &request).await.is_err(), "the project's cap is spent");
    for _ in 0..3 {
        fixture.tokens.verify(&carols, &request).await.expect("carol's own token spends nothing of the project's");
    }
    fixture.metering.record(event(&fixture, &bound.record, "openai/gpt-4o", 100, 10)).await.unwrap();
    fixture.metering.record(event(&fixture, &carol_token, "openai/gpt-4o", 999, 99)).await.unwrap();
    fixture.metering.flush().await.unwrap();

    let in_search = UsageFilter { project: Some(search), ..day() };
    for member in [&alice, &bob] {
        let report = fixture
            .metering
            .usage(&member.principal(), &in_search, None, &tollgate::PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!((report.totals.events, report.totals.input_tokens), (1, 100), "{}", member.username);
        let statuses = fixture.metering.limit_status(&member.principal(), Some(&project)).await.unwrap();
        assert_eq!(statuses[0].used, 1);
    }
    let outsider =
        fixture.metering.usage(&carol.principal(), &in_search, None, &tollgate::PageRequest::first(10)).await;
    assert!(matches!(outsider, Err(Error::NotFound { entity: "project" })), "{outsider:?}");
    let outsider = fixture.metering.limit_status(&carol.principal(), Some(&project)).await;
    assert!(matches!(outsider, Err(Error::NotFound { entity: "project" })), "{outsider:?}");
    let nowhere = UsageFilter { project: Some(tollgate::ProjectId::generate()), ..day() };
    let unknown = fixture.metering.usage(&carol.principal(), &nowhere, None, &tollgate::PageRequest::first(10)).await;
    assert!(matches!(unknown, Err(Error::NotFound { entity: "project" })), "exists or not: {unknown:?}");
}

#[tokio::test]
async fn usage_for_a_token_the_caller_may_not_see_is_refused_like_an_unknown_token() {
    let fixture = Fixture::new().await;
    let alice = owners::user(&fixture.users, "alice", Role::User).await;
    let (_, robot_token) = fixture.token("robot", None).await;
    let (_, own) = token_by(&fixture, &alice.principal(), OwnerId::User(alice.id), "mine").await;
    let input = |token_id: String| UsageInput {
        token_id,
        provider: "openai".into(),
        model: "gpt-4o".into(),
        input_tokens: 10,
        ..UsageInput::default()
    };
    let me = alice.principal();
    let theirs = fixture.metering.record_inputs(&me, &[input(robot_token.id.to_string())]).await.unwrap_err();
    let unknown = fixture.metering.record_inputs(&me, &[input(tollgate::TokenId::generate().to_string())]).await;
    let unknown = unknown.unwrap_err();
    assert!(matches!(theirs, Error::NotFound { entity: "token" }), "{theirs:?}");
    assert_eq!(theirs.to_string(), unknown.to_string(), "one answer whether the token exists or not");
    let limits = fixture.metering.limits(&me, Some(&LimitSubject::Token(robot_token.id))).await;
    assert!(matches!(limits, Err(Error::NotFound { entity: "token" })), "{limits:?}");
    assert_eq!(fixture.metering.record_inputs(&me, &[input(own.id.to_string())]).await.unwrap().len(), 1);

    // A viewer reads its own usage but may not record any, even for its own token.
    fixture.users.set_role(&Caller::operator(), &alice.id, Role::Viewer).await.unwrap();
    let viewer = fixture.users.show(&Principal::Operator, &alice.id).await.unwrap().principal();
    let refused = fixture.metering.record_inputs(&viewer, &[input(own.id.to_string())]).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
}

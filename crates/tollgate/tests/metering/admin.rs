//! Administering limits, rate limits and prices: who may, what is audited, what takes effect.

use std::time::Duration;

use tollgate::{
    AuditFilter, Error, LimitKey, LimitSpec, LimitSubject, Metric, ModelName, ModelPrice, OwnerId, PageRequest,
    Permission, PriceSource, Principal, ProviderName, RateLimitSpec, TokenId, UsageFilter, VerifyRequest, Window,
};

use crate::{Fixture, at, dollars, event};

fn spec(subject: LimitSubject, max: u64) -> LimitSpec {
    LimitSpec::new(LimitKey { subject, metric: Metric::Requests, window: Window::Day }, max, false).unwrap()
}

/// The audit log's actions, oldest first, without the fixture's setup (owners, projects, tokens).
async fn actions(fixture: &Fixture) -> Vec<String> {
    let page = fixture.store.list_audit(&AuditFilter::default(), &PageRequest::first(100)).await.unwrap();
    let setup = ["token.", "service_account.", "project."];
    page.items
        .into_iter()
        .rev()
        .map(|entry| entry.event.action)
        .filter(|action| !setup.iter().any(|prefix| action.starts_with(prefix)))
        .collect()
}

#[tokio::test]
async fn only_admins_change_limits_and_prices_and_every_change_is_audited() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    let standard = Principal::Token { id: token.id, owner: token.owner, permission: Permission::Standard };
    let admin = Principal::Token { id: token.id, owner: token.owner, permission: Permission::Admin };
    let subject = LimitSubject::Token(token.id);
    assert!(matches!(fixture.metering.set_limit(&standard, spec(subject.clone(), 5)).await, Err(Error::Forbidden(_))));
    fixture.metering.set_limit(&admin, spec(subject.clone(), 5)).await.unwrap();
    fixture.metering.set_limit(&admin, spec(subject.clone(), 9)).await.unwrap();
    let listed = fixture.metering.limits(&standard, Some(&subject)).await.unwrap();
    assert_eq!(listed.iter().map(|record| record.spec.max()).collect::<Vec<_>>(), [9], "owners read their limits");
    assert!(matches!(fixture.metering.limits(&standard, None).await, Err(Error::Forbidden(_))));
    let key = spec(subject.clone(), 0).key().clone();
    assert!(matches!(fixture.metering.remove_limit(&standard, &key).await, Err(Error::Forbidden(_))));
    fixture.metering.remove_limit(&admin, &key).await.unwrap();
    assert!(matches!(fixture.metering.remove_limit(&admin, &key).await, Err(Error::NotFound { entity: "limit" })));
    let unknown = spec(LimitSubject::Token(TokenId::generate()), 1);
    assert!(matches!(fixture.metering.set_limit(&admin, unknown).await, Err(Error::NotFound { entity: "token" })));
    let nobody = spec(LimitSubject::Owner(OwnerId::User(tollgate::UserId::generate())), 1);
    assert!(matches!(fixture.metering.set_limit(&admin, nobody).await, Err(Error::NotFound { entity: "owner" })));
    let nowhere = spec(LimitSubject::Project(tollgate::ProjectId::generate()), 1);
    assert!(matches!(fixture.metering.set_limit(&admin, nowhere).await, Err(Error::NotFound { entity: "project" })));

    let page = fixture.store.list_audit(&AuditFilter::default(), &PageRequest::first(100)).await.unwrap();
    let second_set = page.items.iter().find(|entry| entry.event.action == "limit.set" && entry.event.before.is_some());
    let second_set = second_set.expect("the replacing set records the limit before");
    assert_eq!(second_set.event.before.as_ref().unwrap()["max"], 5);
    assert_eq!(second_set.event.after.as_ref().unwrap()["max"], 9);
    assert_eq!(second_set.event.actor.as_str(), token.id.to_string());
    assert_eq!(actions(&fixture).await, ["limit.set", "limit.set", "limit.remove"]);
}

#[tokio::test]
async fn stored_prices_take_effect_at_once_and_removing_one_restores_the_list_price() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    let (provider, model) = (ProviderName::parse("openai").unwrap(), ModelName::parse("gpt-4o").unwrap());
    let listed = fixture.metering.price(&provider, &model).unwrap();
    assert_eq!((listed.source, listed.price.input_per_million()), (PriceSource::Shipped, dollars("2.50")));
    let cheaper = ModelPrice::new(provider.clone(), model.clone(), dollars("1.00"), dollars("2.00")).unwrap();
    let entry = fixture.metering.set_price(&Principal::Operator, cheaper).await.unwrap();
    assert_eq!((entry.source, entry.updated_at), (PriceSource::Stored, Some(at(crate::START))));
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 1_000_000, 0)).await.unwrap();
    let restored = fixture.metering.remove_price(&Principal::Operator, &provider, &model).await.unwrap();
    assert_eq!(restored.map(|entry| entry.source), Some(PriceSource::Shipped));
    let custom = ModelPrice::new(
        ProviderName::parse("acme").unwrap(),
        ModelName::parse("fast-1").unwrap(),
        dollars("0.01"),
        dollars("0.02"),
    )
    .unwrap();
    fixture.metering.set_price(&Principal::Operator, custom).await.unwrap();
    let removed = fixture
        .metering
        .remove_price(&Principal::Operator, &ProviderName::parse("acme").unwrap(), &ModelName::parse("fast-1").unwrap())
        .await;
    assert_eq!(removed.unwrap(), None, "no list price to fall back to");
    fixture.metering.flush().await.unwrap();
    let day = UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    let report =
        fixture.metering.usage(&Principal::Operator, &day, None, &tollgate::PageRequest::first(1)).await.unwrap();
    assert_eq!(report.totals.cost, dollars("1.00"), "priced at the stored override");
    assert_eq!(actions(&fixture).await, ["price.set", "price.remove", "price.set", "price.remove"]);
    assert!(fixture.metering.prices().len() >= 6);
}

#[tokio::test]
async fn rate_limits_and_purges_are_admin_operations() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    let rate = RateLimitSpec::new(120, 10).unwrap();
    let record = fixture.metering.set_rate_limit(&Principal::Operator, &token.id, rate).await.unwrap();
    assert_eq!((record.token_id, record.spec), (token.id, rate));
    assert_eq!(fixture.metering.rate_limits(&Principal::Operator).await.unwrap().len(), 1);
    fixture.metering.remove_rate_limit(&Principal::Operator, &token.id).await.unwrap();
    assert!(fixture.metering.rate_limits(&Principal::Operator).await.unwrap().is_empty());

    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 10, 10)).await.unwrap();
    fixture.advance(7_200);
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 10, 10)).await.unwrap();
    fixture.metering.flush().await.unwrap();
    let purged =
        fixture.metering.purge_usage_events(&Principal::Operator, Duration::from_secs(3_600), false).await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 1);
    let day = UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    let report =
        fixture.metering.usage(&Principal::Operator, &day, None, &tollgate::PageRequest::first(1)).await.unwrap();
    assert_eq!(report.totals.events, 2, "rollups keep purged events");
    assert_eq!(actions(&fixture).await, ["rate_limit.set", "rate_limit.remove", "usage.purge"]);
}

/// Removing a limit keeps its counters: setting it again in the same window continues from what
/// was used, for tokens and for requests alike.
#[tokio::test]
async fn re_adding_a_removed_limit_mid_window_keeps_its_usage() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    let subject = LimitSubject::Token(token.id);
    let tokens_key = LimitKey { subject: subject.clone(), metric: Metric::Tokens, window: Window::Day };
    let requests_key = LimitKey { subject: subject.clone(), metric: Metric::Requests, window: Window::Day };
    fixture.limit(subject.clone(), Metric::Tokens, Window::Day, 1_000, false).await;
    fixture.limit(subject.clone(), Metric::Requests, Window::Day, 3, false).await;
    for _ in 0..3 {
        fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    }
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 600, 0)).await.unwrap();

    fixture.metering.remove_limit(&Principal::Operator, &tokens_key).await.unwrap();
    fixture.metering.remove_limit(&Principal::Operator, &requests_key).await.unwrap();
    fixture.advance(1_800);
    fixture.tokens.verify(&secret, &VerifyRequest::default()).await.expect("no limit, no refusal");
    fixture.limit(subject.clone(), Metric::Tokens, Window::Day, 1_000, false).await;
    fixture.limit(subject.clone(), Metric::Requests, Window::Day, 3, false).await;

    let statuses = fixture.metering.limit_status(&Principal::Operator, Some(&subject)).await.unwrap();
    let used: Vec<_> = statuses.iter().map(|status| (status.limit.spec.key().metric, status.used)).collect();
    assert_eq!(used, [(Metric::Requests, 3), (Metric::Tokens, 600)], "the call without a limit was not counted");
    let Err(Error::Refused(refusal)) = fixture.tokens.verify(&secret, &VerifyRequest::default()).await else {
        panic!("3 of 3 requests were used before the limit was removed");
    };
    assert_eq!(refusal.limit.as_deref(), Some("requests_per_day"));
}

/// Deleting younger than an hour cannot be undone by mistake: it needs `force`.
#[tokio::test]
async fn purges_and_cleanups_younger_than_an_hour_need_force() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 10, 10)).await.unwrap();
    fixture.tokens.revoke(&Principal::Operator, &token.id, None).await.unwrap();
    fixture.advance(1_800);
    let half_hour = Duration::from_secs(1_800);

    let error = fixture.metering.purge_usage_events(&Principal::Operator, half_hour, false).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "older_than"), "{error}");
    let error = fixture.tokens.cleanup(&Principal::Operator, half_hour, false).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "older_than"), "{error}");
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 1, "nothing was deleted");
    assert!(fixture.store.token(&token.id).await.is_ok());

    let almost = Duration::from_secs(1_799);
    assert_eq!(fixture.metering.purge_usage_events(&Principal::Operator, almost, true).await.unwrap(), 1);
    assert_eq!(fixture.tokens.cleanup(&Principal::Operator, almost, true).await.unwrap(), 1);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 0);
    assert!(matches!(fixture.store.token(&token.id).await, Err(tollgate::StoreError::NotFound { .. })));
    let hour = tollgate::MIN_DELETE_AGE;
    assert_eq!(
        fixture.metering.purge_usage_events(&Principal::Operator, hour, false).await.unwrap(),
        0,
        "an hour is old enough"
    );
}

/// Many limits in one call: all of them or none, each audited, enforced at once.
#[tokio::test]
async fn many_limits_are_set_in_one_call_or_none() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    let owner = LimitSubject::Owner(token.owner);
    let admin = Principal::Operator;
    let missing = LimitSubject::Token(TokenId::generate());
    let refused = fixture.metering.set_limits(&admin, vec![spec(owner.clone(), 5), spec(missing, 5)]).await;
    assert!(matches!(refused, Err(Error::NotFound { .. })), "{refused:?}");
    assert!(fixture.metering.limits(&admin, None).await.unwrap().is_empty(), "nothing was stored");
    let set = fixture.metering.set_limits(&admin, vec![spec(owner, 1), spec(LimitSubject::Token(token.id), 9)]).await;
    assert_eq!(set.unwrap().len(), 2);
    assert_eq!(actions(&fixture).await, ["limit.set", "limit.set"]);
    fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    assert!(fixture.tokens.verify(&secret, &VerifyRequest::default()).await.is_err(), "the owner's limit of one");
    let too_many = vec![spec(LimitSubject::Token(token.id), 1); tollgate::Metering::MAX_LIMITS_PER_CALL + 1];
    assert!(matches!(fixture.metering.set_limits(&admin, too_many).await, Err(Error::Validation(_))));
}

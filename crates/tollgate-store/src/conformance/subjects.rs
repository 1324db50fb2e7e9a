//! Conformance cases for limits and usage by owner and project id: subjects of every kind, and usage
//! attributed to the owner and project a token had, even after the token is gone.

use tollgate_types::{
    CounterKey, LimitKey, LimitSpec, LimitSubject, Metric, OwnerId, ProjectId, Role, ServiceAccountId, TokenId, UserId,
    Window,
};

use super::fixtures::{T0, at, audit, create_user, hold, owner, project, reservation, user_owner};
use super::usage::{event, keys_and_costs, record, summary, token};
use crate::{AuditFilter, PageRequest, ReserveOutcome, Store, UsageFilter, UsageGroupBy};

fn key(subject: &LimitSubject, metric: Metric, window: Window) -> LimitKey {
    LimitKey { subject: subject.clone(), metric, window }
}

/// Limits of users, service accounts and projects round-trip, keep their kind and list by subject;
/// an owner of one kind never sees another's limits, and deleting one leaves the others.
pub async fn limits_for_owners_and_projects_round_trip(store: &dyn Store) {
    let user = LimitSubject::Owner(OwnerId::User(UserId::generate()));
    let account = LimitSubject::Owner(OwnerId::ServiceAccount(ServiceAccountId::generate()));
    let project = LimitSubject::Project(ProjectId::generate());
    let token = LimitSubject::Token(TokenId::generate());
    assert_eq!(
        [user.kind(), account.kind(), project.kind(), token.kind()],
        ["user", "service_account", "project", "token"]
    );
    let mut specs = Vec::new();
    for (index, subject) in [&user, &account, &project, &token].into_iter().enumerate() {
        let spec = LimitSpec::new(key(subject, Metric::Cost, Window::Month), 1_000 + index as u64, index == 1).unwrap();
        let event = audit("limit.set", subject, at(index as i64));
        let stored = store.put_limit(&spec, at(index as i64), &event).await.unwrap();
        assert_eq!((stored.spec.clone(), stored.created_at), (spec.clone(), at(index as i64)));
        specs.push(spec);
    }
    let daily = LimitSpec::new(key(&account, Metric::Requests, Window::Day), 10, false).unwrap();
    store.put_limit(&daily, at(9), &audit("limit.set", &account, at(9))).await.unwrap();

    let listed = |subject: LimitSubject| async move {
        let records = store.limits(Some(&subject)).await.unwrap();
        records.into_iter().map(|record| record.spec).collect::<Vec<_>>()
    };
    assert_eq!(listed(user.clone()).await, [specs[0].clone()]);
    assert_eq!(listed(account.clone()).await, [daily.clone(), specs[1].clone()], "requests before cost");
    assert_eq!(listed(project.clone()).await, [specs[2].clone()]);
    assert_eq!(listed(token.clone()).await, [specs[3].clone()]);
    assert!(listed(LimitSubject::Owner(OwnerId::User(UserId::generate()))).await.is_empty());
    assert_eq!(store.limits(None).await.unwrap().len(), 5);

    let deleted = store.delete_limit(specs[1].key(), &audit("limit.remove", &account, at(10))).await.unwrap();
    assert_eq!((deleted.spec.clone(), deleted.spec.shadow()), (specs[1].clone(), true));
    assert_eq!(listed(account.clone()).await, [daily]);
    assert_eq!(store.limits(None).await.unwrap().len(), 4);
    let targets: Vec<_> = store
        .list_audit(
            &AuditFilter { target: Some(account.to_string()), ..AuditFilter::default() },
            &PageRequest::first(10),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|entry| entry.event.action)
        .collect();
    assert_eq!(targets, ["limit.remove", "limit.set", "limit.set"]);

    // Counters of the same metric and window are one per subject.
    let holds: Vec<_> = [&user, &project]
        .into_iter()
        .map(|subject| hold(&CounterKey::at(key(subject, Metric::Requests, Window::Minute), at(1)), 1, Some(1)))
        .collect();
    let reserve =
        |holds: Vec<crate::Hold>| async move { store.reserve(&reservation(TokenId::generate(), holds, 1)).await };
    assert_eq!(reserve(holds.clone()).await.unwrap(), ReserveOutcome::Held(vec![1, 1]));
    assert_eq!(reserve(holds[1..].to_vec()).await.unwrap(), ReserveOutcome::Refused { index: 0, used: 1 });
}

/// Usage summaries group by owner id and by project id (tokens without a project under no key) and
/// filter by either or both.
pub async fn usage_groups_and_filters_by_owner_and_project_id(store: &dyn Store) {
    let alice = user_owner(&create_user(store, "alice", Role::User).await);
    let bot = owner(store, "deploy-bot").await;
    let (search, chat) = (project(store, "search").await, project(store, "chat").await);
    let alice_search = token(store, &alice, Some(&search)).await;
    let bot_search = token(store, &bot, Some(&search)).await;
    let bot_chat = token(store, &bot, Some(&chat)).await;
    let bot_unbound = token(store, &bot, None).await;
    let events = [
        event(alice_search, 1, "gpt-4o", 10, 0, 100),
        event(alice_search, 2, "gpt-4o", 10, 0, 100),
        event(bot_search, 3, "gpt-4o", 10, 0, 20),
        event(bot_chat, 4, "gpt-4o", 10, 0, 3),
        event(bot_unbound, 5, "gpt-4o", 10, 0, 4),
    ];
    record(store, &events).await;

    let everything = UsageFilter::between(T0, at(3_600));
    let by_owner = summary(store, &everything, Some(UsageGroupBy::Owner)).await;
    assert_eq!(keys_and_costs(&by_owner), [(Some(alice.id.to_string()), 200), (Some(bot.id.to_string()), 27)]);
    let by_project = summary(store, &everything, Some(UsageGroupBy::Project)).await;
    assert_eq!(
        keys_and_costs(&by_project),
        [(Some(search.id.to_string()), 220), (None, 4), (Some(chat.id.to_string()), 3)]
    );

    let of_bot = UsageFilter { owner: Some(bot.id), ..everything.clone() };
    let bot_totals = summary(store, &of_bot, None).await[0].totals;
    assert_eq!((bot_totals.events, bot_totals.cost.micros()), (3, 27));
    let bot_by_project = summary(store, &of_bot, Some(UsageGroupBy::Project)).await;
    assert_eq!(
        keys_and_costs(&bot_by_project),
        [(Some(search.id.to_string()), 20), (None, 4), (Some(chat.id.to_string()), 3)]
    );
    let in_search = UsageFilter { project: Some(search.id), ..everything.clone() };
    let search_by_owner = summary(store, &in_search, Some(UsageGroupBy::Owner)).await;
    assert_eq!(keys_and_costs(&search_by_owner), [(Some(alice.id.to_string()), 200), (Some(bot.id.to_string()), 20)]);
    let alice_in_chat = UsageFilter { owner: Some(alice.id), project: Some(chat.id), ..everything.clone() };
    assert_eq!(summary(store, &alice_in_chat, None).await[0].totals.events, 0);
    let nobody = UsageFilter { owner: Some(OwnerId::User(UserId::generate())), ..everything };
    assert_eq!(summary(store, &nobody, None).await[0].totals.events, 0);
}

/// Usage stays attributed to the owner and project its token had after the token is deleted:
/// summaries still filter by them and new owner and project counters still start from it.
pub async fn attribution_outlives_the_token(store: &dyn Store) {
    let bot = owner(store, "deploy-bot").await;
    let search = project(store, "search").await;
    let gone = token(store, &bot, Some(&search)).await;
    let kept = token(store, &bot, None).await;
    record(store, &[event(gone, 10, "gpt-4o", 100, 20, 300), event(kept, 20, "gpt-4o", 1, 0, 7)]).await;
    store.revoke_token(&gone, None, &audit("token.revoke", gone, at(30))).await.unwrap();
    store.delete_inactive_tokens(at(40), &audit("token.cleanup", "tokens", at(40))).await.unwrap();
    assert!(store.token(&gone).await.is_err());
    // Late usage of the deleted token lands on the row it already has.
    record(store, &[event(gone, 50, "gpt-4o", 10, 0, 30)]).await;

    let everything = UsageFilter::between(T0, at(3_600));
    let of_bot = UsageFilter { owner: Some(bot.id), ..everything.clone() };
    let totals = summary(store, &of_bot, None).await[0].totals;
    assert_eq!((totals.events, totals.total_tokens(), totals.cost.micros()), (3, 131, 337));
    let in_search = UsageFilter { project: Some(search.id), ..everything.clone() };
    let totals = summary(store, &in_search, None).await[0].totals;
    assert_eq!((totals.events, totals.total_tokens(), totals.cost.micros()), (2, 130, 330));
    let by_project = summary(store, &everything, Some(UsageGroupBy::Project)).await;
    assert_eq!(keys_and_costs(&by_project), [(Some(search.id.to_string()), 330), (None, 7)]);

    let counter =
        |subject: LimitSubject, metric| CounterKey::at(LimitKey { subject, metric, window: Window::Day }, at(60));
    let owner_cost = counter(LimitSubject::Owner(bot.id), Metric::Cost);
    let project_tokens = counter(LimitSubject::Project(search.id), Metric::Tokens);
    assert_eq!(store.counter_values(&[owner_cost, project_tokens]).await.unwrap(), [337, 130]);
}

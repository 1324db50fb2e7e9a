//! A store with a row in every table, written through the normal trait methods, for the dump cases:
//! owners in every state, tokens rotated, revoked and bound to a project their owner has left, usage,
//! limits, quotas, reservations, agents with their vault keys and budgets, traces, login slots.

use std::time::Duration;

use tollgate_types::{
    AccountStatus, AgentId, BudgetRequestId, Endpoint, EventId, KeyId, LimitKey, LimitSpec, LimitSubject, Metric,
    Microdollars, ModelName, ModelPrice, NewTrace, OwnerRecord, ProjectRecord, ProviderName, RateLimitSpec, Role,
    TokenHash, TraceId, UserStatus, Window,
};

use super::fixtures::{
    at, audit, counter, create_token, create_user, hash_for, hold, join, owner, project, reservation, start_session,
    user_owner,
};
use super::usage::{event, item};
use super::{agents, budgets, quota};
use crate::{
    BudgetRequestInsert, CounterDelta, DeadLetter, LeaseOpen, SecretRotation, StatusChange, Store, TraceInsert,
    UsageBatch,
};

/// What the dump cases look for after a load.
pub(crate) struct Content {
    /// Current hashes of live tokens, and the previous hash of the rotated one (still in its grace).
    pub(crate) hashes: Vec<TokenHash>,
    /// A suspended service account, which must not get new tokens.
    pub(crate) suspended: OwnerRecord,
    /// An owner that has left `project`, which must not get new tokens bound to it.
    pub(crate) leaver: OwnerRecord,
    /// The project `leaver` has left.
    pub(crate) project: ProjectRecord,
    /// An agent with a budget.
    pub(crate) spender: AgentId,
}

/// Fills `store` with at least one row in every table a dump holds.
pub(crate) async fn fill(store: &dyn Store) -> Content {
    let root = create_user(store, "root", Role::Admin).await;
    let alice = create_user(store, "alice", Role::User).await;
    let session = start_session(store, &alice, 1).await;
    store.revoke_session(&session.id, "logged out", &audit("session.revoke", session.id, at(2))).await.unwrap();
    start_session(store, &root, 3).await;

    // An owner suspended since its token was issued: its revoked token must load all the same.
    let ghost = create_user(store, "ghost", Role::User).await;
    let ghost_token = create_token(store, "ghost's", &user_owner(&ghost), None, 4).await;
    let suspension = StatusChange { id: ghost.id, status: UserStatus::Suspended, reason: None, at: at(5) };
    store.set_user_status(&suspension, &audit("user.suspend", ghost.id, at(5))).await.unwrap();
    assert!(store.token(&ghost_token.id).await.unwrap().revoked_at.is_some());
    let old_bot = owner(store, "old-bot").await;
    create_token(store, "old", &old_bot, None, 6).await;
    let tollgate_types::OwnerId::ServiceAccount(old_bot_id) = old_bot.id else { panic!("a service account") };
    let suspension = audit("service_account.suspend", old_bot_id, at(7));
    store
        .set_service_account_status(&old_bot_id, AccountStatus::Suspended, Some("retired"), &suspension)
        .await
        .unwrap();

    // A token bound to a project its owner has left since (revoked by the removal, still bound).
    let search = project(store, "search").await;
    let bot = owner(store, "deploy-bot").await;
    let leaver = owner(store, "leaver").await;
    let deploy = create_token(store, "deploy", &bot, Some(&search), 8).await;
    create_token(store, "leaving", &leaver, Some(&search), 9).await;
    store
        .remove_project_member(&search.id, &leaver.id, &audit("project.remove_member", search.id, at(10)))
        .await
        .unwrap();
    join(store, &user_owner(&alice), &search, 10).await;

    // Rotated (the old secret in its grace period) and revoked tokens.
    let rotated = create_token(store, "rotated", &user_owner(&alice), None, 11).await;
    let new_hash = hash_for(&rotated.id, 7);
    let rotation = SecretRotation {
        id: rotated.id,
        hash: new_hash,
        key_id: KeyId(1),
        display_hint: "tg_Rot…ated".to_owned(),
        previous_valid_until: Some(at(86_400)),
        at: at(12),
    };
    store.rotate_token(&rotation, &audit("token.rotate", rotated.id, at(12))).await.unwrap();
    let revoked = create_token(store, "revoked", &bot, None, 13).await;
    store.revoke_token(&revoked.id, Some("leaked"), &audit("token.revoke", revoked.id, at(14))).await.unwrap();

    // Metering: a rate limit, a price, a shadow limit, usage with counters, a dead letter.
    let spec = RateLimitSpec::new(600, 20).unwrap();
    store.put_rate_limit(&deploy.id, &spec, at(15), &audit("rate_limit.set", deploy.id, at(15))).await.unwrap();
    let price = ModelPrice::new(
        ProviderName::parse("openai").unwrap(),
        ModelName::parse("gpt-4o").unwrap(),
        Microdollars::from_micros(2_500_000),
        Microdollars::from_micros(10_000_000),
    )
    .unwrap();
    store.put_price(&price, at(16), &audit("price.set", "openai/gpt-4o", at(16))).await.unwrap();
    let daily = LimitKey { subject: LimitSubject::Token(deploy.id), metric: Metric::Cost, window: Window::Day };
    let limit = LimitSpec::new(daily, 1_000_000, true).unwrap();
    store.put_limit(&limit, at(17), &audit("limit.set", deploy.id, at(17))).await.unwrap();
    let cost = counter(&LimitSubject::Token(deploy.id), Metric::Cost, Window::Day, 18);
    let mut keyed = event(deploy.id, 18, "gpt-4o", 120, 30, 700);
    keyed.event_id = Some(EventId::parse("req-1").unwrap());
    keyed.latency_ms = Some(250);
    keyed.ip = Some("192.0.2.7".parse().unwrap());
    let events = [
        item(keyed, &[CounterDelta { key: cost.clone(), delta: 700 }]),
        item(event(deploy.id, 19, "gpt-4o-mini", 1, 1, 1), &[]),
    ];
    store.record_usage(UsageBatch { events: &events, ..UsageBatch::default() }).await.unwrap();
    let letter =
        DeadLetter { event: event(deploy.id, 20, "gpt-4o", 1, 1, 1), reason: "refused".to_owned(), failed_at: at(20) };
    store.add_dead_letters(&[letter]).await.unwrap();

    // Quotas: a holder's lease and a reservation.
    let holder = quota::holder(store, 21).await;
    let requests = counter(&LimitSubject::Token(deploy.id), Metric::Requests, Window::Minute, 21);
    quota::lease(store, &holder, &requests, 5, 100).await;
    store.reserve(&reservation(deploy.id, vec![hold(&cost, 50, Some(1_000_000))], 22)).await.unwrap();

    // Agents: a vault key (and a deleted one), an agent with a credential, a budget with leases,
    // a refresh and a delegation, reports and a change request.
    let owner_alice = user_owner(&alice);
    let key = agents::key(store, &owner_alice, 1).await;
    let gone = agents::key(store, &owner_alice, 2).await;
    store.delete_provider_key(&gone, at(23), &audit("provider_key.delete", gone, at(23))).await.unwrap();
    let worker = agents::agent(store, &owner_alice, Some(key)).await;
    let credential = agents::credential(&owner_alice, worker);
    store.insert_token(&credential, &audit("agent.credential.create", credential.id, at(24))).await.unwrap();
    let (spender, spender_credential) = budgets::agent(store, &owner_alice, 1_000).await;
    let (helper, _) = budgets::agent(store, &owner_alice, 0).await;
    let first = budgets::opened(store, &budgets::open(&spender, &spender_credential, 400, 25)).await;
    budgets::reported(store, &budgets::report(&first.id, &spender, &spender_credential, "r1", 40, at(26))).await;
    let refresh = LeaseOpen { refresh_of: Some(first.id), ..budgets::open(&spender, &spender_credential, 300, 27) };
    let second = budgets::opened(store, &refresh).await;
    let delegation =
        LeaseOpen { delegate_from: Some((second.id, spender)), ..budgets::open(&helper, &spender_credential, 50, 28) };
    budgets::opened(store, &delegation).await;
    let request = BudgetRequestInsert {
        id: BudgetRequestId::generate(),
        agent: spender,
        requester: "cli".to_owned(),
        requester_owner: Some(owner_alice.id),
        requested_allocation: 2_000,
        justification: "a bigger job".to_owned(),
        at: at(29),
    };
    store.insert_budget_request(&request, &audit("budget.request.create", request.id, at(29))).await.unwrap();

    // A trace, cut to budget, and a login failure slot.
    let trace = TraceInsert {
        id: TraceId::generate(),
        trace: NewTrace {
            token_id: credential.id,
            at: at(30),
            endpoint: Some(Endpoint::parse("/v1/chat/completions").unwrap()),
            provider: Some(ProviderName::parse("openai").unwrap()),
            model: Some(ModelName::parse("gpt-4o").unwrap()),
            status: 200,
            latency_ms: Some(321),
            input_tokens: 12,
            output_tokens: 34,
            cost: Microdollars::from_micros(56),
            request: Some("{\"messages\":[\"hi\"]}".to_owned()),
            response: None,
        },
        truncated: true,
    };
    store.insert_trace(&trace).await.unwrap();
    store.take_login_slot("198.51.100.0/64", at(31), Duration::from_secs(60), 5).await.unwrap();

    let hashes = [deploy.id, rotated.id, credential.id].iter().map(|id| hash_for(id, 0)).chain([new_hash]).collect();
    Content { hashes, suspended: old_bot, leaver, project: search, spender }
}

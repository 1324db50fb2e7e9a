//! Analytics events and what is read from them: idempotency under concurrency and across an agent's
//! credentials, validation before anything is stored, spending equal to the accepted reports and
//! events exactly, period boundaries, paging, risk levels and who may read what.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    AgentFilter, AgentId, AgentScope, AnalyticsEventInput, Caller, Clock, Error, PageRequest, Period, Principal,
    RiskLevel, Role, SpendingReport, Timestamp, UsageFilter, UsageGroupBy, UsageOutcome, VerifyRequest,
};

use super::simulation::Random;
use super::{Fixture, START, openai, owners, report};

fn event(event_id: &str, cost: i64, at: Timestamp) -> AnalyticsEventInput {
    AnalyticsEventInput {
        event_id: event_id.to_owned(),
        timestamp: Some(at),
        event_type: Some("llm_request_completed".to_owned()),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        input_tokens: 120,
        output_tokens: 30,
        cost_microdollars: cost,
        latency_ms: Some(900),
        ..AnalyticsEventInput::default()
    }
}

async fn spending(fixture: &Fixture, principal: &Principal, group_by: Option<UsageGroupBy>) -> SpendingReport {
    let (since, until) = Period::AllTime.range(fixture.clock.now());
    let filter = UsageFilter::between(since, until);
    fixture.agents.spending(principal, &filter, group_by, &PageRequest::first(100)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_from_sixteen_tasks_is_stored_once() {
    let fixture = Arc::new(Fixture::new().await);
    let (_, caller) = fixture.agent(1_000_000).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (fixture, caller) = (Arc::clone(&fixture), caller.clone());
            tokio::spawn(async move {
                let batch = [event("call-1", 700, START)];
                fixture.agents.ingest_events(&caller, &batch).await.unwrap()[0].outcome
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == UsageOutcome::Recorded).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == UsageOutcome::Duplicate).count(), 15);
    let report = spending(&fixture, &Principal::Operator, None).await;
    assert_eq!((report.totals.totals.events, report.totals.totals.cost.micros()), (1, 700));
}

#[tokio::test]
async fn a_batch_with_one_bad_event_stores_nothing_and_names_the_field() {
    let fixture = Fixture::new().await;
    let (_, caller) = fixture.agent(1_000_000).await;
    let mut bad = event("call-2", 10, START);
    bad.output_tokens = -3;
    let refused = fixture.agents.ingest_events(&caller, &[event("call-1", 10, START), bad]).await;
    assert!(matches!(&refused, Err(Error::Validation(invalid)) if invalid.field == "output_tokens"), "{refused:?}");
    let foreign_lease =
        AnalyticsEventInput { lease_id: Some(tollgate::LeaseId::generate().to_string()), ..event("c", 1, START) };
    let refused = fixture.agents.ingest_events(&caller, &[foreign_lease]).await;
    assert!(matches!(refused, Err(Error::NotFound { entity: "lease" })), "{refused:?}");
    assert_eq!(spending(&fixture, &Principal::Operator, None).await.totals.totals.events, 0);
    // Only an agent sends events.
    let refused = fixture.agents.ingest_events(&Caller::operator(), &[event("c", 1, START)]).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
}

/// Reports (some retried) and analytics events (some retried through a second credential, some
/// naming a reported call's lease and request id) from several agents: the spending read back
/// equals what was accepted, exactly, in total and per agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spending_equals_the_accepted_reports_and_events_exactly() {
    let fixture = Arc::new(Fixture::new().await);
    let mut agents = Vec::new();
    for _ in 0..4 {
        let (agent, caller) = fixture.agent(5_000_000).await;
        let second = fixture.agents.create_credential(&Caller::operator(), &agent, None, None).await.unwrap();
        let verified = fixture.agents.authenticate(second.secret.expose(), &VerifyRequest::default()).await.unwrap();
        agents.push((agent, caller, Caller::new(verified.principal())));
    }
    let tasks: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(index, (agent, caller, second))| {
            let (fixture, agent, caller, second) = (Arc::clone(&fixture), *agent, caller.clone(), second.clone());
            tokio::spawn(async move {
                let mut random = Random(0xA5A5_0000 + index as u64 * 7_919);
                let lease = fixture.agents.handshake(&caller, &openai(), Some(4_000_000), None).await.unwrap().lease.id;
                let mut accepted = 0i64;
                let mut sent: Vec<(String, i64)> = Vec::new();
                for step in 0..150 {
                    let cost = 1 + random.below(5_000) as i64;
                    match random.below(4) {
                        0 => {
                            let id = format!("r{step}");
                            fixture.agents.report_lease(&caller, &lease, &report(&id, cost)).await.unwrap();
                            // A retry of the report, and the same call sent as an analytics event.
                            fixture.agents.report_lease(&caller, &lease, &report(&id, cost)).await.unwrap();
                            let linked =
                                AnalyticsEventInput { lease_id: Some(lease.to_string()), ..event(&id, cost, START) };
                            let outcome = fixture.agents.ingest_events(&second, &[linked]).await.unwrap()[0].outcome;
                            assert_eq!(outcome, UsageOutcome::Duplicate, "a reported call sent as an event");
                            accepted += cost;
                        }
                        1 if !sent.is_empty() => {
                            let (id, cost) = sent[random.below(sent.len() as u64) as usize].clone();
                            let outcome = fixture.agents.ingest_events(&second, &[event(&id, cost, START)]).await;
                            assert_eq!(outcome.unwrap()[0].outcome, UsageOutcome::Duplicate);
                        }
                        _ => {
                            let id = format!("e{step}");
                            let outcome = fixture.agents.ingest_events(&caller, &[event(&id, cost, START)]).await;
                            assert_eq!(outcome.unwrap()[0].outcome, UsageOutcome::Recorded);
                            sent.push((id, cost));
                            accepted += cost;
                        }
                    }
                }
                (agent, accepted)
            })
        })
        .collect();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for task in tasks {
        let (agent, accepted) = task.await.unwrap();
        expected.insert(agent.to_string(), accepted);
    }
    let report = spending(&fixture, &Principal::Operator, Some(UsageGroupBy::Agent)).await;
    assert_eq!(report.totals.totals.cost.micros(), expected.values().sum::<i64>());
    let per_agent: HashMap<String, i64> =
        report.groups.iter().map(|group| (group.key.clone().unwrap(), group.figures.totals.cost.micros())).collect();
    assert_eq!(per_agent, expected);
    assert_eq!(report.totals.success_rate, Some(1.0));
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn periods_split_at_month_and_year_ends() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(1_000_000).await;
    let at = |text: &str| Timestamp::parse_rfc3339("at", text).unwrap();
    fixture.clock.set(at("2027-01-01T00:40:00Z"));
    let events = [event("december", 300, at("2026-12-31T23:59:59Z")), event("january", 20, at("2027-01-01T00:00:00Z"))];
    fixture.agents.ingest_events(&caller, &events).await.unwrap();
    let now = fixture.clock.now();
    let cost = |period: Period| {
        let (since, until) = period.range(now);
        let mut filter = UsageFilter::between(since, until);
        filter.agent = Some(AgentScope::One(agent));
        let agents = &fixture.agents;
        async move {
            let report = agents.spending(&Principal::Operator, &filter, None, &PageRequest::first(1)).await.unwrap();
            report.totals.totals.cost.micros()
        }
    };
    assert_eq!(cost(Period::Today).await, 20);
    assert_eq!(cost(Period::ThisMonth).await, 20);
    assert_eq!(cost(Period::Yesterday).await, 300);
    assert_eq!(cost(Period::LastMonth).await, 300);
    assert_eq!(cost(Period::Last7Days).await, 320);
    assert_eq!(cost(Period::AllTime).await, 320);
}

#[tokio::test]
async fn spending_pages_by_agent_and_reads_only_what_the_principal_may() {
    let fixture = Fixture::new().await;
    let mut ops_agents = Vec::new();
    for cost in [500, 300, 300] {
        let (agent, caller) = fixture.agent(1_000_000).await;
        fixture.agents.ingest_events(&caller, &[event("one", cost, START)]).await.unwrap();
        ops_agents.push(agent);
    }
    let whole = spending(&fixture, &Principal::Operator, Some(UsageGroupBy::Agent)).await;
    assert_eq!(whole.groups.len(), 3);
    let (since, until) = Period::AllTime.range(fixture.clock.now());
    let filter = UsageFilter::between(since, until);
    let mut page = PageRequest::first(1);
    let mut keys = Vec::new();
    loop {
        let found =
            fixture.agents.spending(&Principal::Operator, &filter, Some(UsageGroupBy::Agent), &page).await.unwrap();
        assert_eq!(found.totals, whole.totals, "totals cover every page");
        keys.extend(found.groups.into_iter().map(|group| group.key));
        match found.next_cursor {
            Some(cursor) => page = PageRequest::after(1, cursor),
            None => break,
        }
    }
    assert_eq!(keys, whole.groups.iter().map(|group| group.key.clone()).collect::<Vec<_>>());

    // Bob (a user) sees only his own agent's spending; naming one of ops' agents is NotFound.
    let bob = owners::user(&fixture.users, "bob", Role::User).await;
    let bob_principal = Principal::User { id: bob.id, username: bob.username.clone(), role: Role::User };
    let new_agent = tollgate::NewAgent {
        name: tollgate::AgentName::parse("bobs").unwrap(),
        owner: tollgate::OwnerId::User(bob.id),
        project: None,
        providers: tollgate::ProviderList::default(),
        provider_key: None,
        description: tollgate::Description::default(),
        metadata: tollgate::Metadata::default(),
    };
    let bobs: AgentId = fixture.agents.create_agent(&Caller::new(bob_principal.clone()), new_agent).await.unwrap().id;
    let credential = fixture.agents.create_credential(&Caller::operator(), &bobs, None, None).await.unwrap();
    let verified = fixture.agents.authenticate(credential.secret.expose(), &VerifyRequest::default()).await.unwrap();
    fixture.agents.ingest_events(&Caller::new(verified.principal()), &[event("one", 9, START)]).await.unwrap();
    let own = spending(&fixture, &bob_principal, Some(UsageGroupBy::Agent)).await;
    assert_eq!(own.groups.iter().map(|group| group.key.clone()).collect::<Vec<_>>(), [Some(bobs.to_string())]);
    assert_eq!(own.totals.totals.cost.micros(), 9);
    let mut theirs = filter.clone();
    theirs.agent = Some(AgentScope::One(ops_agents[0]));
    let refused = fixture.agents.spending(&bob_principal, &theirs, None, &PageRequest::first(1)).await;
    assert!(matches!(refused, Err(Error::NotFound { entity: "agent" })), "{refused:?}");
    let statuses =
        fixture.agents.budget_statuses(&bob_principal, &AgentFilter::default(), &PageRequest::first(10)).await;
    let statuses = statuses.unwrap();
    assert_eq!(statuses.items.iter().map(|status| status.agent_id).collect::<Vec<_>>(), [bobs]);
    assert_eq!(statuses.items[0].risk, RiskLevel::Exhausted, "nothing allocated");
}

#[tokio::test]
async fn budget_status_follows_what_was_spent() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(10_000).await;
    let lease =
        fixture.agents.handshake(&caller, &openai(), Some(10_000), Some(Duration::from_secs(600))).await.unwrap();
    let status = || async {
        let (filter, page) = (AgentFilter::default(), PageRequest::first(5));
        let page = fixture.agents.budget_statuses(&Principal::Operator, &filter, &page).await.unwrap();
        let status = page.items.into_iter().find(|status| status.agent_id == agent).unwrap();
        (status.percent_used, status.risk, status.budget.account.reserved)
    };
    assert_eq!(status().await, (0.0, RiskLevel::Low, 10_000));
    for (request, cost, expected) in [
        ("a", 4_999, (49.99, RiskLevel::Low)),
        ("b", 1, (50.0, RiskLevel::Medium)),
        ("c", 3_000, (80.0, RiskLevel::High)),
        ("d", 1_500, (95.0, RiskLevel::Critical)),
        ("e", 500, (100.0, RiskLevel::Exhausted)),
    ] {
        fixture.agents.report_lease(&caller, &lease.lease.id, &report(request, cost)).await.unwrap();
        let (percent, risk, _) = status().await;
        assert_eq!((percent, risk), expected, "after {request}");
    }
}

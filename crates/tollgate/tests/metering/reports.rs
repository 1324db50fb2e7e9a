//! Usage reports and analytics, read from rollups, scoped to what the reader may see.

use tollgate::{Error, Outcome, Permission, Principal, TokenRecord, UsageFilter, UsageGroupBy};

use crate::{Fixture, at, event};

fn as_token(record: &TokenRecord, permission: Permission) -> Principal {
    Principal::Token { id: record.id, owner: record.owner, permission }
}

async fn seed(fixture: &Fixture) -> (TokenRecord, TokenRecord) {
    let (_, alice) = fixture.token("alice", Some("search")).await;
    let (_, bob) = fixture.token("bob", Some("chat")).await;
    let mut events = Vec::new();
    for (latency, outcome) in
        [(40, Outcome::Success), (90, Outcome::Success), (400, Outcome::Error), (3_000, Outcome::Success)]
    {
        let mut usage = event(fixture, &alice, "openai/gpt-4o", 1_000, 100);
        usage.latency_ms = Some(latency);
        usage.outcome = outcome;
        events.push(usage);
    }
    events.push(event(fixture, &alice, "anthropic/claude-haiku-4-5", 2_000, 0));
    events.push(event(fixture, &bob, "google/gemini-2.5-flash", 10_000, 1_000));
    fixture.metering.record_many(events).await.unwrap();
    fixture.advance(3_600);
    fixture.metering.record(event(fixture, &bob, "google/gemini-2.5-flash", 10_000, 1_000)).await.unwrap();
    fixture.metering.flush().await.unwrap();
    (alice, bob)
}

fn day() -> UsageFilter {
    UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
}

#[tokio::test]
async fn usage_reports_group_by_every_attribute() {
    let fixture = Fixture::new().await;
    let (alice, bob) = seed(&fixture).await;
    let filter = day();
    let ten = tollgate::PageRequest::first(10);
    let usage = |group_by| fixture.metering.usage(&Principal::Operator, &filter, Some(group_by), &ten);
    let report = usage(UsageGroupBy::Model).await.unwrap();
    assert_eq!(report.totals.events, 7);
    // gpt-4o: 4 × (1000 × 2.5 + 100 × 10) = 14,000 µ$; haiku 4.5: 2000 × 1 = 2,000 µ$;
    // gemini 2.5 flash: 2 × (10,000 × 0.30 + 1,000 × 2.50) = 11,000 µ$.
    let costs: Vec<_> =
        report.groups.iter().map(|group| (group.key.clone().unwrap(), group.totals.cost.micros())).collect();
    assert_eq!(
        costs,
        [
            ("openai/gpt-4o".to_owned(), 14_000),
            ("google/gemini-2.5-flash".to_owned(), 11_000),
            ("anthropic/claude-haiku-4-5".to_owned(), 2_000)
        ]
    );
    let by_token = usage(UsageGroupBy::Token).await.unwrap();
    let tokens: Vec<_> = by_token.groups.iter().map(|group| group.key.clone().unwrap()).collect();
    assert_eq!(tokens, [alice.id.to_string(), bob.id.to_string()]);
    let by_project = usage(UsageGroupBy::Project).await.unwrap();
    assert_eq!(by_project.groups[0].key, Some(fixture.project("search").await.to_string()), "grouped by project id");
    let by_hour = usage(UsageGroupBy::Hour).await.unwrap();
    assert_eq!(by_hour.groups.len(), 2);
    let only_bob = UsageFilter { owner: Some(bob.owner), ..day() };
    let report =
        fixture.metering.usage(&Principal::Operator, &only_bob, None, &tollgate::PageRequest::first(10)).await.unwrap();
    assert_eq!((report.totals.events, report.totals.cost.micros()), (2, 11_000));
}

#[tokio::test]
async fn readers_who_are_not_admins_see_only_their_own_usage() {
    let fixture = Fixture::new().await;
    let (alice, bob) = seed(&fixture).await;
    let alice_reads = as_token(&alice, Permission::ReadOnly);
    let report = fixture
        .metering
        .usage(&alice_reads, &day(), Some(UsageGroupBy::Owner), &tollgate::PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(report.totals.events, 5);
    let keys: Vec<_> = report.groups.iter().map(|group| group.key.clone()).collect();
    assert_eq!(keys, [Some(alice.owner.to_string())], "grouped by owner id");
    let bobs = UsageFilter { owner: Some(bob.owner), ..day() };
    assert!(matches!(
        fixture.metering.usage(&alice_reads, &bobs, None, &tollgate::PageRequest::first(10)).await,
        Err(Error::Forbidden(_))
    ));
    let analytics =
        fixture.metering.analytics(&alice_reads, at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"), 5).await;
    assert!(matches!(analytics, Err(Error::Forbidden(_))));
    let admin = as_token(&alice, Permission::Admin);
    assert_eq!(
        fixture.metering.usage(&admin, &bobs, None, &tollgate::PageRequest::first(10)).await.unwrap().totals.events,
        2
    );
}

#[tokio::test]
async fn analytics_report_error_rate_latency_percentiles_and_top_spenders() {
    let fixture = Fixture::new().await;
    let (alice, bob) = seed(&fixture).await;
    let report = fixture
        .metering
        .analytics(&Principal::Operator, at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"), 1)
        .await
        .unwrap();
    assert_eq!(report.totals.events, 7);
    assert_eq!(report.total_tokens, 4 * 1_100 + 2_000 + 2 * 11_000);
    assert_eq!(report.error_rate, 0.1429, "1 error in 7 events, rounded up");
    // Latencies 40, 90, 400, 3000 ms: buckets ≤50, ≤100, ≤500, ≤5000.
    assert_eq!((report.latency_p50_ms, report.latency_p95_ms), (Some(100), Some(5_000)));
    assert_eq!(report.top_tokens.len(), 1);
    assert_eq!(report.top_tokens[0].key, Some(alice.id.to_string()));
    assert_eq!(report.top_tokens[0].totals.cost.micros(), 16_000);
    assert_eq!(report.by_owner[0].key, Some(alice.owner.to_string()));
    assert_eq!(report.by_provider[0].key.as_deref(), Some("openai"));
    let _ = bob;
    let backwards = fixture
        .metering
        .analytics(&Principal::Operator, at("2026-03-11T00:00:00Z"), at("2026-03-10T00:00:00Z"), 1)
        .await;
    assert!(matches!(backwards, Err(Error::Validation(ref invalid)) if invalid.field == "since"));
}

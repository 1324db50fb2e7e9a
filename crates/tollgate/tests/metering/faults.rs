//! The usage writer against a store that fails (`FaultyStore`): a refused event is dead-lettered
//! alone and the rest of its batch commits; a store that is down answers durable callers
//! `Unavailable` after bounded retries while background events wait for it; a shutdown against a
//! dead store ends and says what it lost; a lost acknowledgement is not counted twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::{
    Error, EventId, LimitSubject, MeteringStats, Metric, PageRequest, Principal, Store, TokenRecord, UsageEvent,
    UsageFilter, UsageOutcome, Window,
};
use tollgate_store::faults::FaultyStore;

use crate::{Fixture, at, counter, event};

async fn faulty_fixture() -> (Fixture, Arc<FaultyStore>) {
    let mut faulty = None;
    let fixture = Fixture::wrapped(
        |store| {
            let wrapper = Arc::new(FaultyStore::new(store));
            faulty = Some(Arc::clone(&wrapper));
            wrapper as Arc<dyn Store>
        },
        |builder| builder,
    )
    .await;
    (fixture, faulty.expect("the fixture wraps its store"))
}

/// A token whose tokens are counted (a daily tokens limit nobody reaches).
async fn counted_token(fixture: &Fixture, owner: &str) -> TokenRecord {
    let (_, token) = fixture.token(owner, None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Tokens, Window::Day, 100_000_000, false).await;
    token
}

async fn tokens_counted(fixture: &Fixture, token: &TokenRecord) -> i64 {
    counter(fixture, LimitSubject::Token(token.id), Metric::Tokens, Window::Day).await
}

/// Event `index` of a test batch: `index + 1` input tokens, one output token.
fn numbered(fixture: &Fixture, token: &TokenRecord, index: u32) -> UsageEvent {
    event(fixture, token, "openai/gpt-4o-mini", index + 1, 1)
}

/// What the events `0..count` add to the tokens counter: Σ (index + 2).
fn tokens_of(indices: impl IntoIterator<Item = u32>) -> i64 {
    indices.into_iter().map(|index| i64::from(index) + 2).sum()
}

async fn events_in_reports(fixture: &Fixture) -> u64 {
    let day = UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    fixture
        .metering
        .usage(&Principal::Operator, &day, None, &tollgate::PageRequest::first(1))
        .await
        .unwrap()
        .totals
        .events
}

fn stats_without_gauges(stats: MeteringStats) -> MeteringStats {
    MeteringStats { live_counters: 0, rate_limited_keys: 0, ..stats }
}

#[tokio::test]
async fn a_refused_event_is_dead_lettered_alone_and_the_rest_of_its_batch_is_recorded_once() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    let poison = EventId::parse("poison-37").unwrap();
    faulty.refuse_event(poison.clone());
    let mut events: Vec<UsageEvent> = (0..100).map(|index| numbered(&fixture, &token, index)).collect();
    events[37].event_id = Some(poison.clone());

    let outcomes = fixture.metering.record_many(events).await.unwrap();
    let mut expected = vec![UsageOutcome::Recorded; 100];
    expected[37] = UsageOutcome::DeadLettered;
    assert_eq!(outcomes, expected);

    let letters = fixture.metering.dead_letters(&Principal::Operator, &PageRequest::first(10)).await.unwrap();
    assert_eq!(letters.items.len(), 1);
    let letter = &letters.items[0];
    assert_eq!(letter.token_id, token.id.to_string());
    assert_eq!(letter.event["event_id"], "poison-37");
    assert!(letter.reason.contains("injected fault: the batch holds a refused event"), "{}", letter.reason);

    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 99);
    assert_eq!(events_in_reports(&fixture).await, 99);
    assert_eq!(tokens_counted(&fixture, &token).await, tokens_of((0..100).filter(|&index| index != 37)));
    // Halving 0..100 around event 37: 0..100, 0..50, 25..50, 37..50, 37..43, 37..40 and 37..38 fail.
    assert_eq!(faulty.refused_calls(), 7);
    let expected = MeteringStats {
        accepted_events: 100,
        written_events: 99,
        duplicate_events: 0,
        dead_lettered_events: 1,
        queued_events: 0,
        failed_writes: 7,
        refused_events: 0,
        degraded: None,
        live_counters: 0,
        rate_limited_keys: 0,
    };
    assert_eq!(stats_without_gauges(fixture.metering.stats()), expected);
}

/// While the dead-letter table cannot be written either, the refused event waits; the events
/// stored meanwhile are never sent again (no event ids here, so a second write would show).
#[tokio::test]
async fn a_refused_event_waits_while_the_dead_letter_table_is_down_and_nothing_is_written_twice() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    let bad = counted_token(&fixture, "mallory").await;
    faulty.refuse_token(bad.id);
    faulty.set_dead_letters_unavailable(true);
    let mut events: Vec<UsageEvent> = (0..10).map(|index| numbered(&fixture, &token, index)).collect();
    events[3] = numbered(&fixture, &bad, 3);
    fixture.metering.record_many_background(events).await.unwrap();

    let error = fixture.metering.flush().await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    assert!(fixture.metering.degraded().is_some());
    assert_eq!(fixture.store.count_dead_letters().await.unwrap(), 0);

    faulty.set_dead_letters_unavailable(false);
    // A durable record waits out the retry delay and writes everything still held.
    let outcome = fixture.metering.record(numbered(&fixture, &token, 10)).await.unwrap();
    assert_eq!(outcome, UsageOutcome::Recorded);
    fixture.metering.flush().await.unwrap();
    assert_eq!(fixture.store.count_dead_letters().await.unwrap(), 1);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 10, "9 of the batch and the durable one");
    assert_eq!(tokens_counted(&fixture, &token).await, tokens_of((0..11).filter(|&index| index != 3)));
    assert_eq!(tokens_counted(&fixture, &bad).await, 0, "a dead letter counts nowhere");
    assert_eq!(fixture.metering.degraded(), None);
    let stats = fixture.metering.stats();
    assert_eq!((stats.written_events, stats.dead_lettered_events, stats.queued_events), (10, 1, 0));
}

#[tokio::test]
async fn a_store_that_is_down_refuses_durable_callers_and_keeps_background_events_until_it_is_back() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    faulty.set_unavailable(true);
    let background: Vec<UsageEvent> = (0..10).map(|index| numbered(&fixture, &token, index)).collect();
    fixture.metering.record_many_background(background).await.unwrap();

    let started = Instant::now();
    let error = fixture.metering.record(numbered(&fixture, &token, 100)).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    // Five attempts, 100 + 200 + 400 + 800 ms apart.
    assert!(started.elapsed() >= Duration::from_millis(1_500), "answered after {:?}", started.elapsed());
    assert_eq!(faulty.unavailable_calls(), 5);
    let degraded = fixture.metering.degraded().expect("degraded while writes fail");
    assert!(degraded.contains("injected fault: storage is down"), "{degraded}");
    let stats = fixture.metering.stats();
    assert_eq!(
        (stats.accepted_events, stats.written_events, stats.refused_events, stats.queued_events, stats.failed_writes),
        (11, 0, 1, 10, 5),
        "the durable event was refused; the background ones wait"
    );
    assert_eq!(stats.degraded, Some(degraded));
    assert!(matches!(fixture.metering.flush().await, Err(Error::Unavailable(_))), "a flush cannot succeed yet");

    faulty.set_unavailable(false);
    let outcome = fixture.metering.record(numbered(&fixture, &token, 10)).await.unwrap();
    assert_eq!(outcome, UsageOutcome::Recorded);
    fixture.metering.flush().await.unwrap();
    assert_eq!(fixture.metering.degraded(), None);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 11, "the 10 background events and the last one");
    assert_eq!(events_in_reports(&fixture).await, 11);
    assert_eq!(tokens_counted(&fixture, &token).await, tokens_of(0..11), "the refused event is not counted");
    let stats = fixture.metering.stats();
    assert_eq!(
        (stats.accepted_events, stats.written_events, stats.refused_events, stats.queued_events, stats.degraded),
        (12, 11, 1, 0, None)
    );
}

#[tokio::test]
async fn a_brief_failure_costs_a_durable_caller_only_the_retries() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    faulty.fail_next(2);
    assert_eq!(fixture.metering.record(numbered(&fixture, &token, 0)).await.unwrap(), UsageOutcome::Recorded);
    assert_eq!((faulty.unavailable_calls(), faulty.record_usage_calls()), (2, 3));
    assert_eq!(fixture.metering.degraded(), None, "healthy again once a write succeeded");
    let stats = fixture.metering.stats();
    assert_eq!((stats.written_events, stats.failed_writes, stats.refused_events), (1, 2, 0));
    assert_eq!(tokens_counted(&fixture, &token).await, 2);
}

#[tokio::test]
async fn a_shutdown_against_a_store_that_stays_down_ends_and_names_what_was_lost() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    faulty.set_unavailable(true);
    let background: Vec<UsageEvent> = (0..7).map(|index| numbered(&fixture, &token, index)).collect();
    fixture.metering.record_many_background(background).await.unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(5), fixture.metering.shutdown()).await;
    let error = ended.expect("the shutdown ends within 5 s").unwrap_err();
    let Error::Unavailable(message) = &error else { panic!("{error}") };
    assert!(message.contains("7 usage events could not be written"), "{message}");
    assert_eq!(faulty.unavailable_calls(), 3, "three attempts");
    assert_eq!(faulty.inner().count_usage_events().await.unwrap(), 0);
    let error = fixture.metering.record_background(numbered(&fixture, &token, 0)).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "stopped: {error}");
}

/// The commit happened but its answer was lost: the writer retries, and the event ids make the
/// retry a duplicate, so the batch is counted once. (The caller hears `Duplicate` for events it
/// sent once: from the writer's side the retry is indistinguishable from a repeat.)
#[tokio::test]
async fn a_lost_acknowledgement_is_retried_and_counted_once() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    faulty.lose_next_acknowledgements(1);
    let events: Vec<UsageEvent> = (0..3)
        .map(|index| {
            let mut usage = numbered(&fixture, &token, index);
            usage.event_id = Some(EventId::parse(&format!("req-{index}")).unwrap());
            usage
        })
        .collect();
    let outcomes = fixture.metering.record_many(events).await.unwrap();
    assert_eq!(outcomes, vec![UsageOutcome::Duplicate; 3]);
    assert_eq!((faulty.record_usage_calls(), faulty.unavailable_calls()), (2, 1));
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 3);
    assert_eq!(events_in_reports(&fixture).await, 3);
    assert_eq!(tokens_counted(&fixture, &token).await, tokens_of(0..3));
    assert_eq!(fixture.metering.degraded(), None);
}

/// CPU time used so far by this thread (Linux), to catch a writer that spins instead of waiting:
/// a current-thread runtime runs the writer task on the test's own thread, and other tests'
/// threads do not count.
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm ends with ')'").1.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 10 ms.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Once the retry delay has passed, a writer holding only background events (no durable caller,
/// no flush) must wait for its next tick, not poll a deadline already past in a loop.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_writer_waiting_to_retry_background_events_does_not_spin() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    faulty.set_unavailable(true);
    fixture.metering.record_background(numbered(&fixture, &token, 0)).await.unwrap();
    assert!(fixture.metering.flush().await.is_err(), "one failed attempt; the next is due in 100 ms");
    let before = cpu_time();
    // Observing an idle second is the point here: nothing to wait for.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time().saturating_sub(before);
    assert!(used < Duration::from_millis(300), "the writer used {used:?} of CPU in one idle second");
}

#[tokio::test]
async fn live_events_tell_when_the_writer_degrades_and_recovers() {
    let (fixture, faulty) = faulty_fixture().await;
    let token = counted_token(&fixture, "alice").await;
    let hub = tollgate::LiveHub::new(tollgate::HubSettings::default(), tollgate::Clock::now(fixture.clock.as_ref()));
    let settings = tollgate::TailSettings { poll: Duration::from_millis(10), sample: Duration::from_millis(10) };
    let clock: Arc<dyn tollgate::Clock> = fixture.clock.clone();
    let tail = tollgate::LiveTail::start(
        hub.clone(),
        Arc::clone(&fixture.store),
        Some(fixture.metering.clone()),
        clock,
        settings,
        None,
    )
    .await
    .unwrap();
    let mut subscription = hub.subscribe("operator", None).unwrap();
    let mut next_system_event = async || loop {
        let event = tokio::time::timeout(Duration::from_secs(30), subscription.receiver.recv()).await.unwrap().unwrap();
        if event.kind.starts_with("writer.") {
            return event;
        }
    };
    faulty.set_unavailable(true);
    assert!(fixture.metering.record(numbered(&fixture, &token, 0)).await.is_err());
    let degraded = next_system_event().await;
    assert_eq!(degraded.kind, "writer.degraded");
    assert!(degraded.data["reason"].as_str().unwrap().contains("storage is down"));
    assert_eq!(degraded.owner, None, "admins only");
    faulty.set_unavailable(false);
    fixture.metering.record(numbered(&fixture, &token, 1)).await.unwrap();
    assert_eq!(next_system_event().await.kind, "writer.recovered");
    tail.stop().await;
}

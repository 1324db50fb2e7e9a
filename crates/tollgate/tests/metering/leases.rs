//! Request quotas admitted from blocks leased from the store, with several processes on one
//! database file (each its own connections): exact in total, unused blocks given back by a clean
//! shutdown, and a crash strands at most the unused rest of its block, never admits past the cap.

use std::sync::Arc;

use tollgate::{LimitSubject, Metering, Metric, Principal, TokenManager, TokenRecord, VerifyRequest, Window};

use crate::{Fixture, counter, hammer, open_store};

const MAX: u64 = 100;

/// Metering and a token manager over the database file opened again: another process.
async fn another_process(fixture: &Fixture) -> (Metering, TokenManager) {
    let store = fixture.open_again().await;
    let metering = Fixture::metering_over(&store, &fixture.clock, |builder| builder).await;
    let tokens = Fixture::tokens_over(&store, &fixture.clock, &metering);
    (metering, tokens)
}

/// A token with a daily request quota of [`MAX`].
async fn capped_token(fixture: &Fixture) -> (String, TokenRecord) {
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, MAX, false).await;
    (secret, token)
}

async fn admit_sequentially(tokens: &TokenManager, secret: &str, calls: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..calls {
        admitted += usize::from(tokens.verify(secret, &VerifyRequest::default()).await.is_ok());
    }
    admitted
}

/// (used, leased, stranded) of the token's request limit, as `metering` sees it.
async fn status(metering: &Metering, token: &TokenRecord) -> (i64, u64, u64) {
    let subject = LimitSubject::Token(token.id);
    let statuses = metering.limit_status(&Principal::Operator, Some(&subject)).await.unwrap();
    assert_eq!(statuses.len(), 1);
    (statuses[0].used, statuses[0].leased, statuses[0].stranded)
}

/// Never more than the cap, and no unit lost: a process that got all it asked for may still hold
/// part of a block (leased, unused) when the other is refused; its shutdown gives that back, and
/// then the cap is reached exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_with_sixty_four_tasks_each_admit_exactly_the_cap() {
    let fixture = Fixture::new().await;
    let (secret, token) = capped_token(&fixture).await;
    let (first_metering, first_tokens) = another_process(&fixture).await;
    let (second_metering, second_tokens) = another_process(&fixture).await;
    let (first, second) =
        tokio::join!(hammer(&first_tokens, &secret, 64, 1, None), hammer(&second_tokens, &secret, 64, 1, None));
    first_metering.flush().await.unwrap();
    second_metering.flush().await.unwrap();
    let (used, leased, stranded) = status(&fixture.metering, &token).await;
    assert_eq!((used, stranded), (100, 0), "every unit is leased out");
    assert_eq!(first + second + leased as usize, 100, "{first} + {second} admitted, {leased} leased unused");

    first_metering.shutdown().await.unwrap();
    second_metering.shutdown().await.unwrap();
    assert_eq!(status(&fixture.metering, &token).await, ((first + second) as i64, 0, 0));
    let rest = hammer(&fixture.tokens, &secret, 64, 1, None).await;
    assert_eq!(first + second + rest, 100, "{first} + {second} + {rest}");
    fixture.metering.shutdown().await.unwrap();
    assert_eq!(counter(&fixture, LimitSubject::Token(token.id), Metric::Requests, Window::Day).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_shutdown_gives_unused_leased_units_to_the_other_process() {
    let fixture = Fixture::new().await;
    let (secret, token) = capped_token(&fixture).await;
    let (first_metering, first_tokens) = another_process(&fixture).await;
    assert_eq!(admit_sequentially(&first_tokens, &secret, 3).await, 3);
    first_metering.flush().await.unwrap(); // reports what it admitted
    // Its first block is 8 units (a quarter of what is left, at most 8): 3 admitted, 5 leased unused.
    assert_eq!(status(&fixture.metering, &token).await, (8, 5, 0));

    first_metering.shutdown().await.unwrap();
    assert_eq!(status(&fixture.metering, &token).await, (3, 0, 0), "the unused 5 are back");
    fixture.advance(61);
    assert_eq!(status(&fixture.metering, &token).await, (3, 0, 0), "a holder that stopped cleanly strands nothing");
    assert_eq!(hammer(&fixture.tokens, &secret, 64, 2, None).await, 97);
    fixture.metering.shutdown().await.unwrap();
    assert_eq!(counter(&fixture, LimitSubject::Token(token.id), Metric::Requests, Window::Day).await, 100);
}

/// A process that dies without `shutdown` (its runtime dropped: no task runs on the way out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_strands_at_most_its_unused_block_and_never_admits_past_the_cap() {
    let fixture = Fixture::new().await;
    let (secret, token) = capped_token(&fixture).await;
    let (path, clock, crashing_secret) = (fixture.path.clone(), Arc::clone(&fixture.clock), secret.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let process = runtime.block_on(async move {
            let store = open_store(&path).await;
            let metering = Fixture::metering_over(&store, &clock, |builder| builder).await;
            let tokens = Fixture::tokens_over(&store, &clock, &metering);
            assert_eq!(admit_sequentially(&tokens, &crashing_secret, 3).await, 3);
            metering.flush().await.unwrap(); // it reported its 3 admissions before it died
            (metering, tokens)
        });
        drop(runtime);
        drop(process);
    })
    .join()
    .expect("the crashing process ran");

    assert_eq!(status(&fixture.metering, &token).await, (8, 5, 0), "a silent holder is live for a minute");
    assert_eq!(fixture.metering.stranded_units().await.unwrap(), 0);
    fixture.advance(61);
    assert_eq!(status(&fixture.metering, &token).await, (8, 0, 5), "then its unused rest is stranded");
    assert_eq!(fixture.metering.stranded_units().await.unwrap(), 5, "the metric agrees");

    let (restarted_metering, restarted_tokens) = another_process(&fixture).await;
    let admitted = hammer(&restarted_tokens, &secret, 64, 2, None).await;
    assert_eq!(admitted, 92, "100 - 8: the stranded units are never admitted");
    assert!(3 + admitted <= 100);
    restarted_metering.shutdown().await.unwrap();
    assert_eq!(status(&fixture.metering, &token).await, (100, 0, 5));
}

/// Every unit a request counter holds is admitted, leased to a live process, or stranded with a
/// dead one, whatever happens; here a verify arrives at a process after its `shutdown` (a request
/// still in flight). It may be refused or admitted, but it must not lease a block that nobody will
/// return and no status shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verify_after_shutdown_leaves_no_unit_unaccounted() {
    let fixture = Fixture::new().await;
    let (secret, token) = capped_token(&fixture).await;
    let (first_metering, first_tokens) = another_process(&fixture).await;
    assert_eq!(admit_sequentially(&first_tokens, &secret, 3).await, 3);
    first_metering.shutdown().await.unwrap();
    let late = admit_sequentially(&first_tokens, &secret, 1).await;
    fixture.advance(61);
    let (used, leased, stranded) = status(&fixture.metering, &token).await;
    let admitted = 3 + late as i64;
    assert_eq!(used - leased as i64 - stranded as i64, admitted, "used {used}, leased {leased}, stranded {stranded}");
    assert_eq!(hammer(&fixture.tokens, &secret, 64, 2, None).await as i64, 100 - used, "the rest is admitted here");
}

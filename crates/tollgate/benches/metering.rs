//! Metering benchmarks: usage recording end to end into a SQLite file (durable calls answered after
//! their group commit is fsync'd, or background recording with the final flush in the time), and
//! quota-checked verifies.
//!
//! `cargo bench -p tollgate --bench metering -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::{
    Actor, AuditEvent, Clock, Description, LimitKey, LimitSpec, LimitSubject, Metering, Metric, ModelName, NewProject,
    NewToken, Principal, ProjectId, ProjectName, ProjectRole, ProviderName, RateLimitSpec, SystemClock, TokenManager,
    TokenName, UsageEvent, VerifyRequest, Window,
};
use tollgate_store::{EventToRecord, ProjectInsert, UsageBatch};

/// Events per measured iteration of the recording benchmarks.
const EVENTS_PER_ITERATION: u64 = 20_000;

mod support;

use support::{BenchStore, hasher};

/// The metering benchmarks' own setup on the shared store.
impl BenchStore {
    fn metering(&self) -> Metering {
        self.runtime.block_on(Metering::builder(self.store.clone()).start()).unwrap()
    }

    fn manager(&self, metering: &Metering) -> TokenManager {
        TokenManager::builder(self.store.clone(), hasher())
            .cache_ttl(Duration::from_secs(3_600))
            .metering(metering.clone())
            .build()
    }

    /// Creates the project `name` with the benchmark owner as a member (so its tokens may be bound to it).
    fn project(&self, name: &str) -> ProjectId {
        let id = ProjectId::generate();
        let project = NewProject { name: ProjectName::parse(name).unwrap(), description: Description::default() };
        let insert = ProjectInsert { id, project, created_at: SystemClock.now() };
        let event = AuditEvent::new(Actor::cli(), "project.create", id, insert.created_at);
        self.runtime.block_on(self.store.insert_project(&insert, &event)).unwrap();
        let event = AuditEvent::new(Actor::cli(), "project.put_member", id, insert.created_at);
        let member = self.store.put_project_member(&id, &self.owner, ProjectRole::Member, insert.created_at, &event);
        self.runtime.block_on(member).unwrap();
        id
    }
}

/// Token `index` of the benchmark owner, bound to one of the four projects in turn.
fn token(bench: &BenchStore, projects: &[ProjectId], index: usize) -> NewToken {
    let mut token = NewToken::new(TokenName::parse(&format!("bench {index}")).unwrap(), bench.owner);
    token.project = Some(projects[index % projects.len()]);
    token
}

/// The four projects the benchmark tokens are bound to.
fn projects(bench: &BenchStore) -> Vec<ProjectId> {
    (0..4).map(|index| bench.project(&format!("project-{index}"))).collect()
}

/// 1,024 distinct events over 100 tokens and four models, priced from the table on record.
fn events(bench: &BenchStore, manager: &TokenManager, metering: &Metering) -> Vec<UsageEvent> {
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-flash"),
    ];
    let projects = projects(bench);
    let ids: Vec<_> = bench.runtime.block_on(async {
        let mut ids = Vec::new();
        for index in 0..100 {
            ids.push(manager.create(&Principal::Operator, token(bench, &projects, index)).await.unwrap().record.id);
        }
        ids
    });
    (0..1_024u32)
        .map(|index| {
            let (provider, model) = models[index as usize % models.len()];
            let mut event = UsageEvent::new(
                ids[index as usize % ids.len()],
                metering.clock().now(),
                ProviderName::parse(provider).unwrap(),
                ModelName::parse(model).unwrap(),
            );
            event.input_tokens = 200 + index;
            event.output_tokens = 50 + index % 300;
            event.latency_ms = Some(100 + index % 2_000);
            event
        })
        .collect()
}

/// How a recording benchmark calls metering.
#[derive(Clone, Copy)]
struct Recording {
    /// Tasks recording at once.
    tasks: u64,
    /// Events per call (`record` for 1, `record_many` beyond).
    chunk: usize,
    /// Durable calls (answered after the commit) or background ones (then one flush).
    durable: bool,
}

/// Records `EVENTS_PER_ITERATION` events as `how` says; the time covers everything up to the commit.
async fn record_then_flush(metering: &Metering, events: &Arc<Vec<UsageEvent>>, how: Recording, round: u64) {
    let per_task = EVENTS_PER_ITERATION / how.tasks;
    let mut tasks = Vec::new();
    for task in 0..how.tasks {
        let (metering, events) = (metering.clone(), Arc::clone(events));
        tasks.push(tokio::spawn(async move {
            for start in (0..per_task as usize).step_by(how.chunk) {
                let batch: Vec<UsageEvent> = (start..(start + how.chunk).min(per_task as usize))
                    .map(|index| {
                        let mut event = events[(task as usize * per_task as usize + index) % events.len()].clone();
                        // Every event has its own idempotency key, as gateways send them.
                        let key = format!("r{round}-t{task}-{index}");
                        event.event_id = Some(tollgate::EventId::parse(&key).unwrap());
                        event
                    })
                    .collect();
                match (how.durable, batch.len()) {
                    (true, 1) => drop(metering.record(batch.into_iter().next().unwrap()).await.unwrap()),
                    (true, _) => drop(metering.record_many(batch).await.unwrap()),
                    (false, _) => metering.record_many_background(batch).await.unwrap(),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    metering.flush().await.unwrap();
}

fn record(c: &mut Criterion) {
    let bench = BenchStore::new();
    let metering = bench.metering();
    let manager = bench.manager(&metering);
    let events = Arc::new(events(&bench, &manager, &metering));

    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(EVENTS_PER_ITERATION));
    group.sample_size(10);
    let mut round = 0;
    for (name, how) in [
        ("durable_one_event_per_call_64_tasks", Recording { tasks: 64, chunk: 1, durable: true }),
        ("durable_100_events_per_call_64_tasks", Recording { tasks: 64, chunk: 100, durable: true }),
        ("background_1000_events_per_call_then_flush", Recording { tasks: 2, chunk: 1_000, durable: false }),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                bench.runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iterations {
                        round += 1;
                        record_then_flush(&metering, &events, how, round).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    let written = metering.stats().written_events;
    let stored = bench.runtime.block_on(bench.store.count_usage_events()).unwrap();
    assert_eq!(written, stored, "every recorded event was written");
    // The store alone: one batch of 8,192 priced events, events and rollups in one transaction.
    let batch: Vec<EventToRecord> = (0..8_192)
        .map(|index| {
            let mut event = events[index % events.len()].clone();
            event.cost =
                metering.cost_of(&event.provider, &event.model, event.input_tokens.into(), event.output_tokens.into());
            EventToRecord { event, counters: Vec::new(), agent: None }
        })
        .collect();
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("store_batch_of_8192_events", |b| {
        b.iter(|| {
            bench
                .runtime
                .block_on(bench.store.record_usage(UsageBatch { events: &batch, ..UsageBatch::default() }))
                .unwrap()
        })
    });
    group.finish();
    bench.runtime.block_on(metering.shutdown()).unwrap();
}

fn verify(c: &mut Criterion) {
    let bench = BenchStore::new();
    let metering = bench.metering();
    let manager = bench.manager(&metering);
    let request = VerifyRequest::default();
    let projects = projects(&bench);
    let (secret, id) = bench.runtime.block_on(async {
        let created = manager.create(&Principal::Operator, token(&bench, &projects, 0)).await.unwrap();
        let huge = LimitSpec::MAX_VALUE;
        let limits = [
            (LimitSubject::Token(created.record.id), Metric::Requests, Window::Minute),
            (LimitSubject::Owner(bench.owner), Metric::Tokens, Window::Day),
            (LimitSubject::Project(projects[0]), Metric::Cost, Window::Month),
        ];
        for (subject, metric, window) in limits {
            let spec = LimitSpec::new(LimitKey { subject, metric, window }, huge, false).unwrap();
            metering.set_limit(&Principal::Operator, spec).await.unwrap();
        }
        (created.secret.expose().to_owned(), created.record.id)
    });
    // Warm the verify cache and load the counters: afterwards every verify stays in memory.
    bench.runtime.block_on(manager.verify(&secret, &request)).unwrap();
    let handle = bench.runtime.handle().clone();

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("three_quotas", |b| {
        b.iter(|| support::ready(Some(&handle), manager.verify(&secret, &request)).unwrap())
    });
    let rate = RateLimitSpec::new(RateLimitSpec::MAX, RateLimitSpec::MAX).unwrap();
    bench.runtime.block_on(metering.set_rate_limit(&Principal::Operator, &id, rate)).unwrap();
    group.bench_function("rate_limit_and_three_quotas", |b| {
        b.iter(|| support::ready(Some(&handle), manager.verify(&secret, &request)).unwrap())
    });
    // Both cores at once: threads verifying the same token share its counters (the contended case).
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("rate_limit_and_three_quotas_2_threads_x_10k", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        let _runtime = handle.enter();
                        for _ in 0..10_000 {
                            support::ready(Some(&handle), manager.verify(&secret, &request)).unwrap();
                        }
                    });
                }
            })
        })
    });
    group.finish();
    bench.runtime.block_on(metering.shutdown()).unwrap();
}

/// Provisioning limits: one `set_limit` call each against one `set_limits` call for all (one
/// transaction, one durable write), per limit set. Tokens are the subjects, three limits each.
fn limits(c: &mut Criterion) {
    let bench = BenchStore::new();
    let metering = bench.metering();
    let manager = bench.manager(&metering);
    let projects = projects(&bench);
    let subjects: Vec<LimitSubject> = bench.runtime.block_on(async {
        let mut subjects = Vec::new();
        for index in 0..1_000 {
            let created = manager.create(&Principal::Operator, token(&bench, &projects, index)).await.unwrap();
            subjects.push(LimitSubject::Token(created.record.id));
        }
        subjects
    });
    let specs = |max: u64| -> Vec<LimitSpec> {
        let metrics = [(Metric::Requests, Window::Day), (Metric::Tokens, Window::Month), (Metric::Cost, Window::Month)];
        subjects
            .iter()
            .flat_map(|subject| metrics.map(|(metric, window)| LimitKey { subject: subject.clone(), metric, window }))
            .map(|key| LimitSpec::new(key, max, false).unwrap())
            .collect()
    };
    let mut group = c.benchmark_group("limits");
    group.sample_size(10);
    let mut round = 1;
    let one_by_one: Vec<LimitSpec> = specs(1).into_iter().take(300).collect();
    group.throughput(Throughput::Elements(one_by_one.len() as u64));
    group.bench_function("set_limit_300_one_call_each", |b| {
        b.iter(|| {
            bench.runtime.block_on(async {
                for spec in &one_by_one {
                    metering.set_limit(&Principal::Operator, spec.clone()).await.unwrap();
                }
            })
        })
    });
    group.throughput(Throughput::Elements(3_000));
    group.bench_function("set_limits_3000_in_one_call", |b| {
        b.iter(|| {
            round += 1;
            bench.runtime.block_on(metering.set_limits(&Principal::Operator, specs(round))).unwrap()
        })
    });
    group.finish();
    bench.runtime.block_on(metering.shutdown()).unwrap();
}

criterion_group!(benches, record, verify, limits);
criterion_main!(benches);

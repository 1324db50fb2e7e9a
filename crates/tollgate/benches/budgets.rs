//! Budget protocol benchmarks over a SQLite file: reports (durable: each answered once its
//! transaction is on disk) from 16 agents at once, and the handshake's lease opening alone (the
//! provider-key delivery it carries is measured in `tokens`: `delivery/*`).
//!
//! `cargo bench -p tollgate --bench budgets`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::{
    AgentId, AgentName, AgentService, Caller, Description, LeaseId, LeaseReportInput, MasterKeys, Metadata, NewAgent,
    NewProviderKey, ProviderList, ProviderName, ProviderSecret, TokenId, TokenManager, VerifyRequest,
};
use tollgate_store::{LeaseOpen, LeaseOpened};

mod support;

use support::{BenchStore, hasher};

const AGENTS: usize = 16;

struct Agents {
    bench: BenchStore,
    service: AgentService,
    agents: Vec<(AgentId, Caller)>,
}

fn agents() -> Agents {
    let bench = BenchStore::new();
    let tokens = TokenManager::builder(bench.store.clone(), hasher()).build();
    let service = AgentService::builder(&tokens, MasterKeys::ephemeral().unwrap()).build();
    let agents = bench.runtime.block_on(async {
        let operator = Caller::operator();
        let key = NewProviderKey {
            provider: ProviderName::parse("openai").unwrap(),
            base_url: None,
            description: Description::default(),
            owner: bench.owner,
            project: None,
            balance: None,
            metadata: Metadata::default(),
        };
        let secret = ProviderSecret::parse("sk-bench-0123456789abcdef").unwrap();
        let key = service.create_provider_key(&operator, key, secret).await.unwrap().id;
        let mut agents = Vec::new();
        for _ in 0..AGENTS {
            let agent = NewAgent {
                name: AgentName::parse("bench").unwrap(),
                owner: bench.owner,
                project: None,
                providers: ProviderList::default(),
                provider_key: Some(key),
                description: Description::default(),
                metadata: Metadata::default(),
            };
            let agent = service.create_agent(&operator, agent).await.unwrap().id;
            service.set_budget(&operator, &agent, i64::MAX / 4, None).await.unwrap();
            let credential = service.create_credential(&operator, &agent, None, None).await.unwrap();
            let verified = service.authenticate(credential.secret.expose(), &VerifyRequest::default()).await.unwrap();
            agents.push((agent, Caller::new(verified.principal())));
        }
        agents
    });
    Agents { bench, service, agents }
}

/// Reports from 16 agents at once, each on its own lease: per report, durable.
fn reports(c: &mut Criterion) {
    let setup = agents();
    let provider = ProviderName::parse("openai").unwrap();
    let leases: Vec<LeaseId> = setup.bench.runtime.block_on(async {
        let mut leases = Vec::new();
        for (_, caller) in &setup.agents {
            let handshake = setup.service.handshake(caller, &provider, Some(i64::MAX / 64), None).await.unwrap();
            leases.push(handshake.lease.id);
        }
        leases
    });
    let mut group = c.benchmark_group("budget");
    group.sample_size(20);
    let mut round = 0u64;
    group.bench_function("report_16_concurrent_agents", |b| {
        b.iter_custom(|iterations| {
            round += 1;
            let per_agent = iterations.div_ceil(AGENTS as u64);
            let start = Instant::now();
            setup.bench.runtime.block_on(async {
                let tasks: Vec<_> = setup
                    .agents
                    .iter()
                    .zip(&leases)
                    .map(|((_, caller), lease)| {
                        let (service, caller, lease) = (setup.service.clone(), caller.clone(), *lease);
                        tokio::spawn(async move {
                            for index in 0..per_agent {
                                let input = LeaseReportInput {
                                    request_id: format!("r{round}-{index}"),
                                    cost: 1,
                                    input_tokens: 100,
                                    output_tokens: 20,
                                    model: "gpt-4o-mini".to_owned(),
                                };
                                service.report_lease(&caller, &lease, &input).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            start.elapsed().mul_f64(iterations as f64 / (per_agent * AGENTS as u64) as f64)
        })
    });
    group.finish();
}

/// The lease opening of a handshake alone (one agent at a time): the account check, the lease, its
/// ledger row and audit entry in one durable transaction.
fn handshake_lease(c: &mut Criterion) {
    let setup = agents();
    let (agent, _) = setup.agents[0];
    let mut group = c.benchmark_group("budget");
    group.sample_size(50);
    let mut latencies: Vec<Duration> = Vec::new();
    group.bench_function("handshake_lease_opening", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let start = Instant::now();
                open_one(&setup, agent);
                let took = start.elapsed();
                latencies.push(took);
                total += took;
            }
            total
        })
    });
    group.finish();
    if latencies.is_empty() {
        return; // filtered out
    }
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)];
    eprintln!(
        "budget/handshake_lease_opening over {} openings: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

/// Opens one lease straight through the store: what a handshake does once the key is decrypted.
fn open_one(setup: &Agents, agent: AgentId) {
    let open = LeaseOpen {
        id: LeaseId::generate(),
        agent,
        credential: TokenId::generate(),
        provider: ProviderName::parse("openai").unwrap(),
        requested: 1_000,
        min_grant: 1,
        refresh_of: None,
        delegate_from: None,
        at: tollgate::Timestamp::from_unix_micros(1_900_000_000_000_000),
        expires_at: tollgate::Timestamp::from_unix_micros(1_900_000_900_000_000),
    };
    let event = tollgate::AuditEvent::new(tollgate::Actor::cli(), "budget.lease.open", open.id, open.at);
    let opened = setup.bench.runtime.block_on(setup.bench.store.open_lease(&open, &[event])).unwrap();
    assert!(matches!(opened, LeaseOpened::Opened(..)));
}

criterion_group!(benches, reports, handshake_lease);
criterion_main!(benches);

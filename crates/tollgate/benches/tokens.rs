//! Token benchmarks: verify (cache hit, cache miss over 100,000 stored tokens, malformed) and create
//! (one caller, and sixteen concurrent callers sharing group commits); agent credentials on the same
//! paths, and the delivery of a provider key (verify + the one read + decrypt, and the audit append).
//!
//! `cargo bench -p tollgate --bench tokens`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::{
    AgentName, AgentService, Caller, Description, MasterKeys, Metadata, NewAgent, NewProviderKey, NewToken, Principal,
    ProviderList, ProviderName, ProviderSecret, TokenManager, TokenName, VerifyRequest,
};

mod support;

use support::{BenchStore, hasher, ready};

fn manager(bench: &BenchStore, cache_ttl: Duration) -> TokenManager {
    TokenManager::builder(bench.store.clone(), hasher()).cache_ttl(cache_ttl).build()
}

fn token(bench: &BenchStore, index: usize) -> NewToken {
    NewToken::new(TokenName::parse(&format!("bench {index}")).unwrap(), bench.owner)
}

/// Verifies served without the store: a cache hit and the two refusals before any lookup.
fn verify_in_memory(c: &mut Criterion) {
    let bench = BenchStore::new();
    let cached = manager(&bench, Duration::from_secs(3600));
    let request = VerifyRequest::default();
    let created = bench.runtime.block_on(cached.create(&Principal::Operator, token(&bench, 0))).unwrap();
    let hot = created.secret.expose().to_owned();
    bench.runtime.block_on(cached.verify(&hot, &request)).unwrap();

    let mut group = c.benchmark_group("verify");
    group.bench_function("cache_hit", |b| b.iter(|| ready(None, cached.verify(&hot, &request)).unwrap()));
    let mut bad_checksum = hot.clone().into_bytes();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] = if bad_checksum[last] == b'A' { b'B' } else { b'A' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    group.bench_function("refuse_bad_checksum", |b| {
        b.iter(|| ready(None, cached.verify(&bad_checksum, &request)).unwrap_err())
    });
    group.bench_function("refuse_malformed", |b| {
        b.iter(|| ready(None, cached.verify("tg_nope", &request)).unwrap_err())
    });
    group.finish();
}

/// An agent with a provider key and `credentials` credentials, over `manager`'s store.
fn agent_with_credentials(
    bench: &BenchStore,
    agents: &AgentService,
    credentials: usize,
) -> (tollgate::AgentId, Vec<String>) {
    bench.runtime.block_on(async {
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
        let secret = ProviderSecret::parse("sk-bench-0123456789abcdefghijklmnop").unwrap();
        let key = agents.create_provider_key(&operator, key, secret).await.unwrap();
        let agent = NewAgent {
            name: AgentName::parse("bench").unwrap(),
            owner: bench.owner,
            project: None,
            providers: ProviderList::default(),
            provider_key: Some(key.id),
            description: Description::default(),
            metadata: Metadata::default(),
        };
        let agent = agents.create_agent(&operator, agent).await.unwrap();
        let mut secrets = Vec::new();
        for _ in 0..credentials {
            let created = agents.create_credential(&operator, &agent.id, None, None).await.unwrap();
            secrets.push(created.secret.expose().to_owned());
        }
        (agent.id, secrets)
    })
}

/// Agent credentials on the verify path (cache hit), and the delivery of a provider key: the whole
/// route's work, its parts (the delivery read, the decryption) and the audit append it ends with.
fn agents(c: &mut Criterion) {
    let bench = BenchStore::new();
    let cached = manager(&bench, Duration::from_secs(3600));
    let agents = AgentService::builder(&cached, MasterKeys::ephemeral().unwrap()).build();
    let (agent, secrets) = agent_with_credentials(&bench, &agents, 1);
    let request = VerifyRequest::default();
    let credential = secrets[0].clone();
    bench.runtime.block_on(agents.authenticate(&credential, &request)).unwrap();
    let mut group = c.benchmark_group("verify");
    group.bench_function("agent_credential_cache_hit", |b| {
        b.iter(|| ready(None, agents.authenticate(&credential, &request)).unwrap())
    });
    group.finish();

    let caller = Caller::new(bench.runtime.block_on(agents.authenticate(&credential, &request)).unwrap().principal());
    let keys = MasterKeys::ephemeral().unwrap();
    let mut group = c.benchmark_group("delivery");
    group.bench_function("verify_read_decrypt_audit", |b| {
        b.iter(|| {
            bench.runtime.block_on(async {
                agents.authenticate(&credential, &request).await.unwrap();
                agents.deliver_provider_key(&caller, &agent).await.unwrap()
            })
        })
    });
    group.bench_function("verify_read_decrypt", |b| {
        // The same work without the audit append, from public parts: verify, the one delivery read,
        // and an AES-256-GCM unwrap and open of a sealed secret of the same size.
        let sealed = keys.seal("pk_bench", b"sk-bench-0123456789abcdefghijklmnop").unwrap();
        b.iter(|| {
            bench.runtime.block_on(async {
                agents.authenticate(&credential, &request).await.unwrap();
                let delivery = bench.store.delivery(&agent).await.unwrap().unwrap();
                criterion::black_box(delivery);
                keys.open("pk_bench", &sealed).unwrap()
            })
        })
    });
    group.bench_function("decrypt_only", |b| {
        let sealed = keys.seal("pk_bench", b"sk-bench-0123456789abcdefghijklmnop").unwrap();
        b.iter(|| keys.open("pk_bench", &sealed).unwrap())
    });
    group.bench_function("audit_append_alone", |b| {
        let event = tollgate::AuditEvent::new(
            tollgate::Actor::cli(),
            "bench.append",
            "bench",
            tollgate::Timestamp::from_unix_micros(0),
        );
        b.iter(|| bench.runtime.block_on(bench.store.append_audit(&event)).unwrap())
    });
    group.finish();
}

/// A verify that goes to the file: the cache disabled, 100,000 tokens stored.
fn verify_cache_miss(c: &mut Criterion) {
    let bench = BenchStore::new();
    let creator = manager(&bench, Duration::from_secs(2));
    let uncached = manager(&bench, Duration::ZERO);
    let request = VerifyRequest::default();
    let n_tokens = 100_000;
    let mut secrets = Vec::new();
    bench.runtime.block_on(async {
        for index in 0..n_tokens {
            let created = creator.create(&Principal::Operator, token(&bench, index)).await.unwrap();
            if index % 100 == 0 {
                secrets.push(created.secret.expose().to_owned());
            }
        }
    });
    // Agent credentials among them: 1,000 credentials verified through the same uncached path.
    let agents = AgentService::builder(&creator, MasterKeys::ephemeral().unwrap()).build();
    let uncached_agents = AgentService::builder(&uncached, MasterKeys::ephemeral().unwrap()).build();
    let (_, credentials) = agent_with_credentials(&bench, &agents, 1_000);
    let mut group = c.benchmark_group("verify");
    let mut next = 0;
    group.bench_function("cache_miss_100k_tokens", |b| {
        b.iter(|| {
            next = (next + 1) % secrets.len();
            bench.runtime.block_on(uncached.verify(&secrets[next], &request)).unwrap()
        })
    });
    group.bench_function("agent_credential_cache_miss_100k_tokens", |b| {
        b.iter(|| {
            next = (next + 1) % credentials.len();
            bench.runtime.block_on(uncached_agents.authenticate(&credentials[next], &request)).unwrap()
        })
    });
    group.finish();
}

fn create(c: &mut Criterion) {
    let bench = BenchStore::new();
    let manager = manager(&bench, Duration::from_secs(2));
    let mut group = c.benchmark_group("create");
    group.sample_size(20);
    group.bench_function("one_token_into_sqlite_file", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            bench.runtime.block_on(async {
                for index in 0..iterations {
                    manager.create(&Principal::Operator, token(&bench, index as usize)).await.unwrap();
                }
            });
            start.elapsed()
        })
    });
    // Concurrent creators share group commits: one fsync answers every create that queued behind it.
    group.bench_function("sixteen_concurrent_callers", |b| {
        b.iter_custom(|iterations| {
            let callers = 16;
            let per_caller = iterations.div_ceil(callers);
            let start = Instant::now();
            bench.runtime.block_on(async {
                let tasks: Vec<_> = (0..callers)
                    .map(|caller| {
                        let manager = manager.clone();
                        let owner = bench.owner;
                        tokio::spawn(async move {
                            for index in 0..per_caller {
                                let name = format!("bench {}", caller * per_caller + index);
                                let token = NewToken::new(TokenName::parse(&name).unwrap(), owner);
                                manager.create(&Principal::Operator, token).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            // Per token created (the last round may create a few more than asked).
            start.elapsed().mul_f64(iterations as f64 / (per_caller * callers) as f64)
        })
    });
    group.finish();
}

criterion_group!(benches, verify_in_memory, agents, create, verify_cache_miss);
criterion_main!(benches);

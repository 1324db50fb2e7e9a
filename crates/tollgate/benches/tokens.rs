//! Token benchmarks: verify (cache hit, cache miss over 100,000 stored tokens, malformed) and create
//! (one caller, and sixteen concurrent callers sharing group commits).
//!
//! `cargo bench -p tollgate --bench tokens`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::{NewToken, Principal, TokenManager, TokenName, VerifyRequest};

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
    let mut group = c.benchmark_group("verify");
    let mut next = 0;
    group.bench_function("cache_miss_100k_tokens", |b| {
        b.iter(|| {
            next = (next + 1) % secrets.len();
            bench.runtime.block_on(uncached.verify(&secrets[next], &request)).unwrap()
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

criterion_group!(benches, verify_in_memory, create, verify_cache_miss);
criterion_main!(benches);

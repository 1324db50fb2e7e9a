//! The shared limiter against a real Redis named by `TOLLGATE_TEST_REDIS_URL` (each test skips, loudly, without
//! it): the same decisions as the in-process limiter, one budget across connections, the fallback while a
//! Redis of its own is killed and restarted, cost errors, and node counting. Every test writes under its own
//! random key prefix and deletes what it wrote.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_support::{
    OwnRedis, REDIS_SERVER, TestRedis, assert_like, hundred_per_minute, key, local_limiter, quota, skipped,
};
use tollgate_ratelimit::{
    Decision, FallbackConfig, FallbackLimiter, LiveNodes, NodeRegistry, RateLimitError, RateLimiter, RateQuota,
};

#[tokio::test]
async fn decides_what_the_local_limiter_decides() {
    let Some(redis) = TestRedis::from_env() else { return };
    let limiter = redis.limiter().await;
    let local = local_limiter();
    // 142_857_143 ns a cell: nanosecond arithmetic the script must carry exactly.
    let (sevenths, smaller) = (quota(7, Duration::from_secs(1), 3), quota(100, Duration::from_secs(60), 5));
    let mut steps: Vec<(u64, RateQuota, u32)> = vec![(1, hundred_per_minute(), 1); 21];
    steps.extend([(1, hundred_per_minute(), 5), (2, sevenths, 1), (2, sevenths, 2), (2, sevenths, 1)]);
    steps.extend([(2, sevenths, 3), (3, hundred_per_minute(), 5), (3, hundred_per_minute(), 5)]);
    steps.extend([(3, hundred_per_minute(), 5), (3, hundred_per_minute(), 3), (3, hundred_per_minute(), 5)]);
    steps.extend([(3, smaller, 1), (3, hundred_per_minute(), 2), (4, smaller, 5), (4, smaller, 1)]);

    let n_steps = u64::try_from(steps.len()).unwrap();
    let mut first_check = HashMap::new();
    for (step, (n, quota, cost)) in steps.into_iter().enumerate() {
        let since = *first_check.entry(n).or_insert_with(Instant::now);
        let decision = limiter.check(&key(n), &quota, cost).await.unwrap();
        // Redis's clock moved at most as far as ours did since this key's first check (plus its microsecond
        // truncation): the only inexactness, and why durations are compared within that.
        let moved = since.elapsed() + Duration::from_micros(1);
        assert_like(decision, local.check(&key(n), &quota, cost).unwrap(), moved, step);
    }
    assert_eq!(limiter.stats().allowed + limiter.stats().limited, n_steps);

    // The key is the prefix and the hex bytes, and it expires when its bucket is full again (12 s here).
    let storage_key = limiter.storage_key(&key(1));
    assert_eq!(storage_key, format!("{}01{}", redis.prefix, "0".repeat(30)));
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&storage_key).query_async(&mut redis.raw().await).await.unwrap();
    assert!((10_000..=12_000).contains(&ttl_ms), "ttl {ttl_ms} ms");
    redis.clean_up().await;
}

/// Exactness where no clock gets in the way: each allowed step moves the stored TAT by exactly `T × cost`
/// nanoseconds (carrying across whole seconds), and the TAT minus the reported `reset_after` is Redis's own
/// `now`, which has microsecond resolution, so the script's arithmetic is right to the nanosecond.
#[tokio::test]
async fn the_stored_tat_moves_by_exactly_the_cells_spent() {
    let Some(redis) = TestRedis::from_env() else { return };
    let limiter = redis.limiter().await;
    let sevenths = quota(7, Duration::from_secs(1), 50);
    let emission = u64::try_from(sevenths.emission_interval().as_nanos()).unwrap();
    assert_eq!(emission, 142_857_143);
    let storage_key = limiter.storage_key(&key(1));
    let mut connection = redis.raw().await;
    let (mut previous_tat, mut previous_now, mut spent) = (None, 0, 0);
    for cost in [1, 3, 1, 2].into_iter().cycle().take(100) {
        let Decision::Allowed { reset_after, .. } = limiter.check(&key(1), &sevenths, cost).await.unwrap() else {
            break;
        };
        spent += cost;
        let stored: String = redis::cmd("GET").arg(&storage_key).query_async(&mut connection).await.unwrap();
        assert_eq!(stored.len(), 19, "nanoseconds since 1970: {stored}");
        let tat: u64 = stored.parse().unwrap();
        if let Some(previous) = previous_tat {
            assert_eq!(tat - previous, emission * u64::from(cost), "after {spent} cells");
        }
        let redis_now = tat - u64::try_from(reset_after.as_nanos()).unwrap();
        assert_eq!(redis_now % 1_000, 0, "redis's TIME is in microseconds: {redis_now}");
        assert!(redis_now >= previous_now);
        (previous_tat, previous_now) = (Some(tat), redis_now);
    }
    assert_eq!(spent, 50, "the whole burst, then a refusal");
    redis.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiters_on_separate_connections_share_one_budget() {
    let Some(redis) = TestRedis::from_env() else { return };
    let limiters = [Arc::new(redis.limiter().await), Arc::new(redis.limiter().await), Arc::new(redis.limiter().await)];

    // A burst of 10, one more an hour: 300 checks at once admit exactly 10.
    let hourly = quota(1, Duration::from_secs(3_600), 10);
    let mut checks = tokio::task::JoinSet::new();
    for n in 0..300 {
        let limiter = Arc::clone(&limiters[n % limiters.len()]);
        checks.spawn(async move { limiter.check(&key(1), &hourly, 1).await.unwrap().is_allowed() });
    }
    let admitted = checks.join_all().await.into_iter().filter(|&allowed| allowed).count();
    assert_eq!(admitted, 10);

    // Greedy callers on all three for 600 ms under "20 a second, burst 5": the burst, then one every 50 ms.
    let twenty_a_second = quota(20, Duration::from_secs(1), 5);
    let started = Instant::now();
    let deadline = started + Duration::from_millis(600);
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..6 {
        let limiter = Arc::clone(&limiters[n % limiters.len()]);
        callers.spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..20_000 {
                if Instant::now() >= deadline {
                    break;
                }
                admitted += u64::from(limiter.check(&key(2), &twenty_a_second, 1).await.unwrap().is_allowed());
            }
            admitted
        });
    }
    let admitted: u64 = callers.join_all().await.into_iter().sum();
    let cells_refilled = started.elapsed().as_millis() / 50;
    let most = 5 + u64::try_from(cells_refilled).unwrap();
    assert!(admitted <= most, "admitted {admitted}, the policy allows {most}");
    assert!(admitted >= 5 + most / 3, "admitted {admitted}: stricter than the policy ({most})");
    redis.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_this_nodes_share_while_redis_is_down_and_comes_back_by_itself() {
    if TestRedis::from_env().is_none() {
        return;
    }
    if !Path::new(REDIS_SERVER).exists() {
        skipped(&format!("{REDIS_SERVER} not found"));
        return;
    }
    let mut server = OwnRedis::start().await;
    let redis = TestRedis::at(server.url());
    let shared = redis.limiter().await;
    let nodes = LiveNodes::new(1);
    let this_node = NodeRegistry::new(&shared, "node-a", nodes.clone());
    let other_node = NodeRegistry::new(&shared, "node-b", LiveNodes::default());
    assert_eq!(this_node.heartbeat().await.unwrap(), 1);
    assert_eq!(other_node.heartbeat().await.unwrap(), 2);
    assert_eq!(this_node.heartbeat().await.unwrap(), 2);
    assert_eq!(nodes.count(), 2);
    // A timeout generous enough for a busy machine: the timeout is not what this test is about.
    let config = FallbackConfig::default().with_timeout(Duration::from_millis(250));
    let limiter = Arc::new(FallbackLimiter::new(shared, local_limiter(), nodes.clone(), config));
    let quota = hundred_per_minute();
    let spent = limiter.check(&key(1), &quota, 1).await.unwrap();
    let full_policy = Decision::Allowed { remaining: 19, limit: 20, reset_after: Duration::from_millis(600) };
    assert_eq!((spent, limiter.is_degraded()), (full_policy, false));

    server.kill();
    // Half the policy (two nodes): 50 a minute, burst 10, one cell every 1.2 s, on the local (fake) clock.
    for n in 1..=10u32 {
        let expected =
            Decision::Allowed { remaining: 10 - n, limit: 10, reset_after: Duration::from_millis(1_200) * n };
        assert_eq!(limiter.check(&key(2), &quota, 1).await.unwrap(), expected, "cell {n}");
    }
    let refused = Decision::Limited {
        retry_after: Duration::from_millis(1_200),
        limit: 10,
        reset_after: Duration::from_secs(12),
    };
    assert_eq!(limiter.check(&key(2), &quota, 1).await.unwrap(), refused);
    assert!(limiter.is_degraded());
    // A cost within the policy but above this node's share spends the whole share; beyond the policy it errs.
    assert!(matches!(
        limiter.check(&key(3), &quota, 15).await.unwrap(),
        Decision::Allowed { remaining: 0, limit: 10, .. }
    ));
    assert!(matches!(
        limiter.check(&key(3), &quota, 21).await,
        Err(RateLimitError::CostExceedsBurst { cost: 21, burst: 20 })
    ));
    assert!(this_node.heartbeat().await.is_err());
    assert_eq!(nodes.count(), 2, "the last known count stays");
    let stats = limiter.stats();
    assert_eq!((stats.fallback_decisions, stats.backend_errors), (12, 1), "only the first check waited on redis");
    assert_eq!((stats.allowed, stats.limited), (12, 1));

    let _recovery = limiter.spawn_recovery().unwrap();
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.is_degraded() {
        assert!(Instant::now() < deadline, "still degraded 10 s after redis came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shared again: the whole policy, and a limiter on another connection sees what this one spent.
    for n in 1..=20u32 {
        let decision = limiter.check(&key(4), &quota, 1).await.unwrap();
        assert!(
            matches!(decision, Decision::Allowed { remaining, limit: 20, .. } if remaining == 20 - n),
            "{decision:?}"
        );
    }
    let elsewhere = redis.limiter().await;
    assert!(matches!(elsewhere.check(&key(4), &quota, 1).await.unwrap(), Decision::Limited { limit: 20, .. }));
    assert_eq!(limiter.stats().fallback_decisions, 12);
    redis.clean_up().await;
}

#[tokio::test]
async fn costs_that_can_never_be_admitted_are_errors_and_spend_nothing() {
    let Some(redis) = TestRedis::from_env() else { return };
    let shared = redis.limiter().await;
    let storage_key = shared.storage_key(&key(1));
    let fallback =
        FallbackLimiter::new(redis.limiter().await, local_limiter(), LiveNodes::new(1), FallbackConfig::default());
    let limiters: [Arc<dyn RateLimiter>; 2] = [Arc::new(shared), Arc::new(fallback)];
    let quota = hundred_per_minute();
    for limiter in &limiters {
        assert!(matches!(limiter.check(&key(1), &quota, 0).await, Err(RateLimitError::ZeroCost)));
        let error = limiter.check(&key(1), &quota, 21).await.unwrap_err();
        assert!(matches!(error, RateLimitError::CostExceedsBurst { cost: 21, burst: 20 }));
        let exists: bool = redis::cmd("EXISTS").arg(&storage_key).query_async(&mut redis.raw().await).await.unwrap();
        assert!(!exists, "{limiter:?} wrote the key");
        assert_eq!(limiter.stats().allowed + limiter.stats().limited, 0);
    }
    for (n, limiter) in (10..).zip(&limiters) {
        let decision = limiter.check(&key(n), &quota, 20).await.unwrap();
        assert!(matches!(decision, Decision::Allowed { remaining: 0, limit: 20, .. }), "{decision:?}");
        assert!(!limiter.is_degraded());
    }
    redis.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_count_each_other_and_expire_when_they_stop() {
    let Some(redis) = TestRedis::from_env() else { return };
    let shared = redis.limiter().await;
    let registry = |id: &str, ttl_ms: u64| {
        NodeRegistry::new(&shared, id, LiveNodes::default()).with_ttl(Duration::from_millis(ttl_ms))
    };
    let (a, b, c) = (registry("a", 30_000), registry("b", 30_000), registry("c", 30_000));
    assert_eq!(a.heartbeat().await.unwrap(), 1);
    assert_eq!(b.heartbeat().await.unwrap(), 2);
    assert_eq!(c.heartbeat().await.unwrap(), 3);
    assert_eq!(a.heartbeat().await.unwrap(), 3, "a heartbeat renews, it does not add");
    assert_eq!(a.nodes().count(), 3);
    c.deregister().await.unwrap();
    assert_eq!(b.heartbeat().await.unwrap(), 2);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(a.set_key()).query_async(&mut redis.raw().await).await.unwrap();
    assert!((1..=30_000).contains(&ttl_ms), "the set expires with its last node: {ttl_ms} ms");

    // A node heartbeating on its own counts itself and the others, and expires once its task is dropped.
    let short_lived = registry("d", 300);
    let seen_by_d = short_lived.nodes().clone();
    let task = short_lived.spawn().unwrap();
    let wait_for = |wanted: u32| {
        let (b, seen_by_d) = (&b, &seen_by_d);
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while b.heartbeat().await.unwrap() != wanted || (wanted == 3 && seen_by_d.count() != 3) {
                assert!(Instant::now() < deadline, "never saw {wanted} nodes");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(3).await;
    drop(task);
    wait_for(2).await;
    assert_eq!(b.nodes().count(), 2);
    redis.clean_up().await;
}

//! Rate limits shared through Redis by three nodes hold within 1 % of the policy; with Redis gone
//! each node limits at its share, answers no 5xx, says so in /health and /metrics, and goes back to
//! Redis by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::BOUND;
use crate::harness::{
    Cluster, RedisServer, ScratchDatabase, postgres_url, redis_url, unique_prefix, until, verify_at, verify_status,
};

fn set_rate(cluster: &Cluster, id: &str, per_minute: u32, burst: u32) {
    let body = format!(r#"{{"requests_per_minute":{per_minute},"burst":{burst}}}"#);
    let reply = cluster.admin_request(0, "PUT", &format!("/v1/tokens/{id}/rate-limit"), Some(&body));
    assert!(reply.status == 200 || reply.status == 201, "{}", reply.body);
    std::thread::sleep(BOUND); // every node has the rate
}

#[test]
fn a_shared_rate_limit_admits_within_one_percent_of_its_policy_across_three_nodes() {
    let (Some(server), Some(redis)) = (postgres_url(), redis_url()) else { return };
    let database = ScratchDatabase::create(&server, "rates");
    let prefix = unique_prefix("rates");
    let cluster = Cluster::start(&database.url(None), 3, &["--redis-url", &redis, "--redis-key-prefix", &prefix]);
    let (secret, id) = cluster.create_token(0, "rated");
    // 100 a second, 50 at once.
    set_rate(&cluster, &id, 6_000, 50);

    let addresses = cluster.addresses();
    let admitted = Arc::new(AtomicU32::new(0));
    // When the last admission was answered, in microseconds after the start: the policy allows
    // burst + rate × that much by then (the bucket was full at the start).
    let last_admitted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let callers: Vec<_> = (0..12)
        .map(|caller| {
            let (addresses, secret, admitted, last_admitted, stop) = (
                Arc::clone(&addresses),
                secret.clone(),
                Arc::clone(&admitted),
                Arc::clone(&last_admitted),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut attempt = caller;
                while !stop.load(Ordering::Acquire) {
                    match verify_at(&addresses[attempt % 3], &secret) {
                        200 => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            last_admitted.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        }
                        429 => {}
                        status => panic!("only 200 or 429, got {status}"),
                    }
                    attempt += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Release);
    for caller in callers {
        caller.join().unwrap();
    }
    let elapsed = last_admitted.load(Ordering::Relaxed) as f64 / 1e6;
    let admitted = f64::from(admitted.load(Ordering::Relaxed));
    let policy = 50.0 + 100.0 * elapsed;
    let error = (admitted - policy) / policy;
    eprintln!(
        "shared rate limit over 3 nodes: {admitted} admitted in {elapsed:.3} s, policy {policy:.1}, error {:.2} %",
        error * 100.0
    );
    assert!(error.abs() <= 0.01, "{admitted} admitted against a policy of {policy:.1}");
}

#[test]
fn without_redis_each_node_limits_at_its_share_and_returns_by_itself() {
    let Some(server) = postgres_url() else { return };
    let Some(mut redis) = RedisServer::start() else { return };
    let database = ScratchDatabase::create(&server, "fallback");
    let cluster = Cluster::start(&database.url(None), 2, &["--redis-url", &redis.url()]);
    let (secret, id) = cluster.create_token(0, "rated");
    // One a second, ten at once: shared, the two nodes together admit ten.
    set_rate(&cluster, &id, 60, 10);
    std::thread::sleep(Duration::from_secs(2)); // both heartbeats are in: two live nodes
    let shared: usize = (0..14).filter(|attempt| verify_status(&cluster.nodes[attempt % 2], &secret) == 200).count();
    assert!((10..=11).contains(&shared), "the nodes shared one burst: {shared}");

    redis.kill();
    let statuses: Vec<u16> = (0..20).map(|_| verify_status(&cluster.nodes[0], &secret)).collect();
    assert!(statuses.iter().all(|status| *status == 200 || *status == 429), "no 5xx: {statuses:?}");
    let alone = statuses.iter().filter(|status| **status == 200).count();
    assert!((5..=6).contains(&alone), "half the burst on one of two nodes: {alone} of {statuses:?}");
    let health = cluster.nodes[0].request("GET", "/health", None, None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "degraded", "{}", health.body);
    assert_eq!(health.json()["rate_limiter"], "local", "{}", health.body);
    let metrics = cluster.nodes[0].request("GET", "/metrics", None, None).body;
    assert!(metrics.contains("tollgate_rate_limiter_degraded 1"), "{metrics}");

    redis.resume();
    let back = until(Duration::from_secs(15), || {
        cluster.nodes[0].request("GET", "/health", None, None).json()["rate_limiter"] == "ok"
    });
    assert!(back.is_some(), "back to Redis by itself");
    eprintln!("back on Redis {back:?} after it returned");
    let metrics = cluster.nodes[0].request("GET", "/metrics", None, None).body;
    assert!(metrics.contains("tollgate_rate_limiter_degraded 0"), "{metrics}");
    assert!(!metrics.contains("tollgate_rate_limit_fallback_decisions_total 0\n"), "{metrics}");
}

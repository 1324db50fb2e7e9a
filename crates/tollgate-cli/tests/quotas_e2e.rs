//! Quotas under 64 concurrent callers over real HTTP, against one `tollgate serve` and against two
//! processes sharing one SQLite file: a request quota, a token quota and a money cap (the last two
//! through reservations) admit exactly their maximum when demand exceeds it, never more.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use support::{Server, cli, create_token, http, workspace};

const CALLERS: usize = 64;

/// How a caller spends: one attempt, `true` while it was admitted.
type Attempt = dyn Fn(&str, u64) -> bool + Send + Sync;

/// `CALLERS` threads spread over `addresses`, each attempting until refused; returns the admissions.
fn spend(addresses: &[String], attempt: Arc<Attempt>) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let address = addresses[caller % addresses.len()].clone();
            let (attempt, admitted) = (Arc::clone(&attempt), Arc::clone(&admitted));
            std::thread::spawn(move || {
                let mut sequence = 0;
                loop {
                    sequence += 1;
                    if !attempt(&address, caller as u64 * 1_000_000 + sequence) {
                        return;
                    }
                    admitted.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().expect("a caller"));
    admitted.load(Ordering::Acquire)
}

fn post(address: &str, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let reply = http(address, "POST", path, Some(bearer), Some(&body.to_string())).expect("HTTP");
    let value = if reply.body.is_empty() { Value::Null } else { reply.json() };
    (reply.status, value)
}

/// A verify with an estimate by the gateway (`gateway`), then a settle with `actual` usage.
fn reserve_and_settle(gateway: &str, secret: &str, reserve: Value, actual: Value) -> Arc<Attempt> {
    let (gateway, secret) = (gateway.to_owned(), secret.to_owned());
    Arc::new(move |address: &str, sequence: u64| {
        let body = json!({ "token": secret, "reserve": reserve });
        let (status, verdict) = post(address, "/v1/tokens/verify", &gateway, &body);
        assert_eq!(status, 200, "{verdict}");
        if verdict["valid"] != json!(true) {
            assert_eq!(verdict["code"], "quota_exceeded", "{verdict}");
            return false;
        }
        let id = verdict["reservation"]["id"].as_str().expect("a reservation id").to_owned();
        let mut settle = actual.clone();
        settle["event_id"] = json!(format!("call-{sequence}"));
        let (status, settled) = post(address, &format!("/v1/reservations/{id}/settle"), &gateway, &settle);
        assert_eq!((status, settled["outcome"].clone()), (200, json!("recorded")), "{settled}");
        true
    })
}

/// The limit's `used` as `limit list` reports it.
fn used(directory: &Path, db: &str, token_id: &str, name: &str) -> i64 {
    let output = cli(directory, &["--db", db, "--json", "limit", "list", "--token-id", token_id]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let limits: Value = serde_json::from_slice(&output.stdout).expect("json");
    let limits = limits.as_array().cloned().unwrap_or_else(|| limits["limits"].as_array().cloned().unwrap_or_default());
    let limit = limits
        .iter()
        .find(|limit| {
            format!("{}_per_{}", limit["metric"].as_str().unwrap(), limit["window"].as_str().unwrap()) == name
        })
        .unwrap_or_else(|| panic!("no {name} in {limits:?}"));
    limit["used"].as_i64().expect("used")
}

fn quotas_hold_with(processes: usize) {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap().to_owned();
    let (gateway, _) = create_token(directory.path(), &db, "gateway", "admin");
    let (requests, requests_id) = create_token(directory.path(), &db, "team-a", "standard");
    let (tokens, tokens_id) = create_token(directory.path(), &db, "team-b", "standard");
    let (money, money_id) = create_token(directory.path(), &db, "team-c", "standard");
    for (id, flag, max) in [
        (&requests_id, "--requests-per-day", "100"),
        (&tokens_id, "--tokens-per-day", "10000"),
        (&money_id, "--cost-per-day", "1.00"),
    ] {
        let output = cli(directory.path(), &["--db", &db_arg, "limit", "set", "--token-id", id, flag, max]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let mut servers: Vec<Server> =
        (0..processes).map(|_| Server::start(directory.path(), &["--db", &db_arg], &[])).collect();
    let addresses: Vec<String> = servers.iter().map(|server| server.address.clone()).collect();

    let verify = {
        let secret = requests.clone();
        Arc::new(move |address: &str, _: u64| {
            let reply = http(address, "GET", "/v1/auth/verify", Some(&secret), None).expect("HTTP");
            match reply.status {
                200 => true,
                429 => false,
                other => panic!("verify answered {other}: {}", reply.body),
            }
        })
    };
    assert_eq!(spend(&addresses, verify), 100, "{processes} process(es): the request quota");

    let actual_tokens = json!({ "provider": "openai", "model": "gpt-4o-mini", "output_tokens": 1000 });
    let held_tokens = json!({ "max_output_tokens": 1000 });
    let admitted = spend(&addresses, reserve_and_settle(&gateway, &tokens, held_tokens, actual_tokens));
    assert_eq!(admitted, 10, "{processes} process(es): the token quota");

    let actual_cost = json!({ "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "cost_micros": 100_000 });
    let held_cost = json!({ "cost_micros": 100_000 });
    let admitted = spend(&addresses, reserve_and_settle(&gateway, &money, held_cost, actual_cost));
    assert_eq!(admitted, 10, "{processes} process(es): $1 at $0.10 a call");

    for server in &mut servers {
        assert_eq!(server.terminate(), 0, "{}", server.log.join("\n"));
    }
    // After a clean stop every leased block is back: the counters hold exactly what was admitted.
    assert_eq!(used(directory.path(), &db_arg, &requests_id, "requests_per_day"), 100);
    assert_eq!(used(directory.path(), &db_arg, &tokens_id, "tokens_per_day"), 10_000);
    assert_eq!(used(directory.path(), &db_arg, &money_id, "cost_per_day"), 1_000_000, "zero overshoot");
}

#[test]
fn sixty_four_callers_against_one_process_get_exactly_the_maximum() {
    quotas_hold_with(1);
}

#[test]
fn sixty_four_callers_against_two_processes_sharing_a_file_get_exactly_the_maximum() {
    quotas_hold_with(2);
}

//! kill -9 during budget-protocol traffic, over real HTTP against the real binary: after every
//! crash the budget invariants hold (`tollgate budget verify`) and every report the agents saw
//! acknowledged is stored exactly once, with its cost.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::{Server, cli, cli_json, cli_with_input, ensure_owner, http, workspace};

const ROUNDS: usize = 5;
const AGENTS: usize = 6;

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One agent runtime: handshake, a few reports, then return or refresh, until told to stop.
fn speak_until(
    address: &str,
    credential: &str,
    worker: usize,
    stop: &AtomicBool,
    acknowledged: &Mutex<BTreeMap<(String, String), i64>>,
) {
    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ ((worker as u64 + 1) * 0x1000_0001) ^ u64::from(std::process::id());
    let mut sequence = 0u64;
    while !stop.load(Ordering::Acquire) {
        let handshake = json!({ "provider": "openai", "requested_microdollars": 20_000 }).to_string();
        let Ok(reply) = http(address, "POST", "/v1/budget/handshake", Some(credential), Some(&handshake)) else {
            return;
        };
        if reply.status != 200 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut lease = reply.json()["lease_id"].as_str().expect("a lease").to_owned();
        for _ in 0..(next(&mut seed) % 12 + 1) {
            sequence += 1;
            let request_id = format!("w{worker}-{sequence}");
            let cost = (next(&mut seed) % 900) as i64;
            let body = json!({ "request_id": request_id, "cost_microdollars": cost, "model": "gpt-4o-mini",
                               "input_tokens": 100, "output_tokens": 20 })
            .to_string();
            let path = format!("/v1/budget/leases/{lease}/report");
            let Ok(reply) = http(address, "POST", &path, Some(credential), Some(&body)) else { return };
            if reply.status == 200 {
                acknowledged.lock().unwrap().insert((lease.clone(), request_id.clone()), cost);
                // A client retry of an acknowledged report: counted once.
                if next(&mut seed).is_multiple_of(4) {
                    let Ok(again) = http(address, "POST", &path, Some(credential), Some(&body)) else { return };
                    assert!(again.status == 200 || again.status == 409, "{}", again.body);
                }
            } else if reply.status == 409 && next(&mut seed).is_multiple_of(2) {
                let path = format!("/v1/budget/leases/{lease}/refresh");
                let Ok(reply) = http(address, "POST", &path, Some(credential), Some("{}")) else { return };
                if reply.status == 200 {
                    lease = reply.json()["id"].as_str().expect("a lease").to_owned();
                }
            }
        }
        let path = format!("/v1/budget/leases/{lease}/return");
        if http(address, "POST", &path, Some(credential), None).is_err() {
            return;
        }
    }
}

fn check(directory: &std::path::Path, db: &str, acknowledged: &BTreeMap<(String, String), i64>, round: usize) {
    let verify = cli(directory, &["--db", db, "budget", "verify"]);
    assert!(verify.status.success(), "round {round}: {}", String::from_utf8_lossy(&verify.stderr));
    let connection = rusqlite::Connection::open(db).unwrap();
    let integrity: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok", "round {round}");
    let mut statement = connection.prepare("SELECT lease_id, request_id, cost FROM budget_reports").unwrap();
    let stored: BTreeMap<(String, String), i64> = statement
        .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (key, cost) in acknowledged {
        assert_eq!(stored.get(key), Some(cost), "round {round}: acknowledged report {key:?} lost or changed");
    }
    let events: i64 = connection
        .query_row("SELECT count(*) FROM usage_event_ids WHERE event_id LIKE 'bls_%'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(events as usize, stored.len(), "round {round}: each stored report is one usage event");
}

#[test]
fn kill_9_during_budget_traffic_keeps_the_ledger_exact() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap().to_owned();
    ensure_owner(dir, &db, "ops");
    let add = ["--db", &db_arg, "--json", "provider-key", "add", "--provider", "openai", "--owner", "ops"];
    let key = cli_with_input(dir, &add, "sk-crash-0123456789abcdef\n")["id"].as_str().unwrap().to_owned();
    let mut credentials = Vec::new();
    for index in 0..AGENTS {
        let name = format!("runner-{index}");
        let create =
            ["--db", &db_arg, "--json", "agent", "create", "--name", &name, "--owner", "ops", "--provider-key", &key];
        let agent = cli_json(dir, &create)["id"].as_str().unwrap().to_owned();
        cli_json(dir, &["--db", &db_arg, "--json", "budget", "set", &agent, "--allocated", "1.50"]);
        let issued = cli_json(dir, &["--db", &db_arg, "--json", "agent", "credential", "create", &agent]);
        credentials.push(issued["token"].as_str().unwrap().to_owned());
    }
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let mut seed = 0xFEED_F00D_u64 ^ u64::from(std::process::id());
    for round in 0..ROUNDS {
        let server = Server::start(dir, &["--db", &db_arg], &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = credentials
            .iter()
            .enumerate()
            .map(|(worker, credential)| {
                let (address, credential, stop, acknowledged) =
                    (server.address.clone(), credential.clone(), Arc::clone(&stop), Arc::clone(&acknowledged));
                std::thread::spawn(move || speak_until(&address, &credential, worker, &stop, &acknowledged))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + next(&mut seed) % 900));
        let killed = std::process::Command::new("kill").arg("-9").arg(server.pid().to_string()).status().unwrap();
        assert!(killed.success());
        stop.store(true, Ordering::Release);
        for worker in workers {
            worker.join().expect("an agent thread");
        }
        drop(server);
        check(dir, &db_arg, &acknowledged.lock().unwrap(), round);
    }
    let acknowledged = acknowledged.lock().unwrap();
    assert!(acknowledged.len() > ROUNDS * AGENTS, "the agents reported: {}", acknowledged.len());
    let audit = cli(dir, &["--db", &db_arg, "audit", "verify"]);
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    eprintln!("{ROUNDS} kills: {} acknowledged reports, each stored once with its cost", acknowledged.len());
}

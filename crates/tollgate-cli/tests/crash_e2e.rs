//! kill -9 under mixed write load, over real HTTP against the real binary: after every crash the
//! database is intact, the audit chain verifies, every write the client saw acknowledged is there,
//! and the request quota never admitted more than its maximum across all the restarts.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, create_token, ensure_owner, http, workspace};

const ROUNDS: usize = 10;
const WRITERS: usize = 8;
/// The request quota the verifiers spend across every round.
const QUOTA: u64 = 400;

/// What the clients saw acknowledged (a 2xx), to look for after the crashes.
#[derive(Default)]
struct Acknowledged {
    tokens: BTreeSet<String>,
    users: BTreeSet<String>,
    limits: BTreeSet<(String, u64)>,
    revoked: BTreeSet<String>,
    events: BTreeSet<String>,
}

/// A cheap pseudo-random sequence (the test must not depend on a crate for it).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One writer: a mix of token creates, revokes, limit sets, usage events and (rarely) user creates.
fn write_until(address: &str, admin: &str, worker: usize, stop: &AtomicBool, acknowledged: &Mutex<Acknowledged>) {
    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ ((worker as u64 + 1) * 0x1000_0001);
    let mut sequence = 0u64;
    let mut mine: Vec<String> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        sequence += 1;
        let tag = format!("w{worker}-{}-{sequence}", std::process::id());
        let (method, path, body) = match next(&mut seed) % 10 {
            0..=2 => ("POST", "/v1/tokens".to_owned(), json!({ "name": tag, "owner": "ops" })),
            3 if !mine.is_empty() => ("POST", format!("/v1/tokens/{}/revoke", mine.remove(0)), json!({})),
            4 if !mine.is_empty() => {
                let max = next(&mut seed) % 1_000 + 1;
                ("PUT", format!("/v1/limits/token/{}/requests_per_hour", mine[mine.len() - 1]), json!({ "max": max }))
            }
            5 if sequence.is_multiple_of(25) => (
                "POST",
                "/v1/users".to_owned(),
                json!({ "username": tag.replace('-', "_"), "email": format!("{tag}@example.com"), "role": "viewer",
                        "password": "correct horse battery staple" }),
            ),
            _ => {
                let token = mine.last().cloned().unwrap_or_else(|| "none".to_owned());
                if token == "none" {
                    continue;
                }
                let events: Vec<_> = (0..5)
                    .map(|index| {
                        json!({ "event_id": format!("{tag}-{index}"), "token_id": token, "provider": "openai",
                                "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10 })
                    })
                    .collect();
                ("POST", "/v1/usage".to_owned(), json!({ "events": events }))
            }
        };
        let Ok(reply) = http(address, method, &path, Some(admin), Some(&body.to_string())) else { return };
        if !(200..300).contains(&reply.status) {
            continue;
        }
        let reply_json = reply.json();
        let mut seen = acknowledged.lock().unwrap();
        match (method, path.as_str()) {
            ("POST", "/v1/tokens") => {
                let id = reply_json["id"].as_str().expect("an id").to_owned();
                seen.tokens.insert(id.clone());
                mine.push(id);
            }
            ("POST", "/v1/users") => {
                seen.users.insert(reply_json["id"].as_str().expect("an id").to_owned());
            }
            ("POST", "/v1/usage") => {
                for event in reply_json["events"].as_array().expect("events") {
                    assert_eq!(event["outcome"], "recorded", "{reply_json}");
                    seen.events.insert(event["event_id"].as_str().expect("an event id").to_owned());
                }
            }
            ("PUT", _) => {
                seen.limits.insert((path.clone(), body["max"].as_u64().unwrap()));
            }
            _ => {
                seen.revoked.insert(reply_json["id"].as_str().expect("an id").to_owned());
            }
        }
    }
}

/// One verifier spending the shared quota; returns how many verifies were admitted.
fn verify_until(address: &str, secret: &str, stop: &AtomicBool, admitted: &AtomicU64) {
    while !stop.load(Ordering::Acquire) {
        match http(address, "GET", "/v1/auth/verify", Some(secret), None) {
            Ok(reply) if reply.status == 200 => {
                admitted.fetch_add(1, Ordering::AcqRel);
            }
            Ok(reply) if reply.status == 429 => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn sql_strings(connection: &rusqlite::Connection, sql: &str) -> BTreeSet<String> {
    let mut statement = connection.prepare(sql).unwrap();
    statement.query_map([], |row| row.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

fn check(db: &Path, acknowledged: &Acknowledged, admitted: u64, round: usize) {
    let connection = rusqlite::Connection::open(db).unwrap();
    let integrity: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok", "round {round}");
    let tokens = sql_strings(&connection, "SELECT id FROM tokens");
    let missing: Vec<_> = acknowledged.tokens.difference(&tokens).collect();
    assert!(missing.is_empty(), "round {round}: acknowledged tokens lost: {missing:?}");
    let revoked = sql_strings(&connection, "SELECT id FROM tokens WHERE revoked_at IS NOT NULL");
    let missing: Vec<_> = acknowledged.revoked.difference(&revoked).collect();
    assert!(missing.is_empty(), "round {round}: acknowledged revocations lost: {missing:?}");
    let users = sql_strings(&connection, "SELECT id FROM users");
    assert!(acknowledged.users.is_subset(&users), "round {round}: acknowledged users lost");
    let events = sql_strings(&connection, "SELECT event_id FROM usage_event_ids");
    let missing = acknowledged.events.difference(&events).count();
    assert_eq!(missing, 0, "round {round}: {missing} acknowledged usage events lost");
    for (path, max) in &acknowledged.limits {
        let token = path.split('/').nth(4).unwrap();
        let stored: Vec<i64> = connection
            .prepare("SELECT maximum FROM quota_limits WHERE subject = ? AND metric = 'requests' AND period = 'hour'")
            .unwrap()
            .query_map([token], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stored.len(), 1, "round {round}: the limit {path} (max {max}) was acknowledged");
    }
    assert!(admitted <= QUOTA, "round {round}: {admitted} verifies admitted against a quota of {QUOTA}");
}

#[test]
fn kill_9_under_mixed_writes_loses_nothing_acknowledged_and_never_overspends_a_quota() {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap().to_owned();
    ensure_owner(directory.path(), &db, "ops");
    let (admin, _) = create_token(directory.path(), &db, "root", "admin");
    let (metered, metered_id) = create_token(directory.path(), &db, "ops", "standard");
    let limit = ["--db", &db_arg, "limit", "set", "--token-id", &metered_id, "--requests-per-day", &QUOTA.to_string()];
    assert!(support::cli(directory.path(), &limit).status.success());

    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let admitted = Arc::new(AtomicU64::new(0));
    let mut seed = 0xDEAD_BEEF_u64 ^ u64::from(std::process::id());
    for round in 0..ROUNDS {
        let server = Server::start(directory.path(), &["--db", &db_arg, "--bcrypt-cost", "10"], &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for worker in 0..WRITERS {
            let (address, admin, stop, acknowledged) =
                (server.address.clone(), admin.clone(), Arc::clone(&stop), Arc::clone(&acknowledged));
            workers.push(std::thread::spawn(move || write_until(&address, &admin, worker, &stop, &acknowledged)));
        }
        for _ in 0..4 {
            let (address, metered, stop, admitted) =
                (server.address.clone(), metered.clone(), Arc::clone(&stop), Arc::clone(&admitted));
            workers.push(std::thread::spawn(move || verify_until(&address, &metered, &stop, &admitted)));
        }
        // A random point between 300 ms and 1.3 s into the load.
        std::thread::sleep(Duration::from_millis(300 + next(&mut seed) % 1_000));
        let killed = std::process::Command::new("kill").arg("-9").arg(server.pid().to_string()).status().unwrap();
        assert!(killed.success());
        stop.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(60);
        for worker in workers {
            worker.join().expect("a client thread");
        }
        assert!(Instant::now() < deadline, "clients stop once the server is gone");
        drop(server);
        check(&db, &acknowledged.lock().unwrap(), admitted.load(Ordering::Acquire), round);
    }
    let seen = acknowledged.lock().unwrap();
    assert!(seen.tokens.len() > ROUNDS && seen.events.len() > ROUNDS * 5, "the load did write");
    let audit = support::cli(directory.path(), &["--db", &db_arg, "audit", "verify"]);
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    eprintln!(
        "{ROUNDS} kills: {} tokens, {} revocations, {} users, {} limits, {} usage events acknowledged and kept; \
         {} of {QUOTA} requests admitted",
        seen.tokens.len(),
        seen.revoked.len(),
        seen.users.len(),
        seen.limits.len(),
        seen.events.len(),
        admitted.load(Ordering::Acquire)
    );
}

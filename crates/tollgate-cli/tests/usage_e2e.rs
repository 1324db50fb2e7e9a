//! Usage over real HTTP against the real binary: a retried event is counted once (sequential and
//! concurrent repeats), and a tenant driving its sums to the edge of i64 cannot stall anyone else:
//! its events saturate, other tenants' events commit, and SIGTERM ends within the timeout.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, create_token, http, workspace};

fn event(token_id: &str, event_id: &str, cost_micros: i64) -> Value {
    json!({ "event_id": event_id, "token_id": token_id, "provider": "openai", "model": "gpt-4o",
            "input_tokens": 1000, "output_tokens": 100, "cost_micros": cost_micros })
}

fn post_usage(address: &str, bearer: &str, body: &Value) -> Value {
    let reply = http(address, "POST", "/v1/usage", Some(bearer), Some(&body.to_string())).expect("HTTP");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn totals(server: &Server, bearer: &str, token_id: &str) -> Value {
    let reply = server.request("GET", &format!("/v1/usage?token_id={token_id}&hours=2"), Some(bearer), None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["totals"].clone()
}

#[test]
fn the_same_event_id_is_stored_and_counted_once_however_it_is_repeated() {
    let (directory, db) = workspace();
    let (admin, token_id) = create_token(directory.path(), &db, "gateway", "admin");
    let server = Server::start(directory.path(), &["--db", db.to_str().unwrap()], &[]);

    let first = post_usage(&server.address, &admin, &event(&token_id, "req-1", 500));
    assert_eq!((first["recorded"].clone(), first["duplicates"].clone()), (json!(1), json!(0)));
    let again = post_usage(&server.address, &admin, &event(&token_id, "req-1", 500));
    assert_eq!(again["events"][0]["outcome"], "duplicate", "{again}");

    // Sixteen clients retrying one event at once: one is recorded, fifteen are told it was.
    let address = Arc::new(server.address.clone());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (address, admin, token_id) = (Arc::clone(&address), admin.clone(), token_id.clone());
            std::thread::spawn(move || post_usage(&address, &admin, &event(&token_id, "req-2", 700)))
        })
        .collect();
    let outcomes: Vec<Value> =
        threads.into_iter().map(|thread| thread.join().unwrap()["events"][0]["outcome"].clone()).collect();
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == json!("recorded")).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == json!("duplicate")).count(), 15, "{outcomes:?}");

    // A batch repeating itself and an earlier event: only the new one counts.
    let batch =
        json!({ "events": [event(&token_id, "req-3", 1), event(&token_id, "req-3", 1), event(&token_id, "req-1", 1)] });
    let mixed = post_usage(&server.address, &admin, &batch);
    assert_eq!((mixed["recorded"].clone(), mixed["duplicates"].clone()), (json!(1), json!(2)), "{mixed}");

    let totals = totals(&server, &admin, &token_id);
    assert_eq!((totals["events"].clone(), totals["cost_micros"].clone()), (json!(3), json!(1_201)), "{totals}");
}

#[test]
fn a_tenant_at_the_edge_of_i64_cannot_stall_the_others_and_shutdown_ends_in_time() {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap().to_owned();
    // The gateway reports every tenant's usage (mallory's own token is refused once her cap is spent).
    let (gateway, _) = create_token(directory.path(), &db, "gateway", "admin");
    let (_, mallory_id) = create_token(directory.path(), &db, "mallory", "standard");
    let (alice, alice_id) = create_token(directory.path(), &db, "alice", "standard");
    let limit = ["--db", &db_arg, "limit", "set", "--token-id", &mallory_id, "--cost-per-day", "1000000"];
    assert!(support::cli(directory.path(), &limit).status.success());
    let mut server = Server::start(directory.path(), &["--db", &db_arg, "--shutdown-timeout", "5s"], &[]);

    // Mallory's first event, then her sums pushed to a whisker below i64::MAX behind the server's
    // back (reaching it honestly takes nine million events of the per-event maximum).
    post_usage(&server.address, &gateway, &event(&mallory_id, "m-0", 1));
    let connection = rusqlite::Connection::open(&db).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    let near = i64::MAX - 1_000;
    let rows = connection
        .execute(
            "UPDATE usage_rollups SET cost_micros = ?1, input_tokens = ?1 WHERE token_id = ?2",
            rusqlite::params![near, mallory_id],
        )
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(connection.execute("UPDATE quota_counters SET used = ?1", [near]).unwrap(), 1);

    let flood = {
        let (address, gateway, mallory_id) = (server.address.clone(), gateway.clone(), mallory_id.clone());
        std::thread::spawn(move || {
            for request in 0..20 {
                let events: Vec<Value> = (0..100)
                    .map(|index| event(&mallory_id, &format!("m-{request}-{index}"), 1_000_000_000_000))
                    .collect();
                let answer = post_usage(&address, &gateway, &json!({ "events": events }));
                assert_eq!(answer["recorded"], 100, "saturated, not refused: {answer}");
            }
        })
    };
    for request in 0..50 {
        let answer = post_usage(&server.address, &alice, &event(&alice_id, &format!("a-{request}"), 10));
        assert_eq!(answer["recorded"], 1, "{answer}");
    }
    flood.join().expect("the flood");

    let alice_totals = totals(&server, &alice, &alice_id);
    assert_eq!((alice_totals["events"].clone(), alice_totals["cost_micros"].clone()), (json!(50), json!(500)));
    let mallory_totals = totals(&server, &gateway, &mallory_id);
    assert_eq!(mallory_totals["cost_micros"], json!(i64::MAX), "the sum saturates: {mallory_totals}");
    let used: i64 = connection.query_row("SELECT used FROM quota_counters", [], |row| row.get(0)).unwrap();
    assert_eq!(used, i64::MAX, "the counter saturates");
    let health = server.request("GET", "/health", None, None);
    assert_eq!(health.json()["status"], "ok", "{}", health.body);

    let started = Instant::now();
    assert_eq!(server.terminate(), 0, "{}", server.log.join("\n"));
    assert!(started.elapsed() < Duration::from_secs(10), "SIGTERM took {:?}", started.elapsed());
    assert!(server.log.iter().any(|line| line.contains("everything acknowledged is written")), "{:?}", server.log);
}

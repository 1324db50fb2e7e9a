//! Live events across nodes: a control change through one node reaches a subscriber of another
//! (every node tails the shared audit log), and a node-local metering sample (`quota.exceeded`)
//! reaches it through the Redis relay.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::BOUND;
use crate::harness::{Cluster, ScratchDatabase, postgres_url, redis_url, unique_prefix, until, verify_status};
use crate::support;

/// `tollgate events` against node `index`, for `count` events of `kind`; returns its JSON lines.
fn tail(cluster: &Cluster, index: usize, kind: &str, count: usize) -> std::process::Child {
    let token_file = cluster.directory.path().join("admin.token");
    std::fs::write(&token_file, format!("{}\n", cluster.admin)).unwrap();
    let url = format!("http://{}", cluster.nodes[index].address);
    Command::new(support::BINARY)
        .args(["--json", "events", "--url", &url, "--token-file", token_file.to_str().unwrap()])
        .args(["--type", kind, "--count", &count.to_string()])
        .env_remove("TOLLGATE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until node `index` counts `streams` open event streams.
fn wait_for_streams(cluster: &Cluster, index: usize, streams: usize) {
    let needle = format!("tollgate_live_subscribers {streams}");
    let open = until(Duration::from_secs(30), || {
        cluster.nodes[index].request("GET", "/metrics", None, None).body.contains(&needle)
    });
    assert!(open.is_some(), "the event stream did not open");
}

/// The JSON lines `child` printed; it must finish within thirty seconds.
fn events_of(mut child: std::process::Child) -> Vec<Value> {
    if until(Duration::from_secs(30), || child.try_wait().unwrap().is_some()).is_none() {
        let _ = child.kill();
        panic!("the subscriber did not receive its event");
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn events_made_on_one_node_reach_subscribers_of_another() {
    let (Some(server), Some(redis)) = (postgres_url(), redis_url()) else { return };
    let database = ScratchDatabase::create(&server, "events");
    let prefix = unique_prefix("events");
    let cluster = Cluster::start(&database.url(None), 2, &["--redis-url", &redis, "--redis-key-prefix", &prefix]);

    let revoked = tail(&cluster, 1, "token.revoked", 1);
    let exceeded = tail(&cluster, 1, "quota.exceeded", 1);
    wait_for_streams(&cluster, 1, 2);

    // A revocation through node 0, seen on node 1 (from the shared audit log).
    let (_, doomed) = cluster.create_token(0, "doomed");
    let reply = cluster.admin_request(0, "POST", &format!("/v1/tokens/{doomed}/revoke"), None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = events_of(revoked);
    assert_eq!(
        (events[0]["event"].clone(), events[0]["data"]["subject"].clone()),
        (json!("token.revoked"), json!(doomed))
    );

    // A quota refusal on node 0, which only node 0 counts, seen on node 1 through the relay.
    let (secret, id) = cluster.create_token(0, "metered");
    let reply =
        cluster.admin_request(0, "PUT", &format!("/v1/limits/token/{id}/requests_per_day"), Some(r#"{"max":1}"#));
    assert!(reply.status == 200 || reply.status == 201, "{}", reply.body);
    std::thread::sleep(BOUND);
    assert_eq!(verify_status(&cluster.nodes[0], &secret), 200);
    assert_eq!(verify_status(&cluster.nodes[0], &secret), 429);
    let events = events_of(exceeded);
    assert_eq!(events[0]["event"], "quota.exceeded", "{events:?}");
    assert_eq!(events[0]["data"]["subject"], json!(id), "{events:?}");
}

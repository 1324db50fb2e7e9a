//! End-to-end over a real socket: a rate limit set through `PUT /v1/tokens/{id}/rate-limit` on the
//! running `tollgate serve` refuses the request after the burst with 429 and `Retry-After`, and the
//! shell (`tollgate limit list`) sees the same rate.

mod support;

use serde_json::json;
use support::{Server, cli, create_token, workspace};

#[test]
fn a_rate_limit_set_over_http_refuses_after_the_burst() {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap();
    let (admin, _) = create_token(directory.path(), &db, "root", "admin");
    let (alice, alice_id) = create_token(directory.path(), &db, "alice", "standard");
    let server = Server::start(directory.path(), &["--db", db_arg, "--bcrypt-cost", "10"], &[]);

    let path = format!("/v1/tokens/{alice_id}/rate-limit");
    let denied = server.request("PUT", &path, Some(&alice), Some(r#"{"requests_per_minute":1,"burst":2}"#));
    assert_eq!(denied.status, 403, "{}", denied.body);
    let bad = server.request("PUT", &path, Some(&admin), Some(r#"{"requests_per_minute":1,"burst":0}"#));
    assert_eq!((bad.status, bad.json()["field"].clone()), (400, json!("burst")), "{}", bad.body);
    // One a minute sustained: nothing refills during the test, so exactly the burst of 2 passes.
    let set = server.request("PUT", &path, Some(&admin), Some(r#"{"requests_per_minute":1,"burst":2}"#));
    assert_eq!(set.status, 200, "{}", set.body);

    for _ in 0..2 {
        let passed = server.request("GET", "/v1/auth/verify", Some(&alice), None);
        assert_eq!(passed.status, 200, "{}", passed.body);
    }
    let refused = server.request("GET", "/v1/auth/verify", Some(&alice), None);
    assert_eq!((refused.status, refused.json()["code"].clone()), (429, json!("rate_limited")), "{}", refused.body);
    let retry_after: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    let listed = cli(directory.path(), &["--db", db_arg, "--json", "limit", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["rate_limits"][0]["token_id"], alice_id.as_str(), "{listed}");
    assert_eq!(listed["rate_limits"][0]["burst"], 2, "{listed}");
}

//! `POST /v1/leaks`: admins classify candidate strings (which hold tollgate secrets, whose, in which
//! state) and revoke what they find with reason `leaked`; others are refused; the body is bounded.

mod support;

use serde_json::json;
use support::Fixture;
use tollgate::{Permission, Role};

#[tokio::test]
async fn admins_classify_and_revoke_every_kind() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (api, api_id) = fixture.token("alice", Permission::Standard).await;
    fixture.user("dora", Role::User).await;
    let refresh = fixture.login("dora").await["refresh_token"].as_str().unwrap().to_owned();
    let mut wrong_checksum = api.clone().into_bytes();
    let last = wrong_checksum.len() - 1;
    wrong_checksum[last] = if wrong_checksum[last] == b'A' { b'B' } else { b'A' };
    let wrong_checksum = String::from_utf8(wrong_checksum).unwrap();
    let candidates = json!([format!("export KEY={api}"), "nothing here", wrong_checksum, refresh]);

    let looked = fixture.post("/v1/leaks", Some(&admin), json!({ "candidates": candidates })).await;
    let found = looked.ok(200)["found"].as_array().unwrap().clone();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0]["candidate"].as_u64(), found[0]["kind"].as_str()), (Some(0), Some("api_token")));
    assert_eq!(
        (found[0]["id"].as_str(), found[0]["state"].as_str()),
        (Some(api_id.to_string().as_str()), Some("active"))
    );
    assert_eq!((found[1]["candidate"].as_u64(), found[1]["kind"].as_str()), (Some(3), Some("refresh_token")));
    assert_eq!(found[1]["state"].as_str(), Some("active"));
    assert!(!looked.text().contains(&api[3..]) && !looked.text().contains(&refresh[4..]));
    fixture.get("/v1/auth/verify", Some(&api)).await.ok(200);

    let revoked = fixture.post("/v1/leaks", Some(&admin), json!({ "candidates": candidates, "revoke": true })).await;
    let found = revoked.ok(200)["found"].as_array().unwrap().clone();
    assert!(found.iter().all(|leak| leak["state"] == "revoked" && leak["revoked_now"] == true), "{found:?}");
    fixture.get("/v1/auth/verify", Some(&api)).await.problem(401, "revoked");
    fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await.problem(401, "revoked");
    let audit = fixture.get(&format!("/v1/audit?target={api_id}"), Some(&admin)).await;
    let entries = audit.ok(200)["items"].as_array().unwrap().clone();
    assert!(
        entries.iter().any(|entry| entry["action"] == "token.revoke" && entry["reason"] == "leaked"),
        "{entries:?}"
    );

    let again = fixture.post("/v1/leaks", Some(&admin), json!({ "candidates": candidates, "revoke": true })).await;
    assert!(again.ok(200)["found"].as_array().unwrap().iter().all(|leak| leak["revoked_now"] == false));
}

#[tokio::test]
async fn non_admins_are_refused_and_bounds_name_the_field() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (standard, _) = fixture.token("alice", Permission::Standard).await;
    for candidates in [json!([standard.clone()]), json!([])] {
        let refused = fixture.post("/v1/leaks", Some(&standard), json!({ "candidates": candidates })).await;
        refused.problem(403, "forbidden");
    }
    fixture.get("/v1/auth/verify", Some(&standard)).await.ok(200);

    let too_many: Vec<String> = (0..101).map(|index| format!("c{index}")).collect();
    let reply = fixture.post("/v1/leaks", Some(&admin), json!({ "candidates": too_many })).await;
    assert!(reply.problem(400, "invalid_field")["detail"].as_str().unwrap().starts_with("candidates:"));
    let too_long = "x".repeat(4097);
    let reply = fixture.post("/v1/leaks", Some(&admin), json!({ "candidates": ["ok", too_long] })).await;
    assert!(reply.problem(400, "invalid_field")["detail"].as_str().unwrap().starts_with("candidates[1]:"));
    fixture.post("/v1/leaks", Some(&admin), json!({ "candidate": [] })).await.problem(400, "invalid_field");
}

//! The gateway pattern over HTTP: verify with an estimate (body or header) holds it, settle with
//! the actual usage (idempotent), release, expiry; bad estimates name the field; dead letters and
//! reservations are only visible to whom they belong.

mod support;

use axum::http::Method;
use serde_json::json;
use support::{Fixture, request};
use tollgate::Permission;

/// A $1/day cost cap on a fresh standard token; returns (gateway admin secret, token secret, token id).
async fn capped(fixture: &Fixture) -> (String, String, String) {
    let (gateway, _) = fixture.token("gateway", Permission::Admin).await;
    let (secret, id) = fixture.token("alice", Permission::Standard).await;
    let path = format!("/v1/limits/token/{id}/cost_per_day");
    fixture.put(&path, Some(&gateway), json!({ "max": 1_000_000 })).await.ok(200);
    (gateway, secret, id.to_string())
}

#[tokio::test]
async fn a_reservation_holds_until_settled_and_settling_twice_counts_once() {
    let fixture = Fixture::new().await;
    let (gateway, secret, id) = capped(&fixture).await;
    let body = json!({ "token": secret, "reserve": { "cost_micros": 600_000 } });
    let verdict = fixture.post("/v1/tokens/verify", Some(&gateway), body.clone()).await.ok(200).clone();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["reservation"]["held_cost_micros"], 600_000, "{verdict}");
    let reservation = verdict["reservation"]["id"].as_str().unwrap().to_owned();

    // $0.60 held: a second $0.60 does not fit, a $0.40 does.
    let second = fixture.post("/v1/tokens/verify", Some(&gateway), body).await.ok(200).clone();
    assert_eq!((second["valid"].clone(), second["code"].clone()), (json!(false), json!("quota_exceeded")));
    let small = json!({ "token": secret, "reserve": { "cost_micros": 400_000 } });
    let held = fixture.post("/v1/tokens/verify", Some(&gateway), small).await.ok(200).clone();
    let other = held["reservation"]["id"].as_str().unwrap().to_owned();

    let actual = json!({ "event_id": "call-1", "provider": "openai", "model": "gpt-4o", "cost_micros": 250_000 });
    let path = format!("/v1/reservations/{reservation}/settle");
    let settled = fixture.post(&path, Some(&gateway), actual.clone()).await.ok(200).clone();
    assert_eq!(
        (settled["outcome"].clone(), settled["reservation"]["state"].clone()),
        (json!("recorded"), json!("settled"))
    );
    let again = fixture.post(&path, Some(&gateway), actual).await.ok(200).clone();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    let limits = fixture.get(&format!("/v1/limits/token/{id}"), Some(&gateway)).await.ok(200).clone();
    assert_eq!(limits["items"][0]["used"], 650_000, "the actual $0.25 plus the $0.40 still held: {limits}");

    let released = fixture.post(&format!("/v1/reservations/{other}/release"), Some(&gateway), json!({})).await;
    assert_eq!(released.ok(200)["state"], "released");
    let limits = fixture.get(&format!("/v1/limits/token/{id}"), Some(&gateway)).await.ok(200).clone();
    assert_eq!(limits["items"][0]["used"], 250_000, "{limits}");
    // A released reservation cannot be settled: its call did not happen.
    let late = json!({ "provider": "openai", "model": "gpt-4o", "cost_micros": 1 });
    let refused = fixture.post(&format!("/v1/reservations/{other}/settle"), Some(&gateway), late).await;
    refused.problem(409, "conflict");
    let shown = fixture.get(&format!("/v1/reservations/{reservation}"), Some(&gateway)).await.ok(200).clone();
    assert_eq!(shown["holds"][0]["limit"], "cost_per_day", "{shown}");
}

#[tokio::test]
async fn the_header_form_reserves_on_the_bearer_verify() {
    let fixture = Fixture::new().await;
    let (gateway, secret, _) = capped(&fixture).await;
    let mut call = request(Method::GET, "/v1/auth/verify", Some(&secret), None);
    call.headers_mut()
        .insert("x-tollgate-reserve", "provider=openai, model=gpt-4o, max_output_tokens=1000".parse().unwrap());
    let reply = fixture.send(call).await;
    let body = reply.ok(200).clone();
    let id = body["reservation"]["id"].as_str().expect("a reservation").to_owned();
    assert_eq!(reply.headers["x-tollgate-reservation"], id.as_str());
    assert!(body["reservation"]["held_cost_micros"].as_i64().unwrap() > 0, "priced from the table: {body}");
    fixture.post(&format!("/v1/reservations/{id}/release"), Some(&gateway), json!({})).await.ok(200);

    let mut bad = request(Method::GET, "/v1/auth/verify", Some(&secret), None);
    bad.headers_mut().insert("x-tollgate-reserve", "max_output_tokens=secret-value".parse().unwrap());
    let reply = fixture.send(bad).await;
    let problem = reply.problem(400, "invalid_field").clone();
    assert_eq!(problem["field"], "X-Tollgate-Reserve");
    assert!(!reply.text().contains("secret-value"), "the value is never echoed: {problem}");
}

#[tokio::test]
async fn bad_estimates_name_the_field_and_foreign_reservations_are_not_found() {
    let fixture = Fixture::new().await;
    let (gateway, secret, _) = capped(&fixture).await;
    for (reserve, field) in [
        (json!({}), "reserve"),
        (json!({ "max_output_tokens": -1 }), "reserve.max_output_tokens"),
        (json!({ "model": "gpt-4o" }), "reserve.provider"),
        (json!({ "cost_micros": -5 }), "reserve.cost_micros"),
    ] {
        let body = json!({ "token": secret, "reserve": reserve });
        let reply = fixture.post("/v1/tokens/verify", Some(&gateway), body).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{}", reply.text());
    }
    let body = json!({ "token": secret, "reserve": { "cost_micros": 10 } });
    let verdict = fixture.post("/v1/tokens/verify", Some(&gateway), body).await.ok(200).clone();
    let id = verdict["reservation"]["id"].as_str().unwrap().to_owned();
    let (bob, _) = fixture.token("bob", Permission::Standard).await;
    fixture.get(&format!("/v1/reservations/{id}"), Some(&bob)).await.problem(404, "reservation_not_found");
    let settle = json!({ "provider": "openai", "model": "gpt-4o", "cost_micros": 1 });
    let path = format!("/v1/reservations/{id}/settle");
    fixture.post(&path, Some(&bob), settle).await.problem(404, "reservation_not_found");
    fixture.get("/v1/reservations/rsv_nope", Some(&gateway)).await.problem(400, "invalid_field");
    fixture.get("/v1/usage/dead-letters", Some(&bob)).await.problem(403, "forbidden");
    let letters = fixture.get("/v1/usage/dead-letters", Some(&gateway)).await.ok(200).clone();
    assert_eq!(letters["items"], json!([]), "{letters}");
}

#[tokio::test]
async fn a_burst_no_window_can_refill_is_bad_input_naming_burst() {
    let fixture = Fixture::new().await;
    let (gateway, _) = fixture.token("gateway", Permission::Admin).await;
    let (_, id) = fixture.token("alice", Permission::Standard).await;
    let body = json!({ "requests_per_minute": 1, "burst": 1_000_000_000 });
    let reply = fixture.put(&format!("/v1/tokens/{id}/rate-limit"), Some(&gateway), body).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "burst", "{}", reply.text());
}

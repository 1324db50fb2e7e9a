//! Logs at TRACE level during token creation, verification, rotation and refusals over HTTP
//! hold no secret: not the bearer credential, not a created or rotated token, not a password,
//! access JWT or refresh token of a session, nor a secret sent to `POST /v1/leaks`, nor the
//! dashboard's cookies or a token created there.

mod dashboard_client;
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::Fixture;
use tollgate::Permission;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    fixture.owner("alice").await;
    let created = fixture.post("/v1/tokens", Some(&admin), json!({ "name": "n", "owner": "alice" })).await;
    let secret = created.ok(201)["token"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200);
    let rotated = fixture.post(&format!("/v1/tokens/{id}/rotate"), Some(&admin), json!({ "grace_seconds": 5 })).await;
    let rotated = rotated.ok(201)["token"].as_str().unwrap().to_owned();
    fixture.post("/v1/tokens/verify", Some(&admin), json!({ "token": rotated })).await.ok(200);
    fixture.post(&format!("/v1/tokens/{id}/revoke"), Some(&admin), json!({})).await.ok(200);
    fixture.get("/v1/auth/verify", Some(&rotated)).await.problem(401, "revoked");
    // Sessions: login (right and wrong passwords), a JWT-authenticated call, refresh, logout.
    let password = "a very secret passphrase";
    fixture
        .post(
            "/v1/users",
            Some(&admin),
            json!({ "username": "dora", "email": "dora@example.com", "role": "user", "password": password }),
        )
        .await
        .ok(201);
    let wrong = "typed-the-wrong-secret";
    fixture
        .post("/v1/auth/login", None, json!({ "username": "dora", "password": wrong }))
        .await
        .problem(401, "invalid_credentials");
    let login = fixture.post("/v1/auth/login", None, json!({ "username": "dora", "password": password })).await;
    let session = login.ok(200).clone();
    let access = session["access_token"].as_str().unwrap().to_owned();
    fixture.get("/v1/tokens", Some(&access)).await.ok(200);
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let rotated_session =
        fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await.ok(200).clone();
    let refresh2 = rotated_session["refresh_token"].as_str().unwrap().to_owned();
    // Leak reports carry secrets in their body: a rotated-out token, a live refresh token.
    let leaks = json!({ "candidates": [format!("key={rotated}"), refresh2.clone()], "revoke": false });
    // The dashboard: a sign-in (its cookies), a token created there (its secret on the page), sign-out.
    let mut browser = dashboard_client::Browser::signed_in_with(&fixture, "dora", password).await;
    let created_page = browser.post("/dashboard/tokens", &[("name", "from-the-dashboard")]).await.text();
    let start = created_page.find("<code id=\"secret\">").expect("secret shown") + "<code id=\"secret\">".len();
    let dashboard_secret = created_page[start..].split('<').next().unwrap().to_owned();
    let dashboard_cookies: Vec<String> = browser.cookies.values().cloned().collect();
    browser.post("/dashboard/logout", &[]).await;
    let reported = fixture.post("/v1/leaks", Some(&admin), leaks).await;
    assert_eq!(reported.ok(200)["found"].as_array().unwrap().len(), 2);
    fixture.post("/v1/auth/logout", None, json!({ "refresh_token": refresh2 })).await.ok(204);
    fixture.close_store().await;
    fixture.get("/v1/tokens", Some(&admin)).await.problem(503, "unavailable");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("request failed"), "the 503 was logged: {log}");
    assert!(log.contains("token created"), "the capture works: {log}");
    for secret in [&admin, &secret, &rotated] {
        let body = &secret[3..];
        assert!(!log.contains(body), "a secret reached the log:\n{log}");
    }
    assert!(!log.to_lowercase().contains("authorization"), "{log}");
    assert!(log.contains("login"), "the capture covers login: {log}");
    for cookie in &dashboard_cookies {
        assert!(!log.contains(cookie.as_str()), "a dashboard cookie reached the log:\n{log}");
    }
    assert!(!log.contains(&dashboard_secret[3..]), "{log}");
    assert!(log.contains("/dashboard/login"), "the capture covers the dashboard: {log}");
    for secret in [password, wrong, &access, &refresh[4..], &refresh2[4..]] {
        assert!(!log.contains(secret), "a session secret reached the log:\n{log}");
    }
    // The JWT's signature part is what makes it a credential.
    let signature = access.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "{log}");
}

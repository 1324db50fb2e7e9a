//! The dashboard through its router: every page and form, signed in as an admin, a user and a
//! viewer, with a cookie jar as a browser keeps one. Sign-in, session renewal and sign-out; CSRF and
//! cross-site refusals; RBAC (the buttons a role may not use are absent, and forging their POST is
//! refused); escaping of user-supplied names; the secret shown once; security headers.

mod dashboard_client;
mod support;

use std::time::Duration;

use axum::http::{StatusCode, header};
use dashboard_client::Browser;
use serde_json::json;
use support::{Fixture, PASSWORD, Reply};
use tollgate::{Permission, Role};

fn assert_page(reply: &Reply, heading: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.text().contains(&format!("<h1>{heading}")), "no heading {heading}: {}", reply.text());
}

#[tokio::test]
async fn sign_in_sets_hardened_cookies_and_every_answer_has_the_security_headers() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let mut browser = Browser::new(&fixture);
    let away = browser.get("/dashboard").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.headers[header::LOCATION], "/dashboard/login");

    let form = browser.get("/dashboard/login").await;
    assert_page(&form, "Sign in");
    let policy = form.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(form.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(!form.text().contains("<script>"), "no inline script");

    let reply = browser.post("/dashboard/login", &[("login", "ada"), ("password", PASSWORD)]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let cookies: Vec<&str> = reply.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    for name in ["tg_access=", "tg_refresh=", "tg_csrf="] {
        let cookie = cookies.iter().find(|cookie| cookie.starts_with(name)).expect(name);
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
            assert!(cookie.contains(attribute), "{name} lacks {attribute}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP from an untrusted peer is not Secure");
    }
    let overview = browser.get("/dashboard").await;
    assert_page(&overview, "Overview");
    assert_eq!(overview.headers[header::CACHE_CONTROL], "no-store");
    assert!(overview.text().contains("ada"), "the signed-in user is named");

    // By email too; a wrong password is one refusal whatever was wrong, and sets no session.
    let mut other = Browser::new(&fixture);
    other.get("/dashboard/login").await;
    let wrong = other.post("/dashboard/login", &[("login", "ada"), ("password", "not the password")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Wrong username or password"));
    assert!(!other.cookies.contains_key("tg_access"));
    let by_email = other.post("/dashboard/login", &[("login", "ada@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(by_email.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_are_refused_and_change_nothing() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let mut browser = Browser::signed_in(&fixture, "ada").await;
    let fields = [("name", "forged"), ("permission", "standard")];
    let missing = browser.post_raw("/dashboard/tokens", &fields, None).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.text());
    assert!(missing.text().contains("CSRF"));
    let wrong = browser.post_raw("/dashboard/tokens", &[("csrf", "guess"), ("name", "forged")], None).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let csrf = browser.csrf();
    let cross_site = browser
        .post_raw("/dashboard/tokens", &[("csrf", &csrf), ("name", "forged")], Some("https://evil.example"))
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert!(!browser.get("/dashboard/tokens?status=all").await.text().contains("forged"), "nothing was created");
    // The same form from this site, with the token, works.
    let same_site = browser
        .post_raw("/dashboard/tokens", &[("csrf", &csrf), ("name", "real")], Some("http://dashboard.test"))
        .await;
    assert_page(&same_site, "Token created");
    // Sign-in itself is CSRF-protected (login CSRF).
    let mut stranger = Browser::new(&fixture);
    let login = stranger.post_raw("/dashboard/login", &[("login", "ada"), ("password", PASSWORD)], None).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_is_created_with_its_secret_shown_once_listed_revoked_and_rotated() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let mut browser = Browser::signed_in(&fixture, "ada").await;
    let list = browser.get("/dashboard/tokens").await;
    assert_page(&list, "Tokens");
    assert!(list.text().contains("Create token"), "an admin may create");

    let created = browser
        .post("/dashboard/tokens", &[("name", "ci-runner"), ("permission", "standard"), ("expires_in_days", "30")])
        .await;
    assert_page(&created, "Token created");
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let text = created.text();
    let start = text.find("<code id=\"secret\">").expect("secret shown") + "<code id=\"secret\">".len();
    let secret = text[start..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("tg_"), "{secret}");
    assert!(text.contains("shown once"));
    let verified = fixture.tokens.verify(&secret, &tollgate::VerifyRequest::default()).await.expect("the secret works");
    let id = verified.record.id.to_string();

    let list = browser.get("/dashboard/tokens").await.text();
    assert!(list.contains("ci-runner") && !list.contains(&secret), "listed, secret not shown again");
    let page = browser.get(&format!("/dashboard/tokens/{id}")).await;
    assert_page(&page, "Token ci-runner");
    assert!(!page.text().contains(&secret));
    assert!(page.text().contains("Requests, last 24 hours"), "usage charts");

    // A form error names the field and echoes nothing.
    let bad = browser.post("/dashboard/tokens", &[("name", "x"), ("ip_allow", "not-an-ip-secret")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("ip_allow") && !bad.text().contains("not-an-ip-secret"), "{}", bad.text());

    let edited = browser
        .post(&format!("/dashboard/tokens/{id}"), &[("description", "runs CI"), ("ip_allow", "10.0.0.0/8")])
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.text());
    let page = browser.get(&format!("/dashboard/tokens/{id}?done=updated")).await.text();
    assert!(page.contains("runs CI") && page.contains("10.0.0.0/8"));

    let rotated = browser.post(&format!("/dashboard/tokens/{id}/rotate"), &[("grace_seconds", "3600")]).await;
    assert_page(&rotated, "Token rotated");
    assert!(!rotated.text().contains(&secret), "a new secret");

    let revoked = browser.post(&format!("/dashboard/tokens/{id}/revoke"), &[("reason", "leaked in a log")]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let page = browser.get(revoked.headers[header::LOCATION].to_str().unwrap()).await.text();
    assert!(page.contains("badge-revoked") && page.contains("leaked in a log"));
    assert!(!page.contains("Revoke token"), "no revoke button on a revoked token");
}

#[tokio::test]
async fn user_supplied_names_render_as_text() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let mut browser = Browser::signed_in(&fixture, "ada").await;
    let name = "<script>alert(1)</script>";
    let created =
        browser.post("/dashboard/tokens", &[("name", name), ("description", "\"><img src=x onerror=alert(2)>")]).await;
    assert_page(&created, "Token created");
    for path in ["/dashboard/tokens".to_owned()] {
        let text = browser.get(&path).await.text();
        assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{text}");
        assert!(!text.contains(name));
    }
    let project = browser.post("/dashboard/projects", &[("name", "<b>bold</b>")]).await;
    assert_eq!(project.status, StatusCode::SEE_OTHER, "{}", project.text());
    let text = browser.get("/dashboard/projects").await.text();
    assert!(text.contains("&lt;b&gt;bold&lt;/b&gt;") && !text.contains("<b>bold</b>"));
}

#[tokio::test]
async fn a_viewer_reads_without_buttons_and_a_forged_post_is_refused() {
    let fixture = Fixture::new().await;
    fixture.user("vera", Role::Viewer).await;
    fixture.user("ada", Role::Admin).await;
    let mut viewer = Browser::signed_in(&fixture, "vera").await;
    let list = viewer.get("/dashboard/tokens").await;
    assert_page(&list, "Tokens");
    assert!(!list.text().contains("Create token"), "no create button for a viewer");
    assert!(!list.text().contains("href=\"/dashboard/users\""), "no users section for a viewer");
    let forged = viewer.post("/dashboard/tokens", &[("name", "sneaky")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
    assert_eq!(viewer.get("/dashboard/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.get("/dashboard/audit").await.status, StatusCode::FORBIDDEN);
    let vera =
        fixture.users.find(&tollgate::Principal::Operator, &tollgate::Username::parse("vera").unwrap()).await.unwrap();
    let promote = viewer.post(&format!("/dashboard/users/{}/role", vera.id), &[("role", "admin")]).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let mut admin = Browser::signed_in(&fixture, "ada").await;
    assert!(!admin.get("/dashboard/tokens?status=all").await.text().contains("sneaky"));
}

#[tokio::test]
async fn every_page_renders_for_each_role() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    fixture.user("uma", Role::User).await;
    fixture.user("vera", Role::Viewer).await;
    let pages = [
        ("/dashboard", "Overview"),
        ("/dashboard/tokens", "Tokens"),
        ("/dashboard/projects", "Projects"),
        ("/dashboard/limits", "Limits"),
        ("/dashboard/usage", "Usage"),
        ("/dashboard/usage?group_by=model&period=today", "Usage"),
        ("/dashboard/agents", "Agents"),
        ("/dashboard/budgets", "Budgets"),
        ("/dashboard/provider-keys", "Provider keys"),
        ("/dashboard/live", "Live"),
    ];
    let admin_only = [
        ("/dashboard/users", "Users"),
        ("/dashboard/service-accounts", "Service accounts"),
        ("/dashboard/audit", "Audit log"),
    ];
    for username in ["ada", "uma", "vera"] {
        let mut browser = Browser::signed_in(&fixture, username).await;
        for (path, heading) in pages {
            assert_page(&browser.get(path).await, heading);
        }
        for (path, heading) in admin_only {
            let reply = browser.get(path).await;
            if username == "ada" {
                assert_page(&reply, heading);
            } else {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{username} {path}");
            }
        }
        let bad = browser.get("/dashboard/usage?group_by=colour").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.text().contains("group_by"));
        assert_eq!(browser.get("/dashboard/tokens/tok_nonsense").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(browser.get("/dashboard/no-such-page").await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn admins_manage_users_service_accounts_and_projects() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let mut admin = Browser::signed_in(&fixture, "ada").await;
    let created = admin
        .post(
            "/dashboard/users",
            &[("username", "newbie"), ("email", "newbie@example.com"), ("role", "user"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text());
    let newbie = fixture
        .users
        .find(&tollgate::Principal::Operator, &tollgate::Username::parse("newbie").unwrap())
        .await
        .unwrap();
    assert!(newbie.must_change_password);
    let act = |action: &'static str| format!("/dashboard/users/{}/{action}", newbie.id);
    assert_eq!(admin.post(&act("suspend"), &[("reason", "left the team")]).await.status, StatusCode::SEE_OTHER);
    assert!(admin.get("/dashboard/users?q=newbie").await.text().contains("badge-suspended"));
    assert_eq!(admin.post(&act("activate"), &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.post(&act("role"), &[("role", "viewer")]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.post(&act("unlock"), &[]).await.status, StatusCode::SEE_OTHER);
    let reset =
        admin.post(&act("password"), &[("password", "another long password"), ("must_change_password", "true")]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let short = admin.post(&act("password"), &[("password", "short")]).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(!short.text().contains("short<"), "the rejected password is not echoed");
    let newbie = fixture.users.show(&tollgate::Principal::Operator, &newbie.id).await.unwrap();
    assert_eq!(newbie.role, Role::Viewer);
    // Nobody demotes or suspends themselves: the facade refuses, the page says so.
    let ada =
        fixture.users.find(&tollgate::Principal::Operator, &tollgate::Username::parse("ada").unwrap()).await.unwrap();
    let own = admin.post(&format!("/dashboard/users/{}/role", ada.id), &[("role", "viewer")]).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);

    assert_eq!(admin.post("/dashboard/service-accounts", &[("name", "ci-bot")]).await.status, StatusCode::SEE_OTHER);
    let accounts = admin.get("/dashboard/service-accounts").await.text();
    assert!(accounts.contains("ci-bot"));
    assert_eq!(
        admin.post("/dashboard/projects", &[("name", "search"), ("description", "the search team")]).await.status,
        StatusCode::SEE_OTHER
    );
    let project = fixture.tokens.resolve_project(&tollgate::Principal::Operator, "search").await.unwrap();
    let member = admin
        .post(&format!("/dashboard/projects/{project}/members"), &[("member", "newbie"), ("role", "member")])
        .await;
    assert_eq!(member.status, StatusCode::SEE_OTHER, "{}", member.text());
    let page = admin.get(&format!("/dashboard/projects/{project}")).await.text();
    assert!(page.contains("newbie") && page.contains("member"));
    let removed = admin.post(&format!("/dashboard/projects/{project}/members/{}/remove", newbie.id), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text());
    assert!(!admin.get(&format!("/dashboard/projects/{project}")).await.text().contains("newbie"), "removed");
    let nobody = admin
        .post(&format!("/dashboard/projects/{project}/members"), &[("member", "nobody"), ("role", "member")])
        .await;
    assert_eq!(nobody.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_flagged_account_changes_its_password_first_and_sign_out_ends_the_session() {
    let fixture = Fixture::new().await;
    let id = fixture.user("fresh", Role::User).await;
    fixture
        .users
        .reset_password(&tollgate::Caller::operator(), &id, tollgate::Password::new(PASSWORD.to_owned()).unwrap(), true)
        .await
        .unwrap();
    let mut browser = Browser::new(&fixture);
    browser.get("/dashboard/login").await;
    let first = browser.post("/dashboard/login", &[("login", "fresh"), ("password", PASSWORD)]).await;
    assert_eq!(first.status, StatusCode::FORBIDDEN);
    assert!(first.text().contains("Change your password"));
    let mismatch = browser
        .post(
            "/dashboard/password",
            &[
                ("username", "fresh"),
                ("current_password", PASSWORD),
                ("new_password", "a brand new password"),
                ("confirm_password", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    let changed = browser
        .post(
            "/dashboard/password",
            &[
                ("username", "fresh"),
                ("current_password", PASSWORD),
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text());
    assert_page(&browser.get("/dashboard").await, "Overview");

    // Sign-out ends the session on the server: the old cookies no longer work.
    let stolen = browser.cookies.clone();
    let out = browser.post("/dashboard/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!browser.cookies.contains_key("tg_access"));
    let mut thief = Browser { fixture: &fixture, cookies: stolen };
    let reply = thief.get("/dashboard").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "the session is revoked, not just forgotten");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_once_for_concurrent_requests() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let browser = Browser::signed_in(&fixture, "ada").await;
    fixture.clock.advance(Duration::from_secs(16 * 60));
    let mut first = Browser { fixture: &fixture, cookies: browser.cookies.clone() };
    let mut second = Browser { fixture: &fixture, cookies: browser.cookies.clone() };
    let (a, b) = tokio::join!(first.get("/dashboard/tokens"), second.get("/dashboard/tokens"));
    assert_page(&a, "Tokens");
    assert_page(&b, "Tokens");
    assert_ne!(first.cookies["tg_refresh"], browser.cookies["tg_refresh"], "renewed");
    assert_eq!(first.cookies["tg_refresh"], second.cookies["tg_refresh"], "one renewal shared");
    // The session survives: no reuse was detected.
    fixture.clock.advance(Duration::from_secs(16 * 60));
    assert_page(&first.get("/dashboard").await, "Overview");
}

#[tokio::test]
async fn usage_limits_audit_budgets_and_assets() {
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    let (root, _) = fixture.token("root", Permission::Admin).await;
    let (_, id) = fixture.token("alice", Permission::Standard).await;
    let event = json!({ "token_id": id.to_string(), "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 10 });
    assert_eq!(fixture.post("/v1/usage", Some(&root), event).await.status, StatusCode::OK);
    let limit = json!({ "max": 10 });
    let put = fixture.put(&format!("/v1/limits/token/{id}/requests_per_day"), Some(&root), limit).await;
    assert!(put.status.is_success(), "{}", put.text());
    let mut admin = Browser::signed_in(&fixture, "ada").await;
    let overview = admin.get("/dashboard").await.text();
    assert!(overview.contains("<svg") && overview.contains("<rect"), "charts render");
    assert!(overview.contains(&format!("/dashboard/tokens/{id}")), "top tokens link to their page");
    let usage = admin.get("/dashboard/usage?group_by=model&period=today").await.text();
    assert!(usage.contains("openai/gpt-4o-mini"), "{usage}");
    let limits = admin.get("/dashboard/limits").await.text();
    assert!(limits.contains("requests_per_day") && limits.contains("<meter"));

    let audit = admin.post("/dashboard/audit/verify", &[]).await;
    assert_page(&audit, "Audit log");
    assert!(audit.text().contains("badge-intact") && audit.text().contains("id=\"head-hash\""));

    let page = admin.get("/dashboard").await.text();
    let mut weight = page.len();
    for kind in [".css", ".js"] {
        let asset = admin.get(&asset_href(&page, kind)).await;
        assert_eq!(asset.status, StatusCode::OK, "{kind}");
        assert_eq!(asset.headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        weight += asset.body.len();
    }
    assert_eq!(admin.get("/dashboard/assets/dashboard-00000000.css").await.status, StatusCode::NOT_FOUND);
    // The overview with its assets stays within 150 KB before compression.
    assert!(weight < 150 * 1024, "{weight} bytes");
}

fn asset_href(page: &str, kind: &str) -> String {
    page.match_indices("/dashboard/assets/dashboard-")
        .map(|(start, _)| page[start..].split('"').next().unwrap())
        .find(|href| href.ends_with(kind))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_change_request_is_decided_by_another_admin_never_by_its_requester() {
    let fixture = Fixture::new().await;
    let (_, ada) = fixture.user_jwt("ada", Role::Admin).await;
    fixture.user("grace", Role::Admin).await;
    let agent = fixture.post("/v1/agents", Some(&ada), json!({ "name": "runner" })).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "agent_id": agent, "requested_allocation_microdollars": 5_000_000, "justification": "<i>more</i> traffic" });
    let request =
        fixture.post("/v1/budget/requests", Some(&ada), body).await.ok(201)["id"].as_str().unwrap().to_owned();
    let approve = format!("/dashboard/budgets/requests/{request}/approve");

    let mut requester = Browser::signed_in(&fixture, "ada").await;
    let page = requester.get("/dashboard/budgets").await;
    assert_page(&page, "Budgets");
    assert!(page.text().contains("&lt;i&gt;more&lt;/i&gt; traffic"), "justification escaped");
    assert!(
        !page.text().contains(&approve) && page.text().contains("waiting for another admin"),
        "no decide button for the requester"
    );
    let own = requester.post(&approve, &[("reason", "self-approval")]).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "the facade refuses the requester too");

    let mut other = Browser::signed_in(&fixture, "grace").await;
    assert!(other.get("/dashboard/budgets").await.text().contains(&approve));
    let decided = other.post(&approve, &[("reason", "fine")]).await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.text());
    let after = other.get("/dashboard/budgets?done=approve").await.text();
    assert!(!after.contains(&approve) && after.contains("$5.00"), "{after}");
    assert_eq!(
        other.post(&format!("/dashboard/budgets/requests/{request}/maybe"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_agents_page_creates_a_credential_shown_once_and_revokes_it() {
    let fixture = Fixture::new().await;
    let (_, uma) = fixture.user_jwt("uma", Role::User).await;
    fixture.user("vera", Role::Viewer).await;
    let agent = fixture.post("/v1/agents", Some(&uma), json!({ "name": "crawler" })).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut owner = Browser::signed_in(&fixture, "uma").await;
    let list = owner.get("/dashboard/agents").await.text();
    assert!(list.contains(&format!("/dashboard/agents/{agent}")), "the list links the agent");
    let page = owner.get(&format!("/dashboard/agents/{agent}")).await;
    assert_page(&page, "Agent crawler");
    assert!(page.text().contains("Create credential") && page.text().contains("Budget history"));

    let created = owner
        .post(&format!("/dashboard/agents/{agent}/credentials"), &[("name", "prod"), ("expires_in_days", "30")])
        .await;
    assert_page(&created, "Credential created");
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let text = created.text();
    let start = text.find("<code id=\"secret\">").unwrap() + "<code id=\"secret\">".len();
    let secret = text[start..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("tga_"), "{secret}");
    let verified =
        fixture.agents.authenticate(&secret, &tollgate::VerifyRequest::default()).await.expect("the credential works");
    let page = owner.get(&format!("/dashboard/agents/{agent}")).await.text();
    assert!(!page.contains(&secret), "never shown again");
    let bad = owner.post(&format!("/dashboard/agents/{agent}/credentials"), &[("expires_in_days", "0")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("expires_in_days"));

    let credential = verified.record.id;
    let mut viewer = Browser::signed_in(&fixture, "vera").await;
    assert_eq!(
        viewer.get(&format!("/dashboard/agents/{agent}")).await.status,
        StatusCode::NOT_FOUND,
        "not the viewer's agent"
    );
    let forged = viewer.post(&format!("/dashboard/agents/{agent}/credentials/{credential}/revoke"), &[]).await;
    assert!(forged.status == StatusCode::FORBIDDEN || forged.status == StatusCode::NOT_FOUND, "{}", forged.status);

    let revoked = owner.post(&format!("/dashboard/agents/{agent}/credentials/{credential}/revoke"), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text());
    let page = owner.get(&format!("/dashboard/agents/{agent}?done=revoked")).await.text();
    assert!(page.contains("badge-revoked"));
    assert!(
        fixture.agents.authenticate(&secret, &tollgate::VerifyRequest::default()).await.is_err(),
        "revoked for real"
    );
}

#[tokio::test]
async fn cookies_are_secure_behind_a_trusted_proxy_that_says_https() {
    let mut settings = tollgate_server::ServerSettings::default();
    settings.trusted_proxies = tollgate_server::TrustedProxies::parse(&["192.0.2.10"]).unwrap();
    let fixture = Fixture::with_settings(settings, "192.0.2.10:40000").await;
    fixture.user("ada", Role::Admin).await;
    let mut browser = Browser::new(&fixture);
    browser.get("/dashboard/login").await;
    let csrf = browser.csrf();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("csrf", csrf.as_str()), ("login", "ada"), ("password", PASSWORD)])
        .finish();
    let request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri("/dashboard/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("tg_csrf={csrf}"))
        .header("x-forwarded-proto", "https")
        .body(axum::body::Body::from(body))
        .unwrap();
    let reply = browser.send(request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    for cookie in reply.headers.get_all(header::SET_COOKIE) {
        assert!(cookie.to_str().unwrap().contains("; Secure"), "{cookie:?}");
    }
}

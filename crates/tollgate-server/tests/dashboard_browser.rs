//! The dashboard in a real headless browser (Debian's chromium through chromedriver), against the
//! app served over a real socket: sign in, create a token and read its secret once, see it listed,
//! revoke it and see its status change, see the usage chart render with seeded data, a viewer sees
//! no create button and a forged POST of theirs is refused, a form without the CSRF token is
//! refused, sign-out ends the session, and the overview is readable 375 px wide. Every page is
//! saved as a screenshot under `target/dashboard-screenshots/`.
//!
//! Without chromium and chromedriver this passes saying loudly that it skipped, unless
//! `TOLLGATE_REQUIRE_BROWSER` is set (`.ci/run` sets it), when it fails.

mod browser;
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Fixture, PASSWORD, START};
use tollgate::{Permission, Role};

use browser::Browser;

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    target.join("dashboard-screenshots")
}

/// Serves the fixture's app on a loopback port; returns its base URL.
async fn serve(fixture: &Fixture) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = tollgate_server::app(fixture.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// A day of usage, a little more each hour, so the charts have something to draw.
async fn seed_usage(fixture: &Fixture) {
    let (root, _) = fixture.token("root", Permission::Admin).await;
    let (_, id) = fixture.token("gateway", Permission::Standard).await;
    for hour in 0..24u64 {
        fixture.clock.set(START.saturating_add(Duration::from_secs(hour * 3600)));
        let events: Vec<_> = (0..=hour)
            .map(|_| json!({ "token_id": id.to_string(), "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 300 }))
            .collect();
        let reply = fixture.post("/v1/usage", Some(&root), json!({ "events": events })).await;
        assert!(reply.status.is_success(), "{}", reply.text());
    }
}

async fn sign_in(browser: &Browser, base: &str, username: &str) {
    browser.goto(&format!("{base}/dashboard/login")).await;
    browser.type_into("#login", username).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form[action='/dashboard/login'] button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.url().await.ends_with("/dashboard") {
        assert!(Instant::now() < deadline, "not signed in: {}", browser.source().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs a form from inside the page (as a forging script would): the answer's status.
async fn forge(browser: &Browser, path: &str, with_csrf: bool) -> u64 {
    let csrf = if with_csrf { "fields.set('csrf', document.querySelector('input[name=csrf]').value);" } else { "" };
    let script = format!(
        "const done = arguments[arguments.length - 1]; const fields = new URLSearchParams(); \
         fields.set('name', 'forged'); {csrf} \
         fetch('{path}', {{ method: 'POST', body: fields, redirect: 'manual' }}).then(r => done(r.status), e => done(String(e)));"
    );
    browser.run_async(&script).await.as_u64().unwrap_or_default()
}

/// The walk through is one long future: it runs on a thread with room for it (a debug build's
/// futures are large).
#[test]
fn the_dashboard_works_in_a_real_browser() {
    let walk = std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(walk_through());
        })
        .unwrap();
    if let Err(panic) = walk.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn walk_through() {
    let Some((driver, chromium)) = browser::installed() else {
        assert!(
            std::env::var_os("TOLLGATE_REQUIRE_BROWSER").is_none(),
            "TOLLGATE_REQUIRE_BROWSER is set but /usr/bin/chromium or /usr/bin/chromedriver is missing"
        );
        eprintln!("SKIPPED the browser tests: install Debian's chromium and chromium-driver to run them");
        return;
    };
    let fixture = Fixture::new().await;
    fixture.user("ada", Role::Admin).await;
    fixture.user("vera", Role::Viewer).await;
    seed_usage(&fixture).await;
    let ada_jwt = fixture.login("ada").await["access_token"].as_str().unwrap().to_owned();
    let agent = fixture.post("/v1/agents", Some(&ada_jwt), json!({ "name": "crawler" })).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_page = format!("/dashboard/agents/{agent}");
    let base = serve(&fixture).await;
    let shots = screenshots();
    let browser = Browser::start(&driver, &chromium, 1280).await;

    // Sign in; the overview's hourly chart draws the seeded day.
    sign_in(&browser, &base, "ada").await;
    let bars = browser.all("#overview-requests-24h rect.bar").await;
    assert_eq!(bars.len(), 24, "one bar an hour");
    let mut heights = Vec::new();
    for bar in &bars {
        heights.push(browser.attribute(bar, "height").await.unwrap_or_default().parse::<u32>().unwrap_or(0));
    }
    assert!(heights.iter().filter(|height| **height > 0).count() >= 20, "{heights:?}");
    assert!(heights.last() > heights.first(), "more each hour: {heights:?}");
    browser.screenshot(&shots, "overview").await;

    // Keyboard: the first Tab reaches "Skip to content", Enter moves focus to the page's content,
    // and the next Tab lands on a control inside it, not back in the navigation.
    browser.press("\u{E004}").await;
    assert_eq!(browser.run("return document.activeElement.className;").await, "skip");
    browser.press("\u{E007}").await;
    assert!(browser.url().await.ends_with("#main"));
    let focused = browser.run("return document.activeElement.closest('main') !== null;").await;
    assert_eq!(focused, true, "focus moved into the main content");

    // Create a token: its secret is shown once.
    browser.goto(&format!("{base}/dashboard/tokens")).await;
    browser.type_into("#name", "browser-made").await;
    browser.click("#create-token button[type=submit]").await;
    let secret = browser.text(&browser.find("#secret").await).await;
    assert!(secret.starts_with("tg_"), "{secret}");
    browser.screenshot(&shots, "token-created").await;
    browser.click("button[data-copy]").await;

    // It is listed, and the secret is nowhere again.
    browser.goto(&format!("{base}/dashboard/tokens")).await;
    let link = browser.find("a[href^='/dashboard/tokens/tok_']").await;
    let listed = browser.source().await;
    assert!(listed.contains("browser-made") && !listed.contains(&secret));
    browser.screenshot(&shots, "tokens").await;

    // Revoke it (confirming the dialog) and see the status change.
    let href = browser.attribute(&link, "href").await.unwrap();
    let mut token_page = None;
    for candidate in browser.all("a[href^='/dashboard/tokens/tok_']").await {
        if browser.text(&candidate).await == "browser-made" {
            token_page = browser.attribute(&candidate, "href").await;
        }
    }
    let token_page = token_page.unwrap_or(href);
    browser.goto(&format!("{base}{token_page}")).await;
    assert!(browser.text(&browser.find("#token-status").await).await.contains("active"));
    assert!(!browser.source().await.contains(&secret));
    browser.type_into("#reason", "made by the browser test").await;
    browser.click("#revoke-token button[type=submit]").await;
    browser.accept_dialog().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !browser.url().await.contains("done=revoked") {
        assert!(Instant::now() < deadline, "no redirect after revoking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(browser.text(&browser.find("#token-status").await).await.contains("revoked"));
    browser.screenshot(&shots, "token-revoked").await;

    // A form without the CSRF token is refused.
    assert_eq!(forge(&browser, "/dashboard/tokens", false).await, 403);

    // Every other page renders; each is kept as a screenshot.
    for (path, name) in [
        ("/dashboard/users", "users"),
        ("/dashboard/service-accounts", "service-accounts"),
        ("/dashboard/projects", "projects"),
        ("/dashboard/limits", "limits"),
        ("/dashboard/usage?group_by=model&period=last-7-days", "usage"),
        ("/dashboard/agents", "agents"),
        (agent_page.as_str(), "agent"),
        ("/dashboard/budgets", "budgets"),
        ("/dashboard/provider-keys", "provider-keys"),
        ("/dashboard/audit", "audit"),
        ("/dashboard/password", "account"),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        browser.find("main h1").await;
        browser.screenshot(&shots, name).await;
    }
    browser.goto(&format!("{base}/dashboard/audit")).await;
    browser.click("form[action='/dashboard/audit/verify'] button").await;
    assert!(browser.text(&browser.find("#chain-report").await).await.contains("intact"));
    browser.screenshot(&shots, "audit-verified").await;
    browser.goto(&format!("{base}/dashboard/live")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.text(&browser.find("#live-state").await).await != "Connected." {
        assert!(Instant::now() < deadline, "the live feed did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot(&shots, "live").await;

    // Readable 375 px wide: nothing wider than the screen but the tables, which scroll in place.
    browser.resize(375, 812).await;
    browser.goto(&format!("{base}/dashboard")).await;
    let width = browser.run("return document.documentElement.scrollWidth;").await.as_u64().unwrap_or(u64::MAX);
    let viewport = browser.run("return window.innerWidth;").await.as_u64().unwrap_or(0);
    assert!(width <= viewport, "the page scrolls sideways at {viewport} px: {width} px wide");
    browser.screenshot(&shots, "overview-375px").await;
    browser.resize(1280, 900).await;

    // Sign out: the session ends and pages send the browser back to sign in.
    browser.click("form[action='/dashboard/logout'] button").await;
    browser.find("#login").await;
    browser.goto(&format!("{base}/dashboard/tokens")).await;
    browser.find("#login").await;
    assert!(browser.url().await.ends_with("/dashboard/login"));
    browser.screenshot(&shots, "signed-out").await;

    // A viewer sees no create button, and forging the form (with a valid CSRF token) is refused.
    browser.delete_cookies().await;
    sign_in(&browser, &base, "vera").await;
    browser.goto(&format!("{base}/dashboard/tokens")).await;
    browser.find("main h1").await;
    assert!(browser.all("#create-token").await.is_empty(), "no create form for a viewer");
    browser.screenshot(&shots, "tokens-viewer").await;
    assert_eq!(forge(&browser, "/dashboard/tokens", true).await, 403);
    let all = fixture
        .tokens
        .list(&tollgate::Principal::Operator, &tollgate::TokenFilter::default(), &tollgate::PageRequest::first(100))
        .await
        .unwrap();
    assert!(all.items.iter().all(|record| record.name.as_str() != "forged"), "nothing forged was stored");
    eprintln!("screenshots in {}", shots.display());
}

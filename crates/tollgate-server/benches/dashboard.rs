//! Server time of each dashboard page, signed in as an admin, over a SQLite file, twice:
//! - `dashboard_page/seed`: the size of `cargo xtask seed` (a few users and tokens, a day of usage);
//! - `dashboard_page/month`: a small production deployment: 200 tokens of 20 owners, a month of
//!   hourly usage for 20 of them (14,400 events in 14,400 rollup rows), 40 limits, 5 agents with
//!   budgets and pending change requests, and the audit log all that wrote.
//!
//! Also prints the overview's weight (HTML plus its stylesheet and script), raw and gzip -9,
//! against the 150 KB budget.
//!
//! `cargo bench -p tollgate-server --bench dashboard -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/dashboard_client/mod.rs"]
mod dashboard_client;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dashboard_client::Browser;
use serde_json::json;
use support::{Fixture, START};
use tollgate::{Permission, Role};

/// The development seed's size: three users, five tokens, a day of usage on two of them.
async fn small_seed(fixture: &Fixture) -> String {
    fixture.user("ada", Role::Admin).await;
    fixture.user("developer", Role::User).await;
    fixture.user("viewer", Role::Viewer).await;
    let (root, _) = fixture.token("root", Permission::Admin).await;
    let mut ids = Vec::new();
    for owner in ["developer", "developer", "usage-dashboard", "developer"] {
        ids.push(fixture.token(owner, Permission::Standard).await.1.to_string());
    }
    for hour in 0..24u64 {
        fixture.clock.set(START.saturating_add(Duration::from_secs(hour * 3600)));
        let events: Vec<_> = ids[..2]
            .iter()
            .map(|id| json!({ "token_id": id, "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 900, "output_tokens": 200 }))
            .collect();
        fixture.post("/v1/usage", Some(&root), json!({ "events": events })).await.ok(200);
    }
    ids.swap_remove(0)
}

/// A month of a small production deployment, on top of the seed.
async fn month_seed(fixture: &Fixture) -> String {
    let (root, _) = fixture.token("root", Permission::Admin).await;
    let mut metered = Vec::new();
    for index in 0..200 {
        let (_, id) = fixture.token(&format!("owner-{}", index % 20), Permission::Standard).await;
        if index < 20 {
            metered.push(id.to_string());
        }
        if index < 40 {
            let limit = json!({ "max": 1_000 + index });
            fixture.put(&format!("/v1/limits/token/{id}/requests_per_day"), Some(&root), limit).await.ok(200);
        }
    }
    for hour in 0..720u64 {
        fixture.clock.set(START.saturating_add(Duration::from_secs(hour * 3600)));
        let events: Vec<_> = metered
            .iter()
            .map(|id| json!({ "token_id": id, "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 900, "output_tokens": 200 }))
            .collect();
        fixture.post("/v1/usage", Some(&root), json!({ "events": events })).await.ok(200);
    }
    let ada = fixture.login("ada").await["access_token"].as_str().unwrap().to_owned();
    for index in 0..5 {
        let agent = fixture.post("/v1/agents", Some(&ada), json!({ "name": format!("agent-{index}") })).await;
        let agent = agent.ok(201)["id"].as_str().unwrap().to_owned();
        let budget = json!({ "allocated_microdollars": 10_000_000 });
        fixture.put(&format!("/v1/agents/{agent}/budget"), Some(&root), budget).await.ok(200);
        let request =
            json!({ "agent_id": agent, "requested_allocation_microdollars": 20_000_000, "justification": "growth" });
        fixture.post("/v1/budget/requests", Some(&ada), request).await.ok(201);
    }
    metered.swap_remove(0)
}

fn gzip_size(bytes: &[u8]) -> Option<usize> {
    let mut child = Command::new("gzip").arg("-9c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().ok()?;
    child.stdin.take()?.write_all(bytes).ok()?;
    Some(child.wait_with_output().ok()?.stdout.len())
}

/// The overview's HTML plus its assets, raw and gzip -9.
fn weigh(runtime: &tokio::runtime::Runtime, fixture: &Fixture, cookies: &Cookies) {
    let get = |path: String| runtime.block_on(async { Browser { fixture, cookies: cookies.clone() }.get(&path).await });
    let overview = get("/dashboard".to_owned());
    let page = overview.text();
    let mut weight = overview.body.to_vec();
    for start in page.match_indices("/dashboard/assets/").map(|(start, _)| start) {
        weight.extend_from_slice(&get(page[start..].split('"').next().unwrap().to_owned()).body);
    }
    println!(
        "overview weight: {} bytes raw, {} bytes gzip -9 (budget 153,600)",
        weight.len(),
        gzip_size(&weight).map_or_else(|| "?".to_owned(), |size| size.to_string())
    );
}

type Cookies = std::collections::BTreeMap<String, String>;

fn bench_pages(c: &mut Criterion, runtime: &tokio::runtime::Runtime, fixture: &Fixture, data: &str, token: &str) {
    let cookies = runtime.block_on(Browser::signed_in(fixture, "ada")).cookies;
    weigh(runtime, fixture, &cookies);
    let token_page = format!("/dashboard/tokens/{token}");
    let mut group = c.benchmark_group(format!("dashboard_page/{data}"));
    group.sample_size(20);
    for (name, path) in [
        ("overview", "/dashboard"),
        ("tokens", "/dashboard/tokens"),
        ("token", token_page.as_str()),
        ("users", "/dashboard/users"),
        ("service_accounts", "/dashboard/service-accounts"),
        ("projects", "/dashboard/projects"),
        ("limits", "/dashboard/limits"),
        ("usage", "/dashboard/usage?group_by=model&period=last-30-days"),
        ("agents", "/dashboard/agents"),
        ("budgets", "/dashboard/budgets"),
        ("provider_keys", "/dashboard/provider-keys"),
        ("audit", "/dashboard/audit"),
        ("live", "/dashboard/live"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let reply = Browser { fixture, cookies: cookies.clone() }.get(path).await;
                    assert_eq!(reply.status.as_u16(), 200, "{path}");
                    reply.body.len()
                })
            });
        });
    }
    group.finish();
}

fn pages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fixture = runtime.block_on(Fixture::new());
    let token = runtime.block_on(small_seed(&fixture));
    bench_pages(c, &runtime, &fixture, "seed", &token);
    let token = runtime.block_on(month_seed(&fixture));
    bench_pages(c, &runtime, &fixture, "month", &token);
}

criterion_group!(benches, pages);
criterion_main!(benches);

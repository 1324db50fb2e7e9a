//! The published OpenAPI document states the whole contract a client must keep: requests generated
//! from `/openapi.json` alone — valid by every schema it gives for the path, the query, the headers
//! and the body, and otherwise as varied as those schemas allow — are never refused as malformed
//! (400) and never fail (5xx). A 400 the document could not have warned of is allowed only where
//! `SEMANTIC` lists the operation and field with the reason no schema can state it.

mod contract;
mod support;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tollgate::Permission;
use tower::ServiceExt as _;

use contract::{GeneratedRequest, Generator};
use support::Fixture;

/// Generated requests per operation.
const CASES_PER_OPERATION: u64 = 48;

/// Refusals no JSON Schema can state, by operation id and field: relations to the server's
/// clock, to stored state, or a checksum. Each is documented in the field's description.
/// `(operation id or "*", field, the start of the reason)`.
const SEMANTIC: &[(&str, &str, &str)] = &[
    // A cursor names the last item of a page of *this* list; ids of the right shape work as keys.
    ("*", "cursor", "not a cursor from a previous page"),
    ("*", "cursor", "pages groups: give group_by"),
    // Times relative to the server's clock.
    ("*", "at", "must not be"),
    ("*", "events[].at", "must not be"),
    ("*", "timestamp", "must not be more than"),
    ("*", "events[].timestamp", "must not be more than"),
    ("*", "expires_at", "must be in the future"),
    // Query parameters that exclude each other or must be ordered (OpenAPI parameters cannot relate).
    ("*", "since", "must be before until"),
    ("*", "period", "give either period or"),
    ("*", "hours", "give either hours or"),
    ("*", "min_status", "must be at most max_status"),
    // A cost priced from the stored price table.
    ("*", "cost", "must be at most"),
    ("*", "events[].cost", "must be at most"),
    // The pairs of an estimate depend on each other: tokens need a provider and model to be priced.
    ("verifyBearer", "X-Tollgate-Reserve", ""),
    ("verifyToken", "reserve", "needs"),
    ("verifyToken", "reserve.provider", "is required with model"),
    ("verifyToken", "reserve.model", "is required with provider"),
    // A limit's subject id must be of the kind the path names.
    ("*", "id", "must start with"),
    // Providers tollgate does not know need their address.
    ("*", "base_url", "is required for a provider other than"),
    // Deleting tokens younger than an hour takes `force`.
    ("cleanupTokens", "older_than", "must be at least 1h"),
    // An imported secret carries a checksum and this deployment's prefix.
    ("importToken", "secret", "is not a token of this deployment"),
    // A burst must refill at the given rate within a bound.
    ("setRateLimit", "burst", "must let a full burst refill"),
];

/// The credentials an operation may need: an admin API token, an admin's access JWT, an agent's credential.
struct Credentials {
    candidates: Vec<String>,
}

impl Credentials {
    async fn new(fixture: &Fixture, round: u64) -> Self {
        let (admin_token, _) = fixture.token(&format!("contract-admin-{round}"), Permission::Admin).await;
        // Logged in through the library from an address of its own: the generated login requests
        // throttle the fixture's address.
        let username = format!("contract-user-{round}");
        fixture.user(&username, tollgate::Role::Admin).await;
        let password = tollgate::Password::presented(support::PASSWORD.to_owned()).expect("password");
        let ip = Some(std::net::IpAddr::from([198, 51, 100, (round % 250) as u8 + 1]));
        let session = fixture.users.login(&username, password, ip).await.expect("login");
        let jwt = session.access_token.expose().to_owned();
        let agent = fixture
            .post("/v1/agents", Some(&admin_token), serde_json::json!({ "name": format!("contract-agent-{round}") }))
            .await;
        let agent_id = agent.ok(201)["id"].as_str().expect("agent id").to_owned();
        let credential =
            fixture.post(&format!("/v1/agents/{agent_id}/credentials"), Some(&jwt), serde_json::json!({})).await;
        let credential = credential.ok(201)["token"].as_str().expect("credential secret").to_owned();
        Self { candidates: vec![admin_token, jwt, credential] }
    }
}

fn build(generated: &GeneratedRequest, bearer: Option<&str>) -> Option<Request<Body>> {
    let mut builder = Request::builder().method(generated.method.as_str()).uri(&generated.uri);
    if let Some(bearer) = bearer {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    for (name, value) in &generated.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match &generated.body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Body::from(serde_json::to_vec(body).expect("serializes"))
        }
        None => Body::empty(),
    };
    builder.body(body).ok()
}

/// The status and, for a refusal, the problem body. A stream that opens is not read.
async fn answer(fixture: &Fixture, request: Request<Body>) -> (u16, Value) {
    let response = fixture.router().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    if status < 300 {
        return (status, Value::Null);
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a finite body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Why a reply breaks the contract, if it does.
fn breach(operation_id: &str, status: u16, problem: &Value) -> Option<String> {
    if status >= 500 {
        return Some(format!("answered {status}: {problem}"));
    }
    if status != 400 {
        return None;
    }
    let field = problem["field"].as_str().unwrap_or("");
    let detail = problem["detail"].as_str().unwrap_or("");
    let reason = detail.strip_prefix(field).and_then(|rest| rest.strip_prefix(": ")).unwrap_or(detail);
    if SEMANTIC.iter().any(|(operation, allowed, start)| {
        (*operation == "*" || *operation == operation_id) && *allowed == field && reason.starts_with(start)
    }) {
        return None;
    }
    Some(format!("refused with 400, field {field:?}: {}", problem["detail"]))
}

#[tokio::test]
async fn requests_valid_by_the_published_document_are_never_refused_as_malformed() {
    let fixture = Fixture::new().await;
    let document = fixture.get("/openapi.json", None).await.ok(200).clone();
    let components = document["components"]["schemas"].as_object().expect("component schemas");
    let mut generator = Generator::new(components, 0x7011_6a7e);
    let mut breaches: Vec<String> = Vec::new();
    let mut sent = 0u64;
    for (round, (path, operations)) in document["paths"].as_object().expect("paths").iter().enumerate() {
        // Fresh credentials per path: an operation may revoke the ones before (logout, sessions).
        let credentials = Credentials::new(&fixture, round as u64).await;
        for (method, operation) in operations.as_object().expect("operations") {
            let operation_id = operation["operationId"].as_str().expect("operationId");
            if path.ends_with("/ws") {
                // A WebSocket upgrade: a plain request is refused by the upgrade itself. Its query is
                // the one `GET /v1/events` takes, which is walked here.
                continue;
            }
            let public = operation["security"].as_array().is_some_and(Vec::is_empty);
            let mut bearer: Option<&str> = None;
            if !public {
                // The first credential the operation does not refuse as the wrong kind.
                let probe = generator.request(path, method, operation);
                for candidate in &credentials.candidates {
                    let Some(request) = build(&probe, Some(candidate)) else { break };
                    let (status, _) = answer(&fixture, request).await;
                    bearer = Some(candidate);
                    if status != 401 && status != 403 {
                        break;
                    }
                }
            }
            let mut seen: Vec<String> = Vec::new();
            for _ in 0..CASES_PER_OPERATION {
                let generated = generator.request(path, method, operation);
                let Some(request) = build(&generated, bearer) else {
                    breaches.push(format!(
                        "{operation_id}: the document allows a header HTTP cannot carry: {:?}",
                        generated.headers
                    ));
                    continue;
                };
                let (status, problem) = answer(&fixture, request).await;
                sent += 1;
                if let Some(why) = breach(operation_id, status, &problem)
                    && !seen.contains(&why)
                {
                    let body = generated.body.as_ref().map(Value::to_string).unwrap_or_default();
                    let body: String = body.chars().take(300).collect();
                    breaches.push(format!(
                        "{operation_id} ({} {}): {why}\n    body: {body}",
                        generated.method, generated.uri
                    ));
                    seen.push(why);
                }
            }
        }
    }
    assert!(sent > 1_000, "only {sent} requests were generated");
    assert!(breaches.is_empty(), "{} breaches of the published contract:\n{}", breaches.len(), breaches.join("\n"));
}

#[tokio::test]
async fn what_the_document_forbids_is_refused() {
    let fixture = Fixture::new().await;
    let (admin, token_id) = fixture.token("contract-admin", Permission::Admin).await;
    // `not: {required: [expires_at, expires_in_seconds]}`: a null beside the other is still both.
    let both = serde_json::json!({ "name": "x", "expires_at": null, "expires_in_seconds": 60 });
    fixture.post("/v1/tokens", Some(&admin), both.clone()).await.problem(400, "invalid_field");
    let patch = serde_json::json!({ "expires_at": null, "expires_in_seconds": 60 });
    fixture.patch(&format!("/v1/tokens/{token_id}"), Some(&admin), patch).await.problem(400, "invalid_field");
    // A request without a credential hears that first, whatever its headers say.
    let request =
        Request::builder().uri("/v1/auth/verify").header("X-Tollgate-Tool", "").body(Body::empty()).expect("a request");
    fixture.send(request).await.problem(401, "missing_credential");
}

#[tokio::test]
async fn every_parameter_and_property_a_client_sends_is_constrained() {
    let fixture = Fixture::new().await;
    let document = fixture.get("/openapi.json", None).await.ok(200).clone();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for operation in operations.as_object().expect("operations").values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = &parameter["schema"];
                let constrained =
                    ["pattern", "enum", "format", "anyOf", "oneOf"].iter().any(|keyword| schema.get(keyword).is_some())
                        || schema["type"] != "string";
                assert!(
                    constrained,
                    "{path} {}: parameter {} is any string",
                    operation["operationId"], parameter["name"]
                );
            }
        }
    }
}

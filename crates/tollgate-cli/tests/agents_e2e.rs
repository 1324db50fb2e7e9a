//! End-to-end over the real binary and a socket: the operator stores a provider key from standard
//! input, an agent fetches it with its own credential, the master key is rotated by the CLI while
//! the server runs, and the key never appears in the database files or the server's log.

mod support;

use serde_json::json;
use support::{Server, cli, cli_json, cli_with_input, create_token, ensure_owner, workspace};

const SECRET: &str = "sk-e2e-PLAINTEXT0123456789abcdef";

/// Over the socket: a user's JWT, another agent's credential, and a revoked and a rotated-out
/// credential of this agent are refused; the other agent's refusal tells nothing about the key.
fn refuse_everyone_else(dir: &std::path::Path, db: &str, server: &Server, agent: &str, credential: &str) {
    let path = format!("/v1/agents/{agent}/provider-key");
    let code = |reply: &support::Reply| (reply.status, reply.json()["code"].clone());
    let create = [
        "--db",
        db,
        "user",
        "create",
        "--username",
        "ursula",
        "--email",
        "ursula@example.com",
        "--role",
        "admin",
        "--password-stdin",
        "--bcrypt-cost",
        "10",
    ];
    cli_with_input_raw(dir, &create, "correct horse battery staple\n");
    let login = json!({ "username": "ursula", "password": "correct horse battery staple" }).to_string();
    let jwt = server.request("POST", "/v1/auth/login", None, Some(&login)).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code(&server.request("POST", &path, Some(&jwt), None)), (401, json!("malformed")));

    let other = cli_json(dir, &["--db", db, "--json", "agent", "create", "--name", "other", "--owner", "alice"]);
    let other_id = other["id"].as_str().unwrap();
    let other_credential = cli_json(dir, &["--db", db, "--json", "agent", "credential", "create", other_id]);
    let other_secret = other_credential["token"].as_str().unwrap();
    let theirs = server.request("POST", &path, Some(other_secret), None);
    let nothing = server.request("POST", &format!("/v1/agents/{other_id}/provider-key"), Some(other_secret), None);
    assert_eq!((code(&theirs), theirs.json()["detail"].clone()), (code(&nothing), nothing.json()["detail"].clone()));
    assert_eq!(code(&theirs), (404, json!("provider_key_not_found")));

    // A second credential of this agent: rotated without grace (the old secret is unknown at once), then revoked.
    let spare = cli_json(dir, &["--db", db, "--json", "agent", "credential", "create", agent]);
    let (spare_secret, spare_id) = (spare["token"].as_str().unwrap(), spare["id"].as_str().unwrap());
    assert_eq!(server.request("POST", &path, Some(spare_secret), None).status, 200);
    // Done by another process (the CLI): the server's verify cache (2 s) sees it within its TTL.
    let refused_soon = |secret: &str, expected: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while code(&server.request("POST", &path, Some(secret), None)) != (401, json!(expected)) {
            assert!(std::time::Instant::now() < deadline, "{expected} did not reach the server within its cache TTL");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let rotated = cli_json(dir, &["--db", db, "--json", "agent", "credential", "rotate", agent, spare_id]);
    refused_soon(spare_secret, "not_found");
    let new_secret = rotated["token"].as_str().unwrap();
    assert_eq!(server.request("POST", &path, Some(new_secret), None).status, 200);
    cli_json(dir, &["--db", db, "--json", "agent", "credential", "revoke", agent, spare_id]);
    refused_soon(new_secret, "revoked");
    assert_eq!(server.request("POST", &path, Some(credential), None).status, 200, "the first credential still works");
}

/// [`cli_with_input`] for a command that prints no JSON.
fn cli_with_input_raw(dir: &std::path::Path, args: &[&str], input: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(support::BINARY)
        .current_dir(dir)
        .args(args)
        .env_remove("TOLLGATE_DB")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tollgate");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn an_agent_fetches_its_key_through_a_master_key_rotation() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let mut server = Server::start(dir, &["--db", db_arg, "--log", "trace"], &[]);
    let (admin, _) = create_token(dir, &db, "root", "admin");
    ensure_owner(dir, &db, "alice");

    // The operator stores the key: from standard input, never the command line.
    let add = ["--db", db_arg, "--json", "provider-key", "add", "--provider", "openai", "--owner", "alice"];
    let key = cli_with_input(dir, &add, &format!("{SECRET}\n"));
    assert_eq!(key["masked"], "sk-…cdef");
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert!(dir.join("tollgate.db.vault.key").exists(), "the vault key file is created beside the database");

    let body = json!({ "name": "triage", "owner": "alice", "providers": ["openai"], "provider_key_id": key_id });
    let agent = server.request("POST", "/v1/agents", Some(&admin), Some(&body.to_string()));
    assert_eq!(agent.status, 201, "{}", agent.body);
    let agent_id = agent.json()["id"].as_str().unwrap().to_owned();
    let issued = server.request("POST", &format!("/v1/agents/{agent_id}/credentials"), Some(&admin), Some("{}"));
    assert_eq!(issued.status, 201, "{}", issued.body);
    let credential = issued.json()["token"].as_str().unwrap().to_owned();

    let deliver = |server: &Server| {
        server.request("POST", &format!("/v1/agents/{agent_id}/provider-key"), Some(&credential), None)
    };
    let delivered = deliver(&server);
    assert_eq!((delivered.status, delivered.json()["secret"].clone()), (200, json!(SECRET)), "{}", delivered.body);
    let refused = server.request("POST", &format!("/v1/agents/{agent_id}/provider-key"), Some(&admin), None);
    assert_eq!((refused.status, refused.json()["code"].clone()), (401, json!("malformed")));
    refuse_everyone_else(dir, db_arg, &server, &agent_id, &credential);

    // Rotation by the CLI while the server runs: every row re-wrapped, the server still delivers.
    let rotation = cli_json(dir, &["--db", db_arg, "--json", "vault", "rotate-master-key"]);
    assert_eq!((rotation["added"].clone(), rotation["rewrapped"].clone()), (json!(2), json!(1)));
    let delivered = deliver(&server);
    assert_eq!((delivered.status, delivered.json()["secret"].clone()), (200, json!(SECRET)), "{}", delivered.body);
    let retired = cli_json(dir, &["--db", db_arg, "--json", "vault", "retire-master-key", "1"]);
    assert_eq!(retired["retired"], 1);
    let status = cli_json(dir, &["--db", db_arg, "--json", "vault", "status"]);
    assert_eq!((status["current"].clone(), status["master_keys"].clone()), (json!(2), json!([[2, 1]])));
    assert_eq!(deliver(&server).status, 200);

    // Paused by the CLI: the server refuses the very next delivery (it reads the agent's status).
    let paused = cli_json(dir, &["--db", db_arg, "--json", "agent", "pause", &agent_id, "--reason", "drill"]);
    assert_eq!(paused["status"], "paused");
    let refused = deliver(&server);
    assert_eq!((refused.status, refused.json()["code"].clone()), (403, json!("agent_paused")));
    cli_json(dir, &["--db", db_arg, "--json", "agent", "resume", &agent_id]);
    // Resumed by another process: a credential verified while paused may be answered from the verify
    // cache until the change follower sees the resume, within the revocation bound (1 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while deliver(&server).status != 200 {
        assert!(std::time::Instant::now() < deadline, "the resume did not reach the server within its bound");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // A disabled key: the same 404 as no key at all.
    cli_json(dir, &["--db", db_arg, "--json", "provider-key", "disable", &key_id]);
    let refused = deliver(&server);
    assert_eq!((refused.status, refused.json()["code"].clone()), (404, json!("provider_key_not_found")));

    assert_eq!(server.terminate(), 0);
    let log = server.log.join("\n");
    assert!(log.contains("provider-key"), "the trace log covers the delivery route");
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{db_arg}{suffix}")) {
            files.extend(bytes);
        }
    }
    for plaintext in [&SECRET[7..], &credential[4..]] {
        assert!(!log.contains(plaintext), "a secret reached the server log");
        assert!(!contains(&files, plaintext), "a secret is in the database files");
    }
}

#[test]
fn the_cli_manages_agents_and_their_credentials() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    ensure_owner(dir, &db, "alice");
    let agent = cli_json(
        dir,
        &[
            "--db",
            db_arg,
            "--json",
            "agent",
            "create",
            "--name",
            "bot",
            "--owner",
            "alice",
            "--provider",
            "anthropic",
            "--metadata",
            r#"{"team":"ml"}"#,
        ],
    );
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!((agent["status"].clone(), agent["providers"].clone()), (json!("active"), json!(["anthropic"])));

    // The secret alone on standard output, so `$(tollgate agent credential create …)` captures it.
    let output = cli(dir, &["--db", db_arg, "agent", "credential", "create", &agent_id, "--expires-in", "7d"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let secret = String::from_utf8(output.stdout).unwrap();
    assert!(secret.trim().starts_with("tga_") && secret.trim().lines().count() == 1, "{secret}");
    let listed = cli_json(dir, &["--db", db_arg, "--json", "agent", "credential", "list", &agent_id]);
    let credential_id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(!listed.to_string().contains(&secret.trim()[4..]));

    let rotated =
        cli_json(dir, &["--db", db_arg, "--json", "agent", "credential", "rotate", &agent_id, &credential_id]);
    assert!(rotated["token"].as_str().unwrap().starts_with("tga_"));
    cli_json(dir, &["--db", db_arg, "--json", "agent", "credential", "revoke", &agent_id, &credential_id]);
    let revoked =
        cli_json(dir, &["--db", db_arg, "--json", "agent", "credential", "list", &agent_id, "--status", "revoked"]);
    assert_eq!(revoked["items"].as_array().unwrap().len(), 1);

    // A key of a provider the agent may not use is refused, naming the field.
    let add = ["--db", db_arg, "--json", "provider-key", "add", "--provider", "openai", "--owner", "alice"];
    let key = cli_with_input(dir, &add, "sk-cli-0123456789abcdef\n");
    let key_id = key["id"].as_str().unwrap();
    let output = cli(dir, &["--db", db_arg, "agent", "update", &agent_id, "--provider-key", key_id]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("provider_key_id") && !error.contains("0123456789"), "{error}");

    let disabled = cli_json(dir, &["--db", db_arg, "--json", "agent", "disable", &agent_id]);
    assert_eq!(disabled["status"], "disabled");
    let output = cli(dir, &["--db", db_arg, "agent", "credential", "create", &agent_id]);
    assert!(!output.status.success(), "a disabled agent gets no credential");
    let deleted = cli_json(dir, &["--db", db_arg, "--json", "agent", "delete", &agent_id]);
    assert_eq!(deleted["deleted"], agent_id.as_str());
    let output = cli(dir, &["--db", db_arg, "agent", "show", &agent_id]);
    assert!(!output.status.success());
}

/// An agent sends analytics events over the socket (a retry counted once); the CLI reads its
/// spending and budget status from the same database, pages the breakdown, and refuses a bad period.
#[test]
fn agent_analytics_from_the_socket_to_the_cli() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let mut server = Server::start(dir, &["--db", db_arg], &[]);
    ensure_owner(dir, &db, "alice");
    let mut agents = Vec::new();
    for (name, cost) in [("triage", 700_000), ("summarise", 90_000)] {
        let agent = cli_json(dir, &["--db", db_arg, "--json", "agent", "create", "--name", name, "--owner", "alice"]);
        let agent_id = agent["id"].as_str().unwrap().to_owned();
        cli_json(dir, &["--db", db_arg, "--json", "budget", "set", &agent_id, "--allocated", "1.00"]);
        let credential = cli_json(dir, &["--db", db_arg, "--json", "agent", "credential", "create", &agent_id]);
        let credential = credential["token"].as_str().unwrap().to_owned();
        let event = json!({
            "event_id": "call-1", "timestamp": "2026-01-01T00:00:00Z", "type": "llm_request_completed",
            "provider": "openai", "model": "gpt-4o", "input_tokens": 900, "output_tokens": 100,
            "cost_microdollars": cost,
        });
        for expected in ["recorded", "duplicate"] {
            let sent = server.request("POST", "/v1/analytics/events", Some(&credential), Some(&event.to_string()));
            assert_eq!(sent.status, 200, "{}", sent.body);
            assert_eq!(sent.json()["events"][0]["outcome"], expected);
        }
        agents.push(agent_id);
    }
    let spending = ["--db", db_arg, "--json", "analytics", "spending", "--period", "all-time"];
    let report = cli_json(dir, &spending);
    assert_eq!(
        (report["totals"]["cost_micros"].clone(), report["totals"]["events"].clone()),
        (json!(790_000), json!(2))
    );
    assert_eq!(report["groups"][0]["key"], agents[0].as_str(), "highest cost first");
    let first = cli(dir, &["--db", db_arg, "analytics", "spending", "--period", "all-time", "--limit", "1"]);
    let text = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(text.contains(&agents[0]) && !text.contains(&agents[1]), "{text}");
    let cursor = text.lines().find_map(|line| line.strip_prefix("more: --cursor ")).expect("a next page").to_owned();
    let second = cli(
        dir,
        &["--db", db_arg, "analytics", "spending", "--period", "all-time", "--limit", "1", "--cursor", &cursor],
    );
    let text = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(text.contains(&agents[1]) && !text.contains("more:"), "{text}");
    let budgets = cli_json(dir, &["--db", db_arg, "--json", "analytics", "budgets"]);
    let risks: Vec<(String, String)> = budgets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["agent_id"].as_str().unwrap().to_owned(), item["risk"].as_str().unwrap().to_owned()))
        .collect();
    assert!(risks.contains(&(agents[0].clone(), "low".to_owned())), "{risks:?}");
    let refused = cli(dir, &["--db", db_arg, "analytics", "spending", "--period", "fortnight"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("error: period:"));

    // A gateway's trace of a call through an API token, read back by the CLI.
    let (admin, token_id) = create_token(dir, &db, "root", "admin");
    let body =
        json!({ "token_id": token_id, "provider": "openai", "model": "gpt-4o", "status": 502, "latency_ms": 1800 });
    let traced = server.request("POST", "/v1/traces", Some(&admin), Some(&body.to_string()));
    assert_eq!(traced.status, 201, "{}", traced.body);
    let trace_id = traced.json()["id"].as_str().unwrap().to_owned();
    let listed = cli_json(dir, &["--db", db_arg, "--json", "traces", "list", "--min-status", "500"]);
    assert_eq!(listed["items"][0]["id"], trace_id.as_str());
    let shown = cli(dir, &["--db", db_arg, "traces", "show", &trace_id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("1800 ms"));
    let purged = cli_json(dir, &["--db", db_arg, "--json", "traces", "purge", "--retention", "1h", "--max-bytes", "0"]);
    assert_eq!(purged["by_size"], 0, "a trace without bodies takes no bytes");
    assert_eq!(server.terminate(), 0);
}

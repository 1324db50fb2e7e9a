//! End-to-end: the real `tollgate serve` binary on port 0, spoken to over a socket.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::{Server, cli, create_token, workspace};

#[test]
fn serve_bootstraps_serves_the_contract_and_stops_cleanly() {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap();
    let mut server = Server::start(directory.path(), &["--db", db_arg, "--bcrypt-cost", "10"], &[]);
    let hint = server.wait_for_log("no admin exists yet");
    assert!(hint.contains("tollgate token create --permission admin"), "{hint}");
    assert!(hint.contains("tollgate user create --role admin"), "{hint}");
    assert!(db.exists() && directory.path().join("tollgate.db.key").exists(), "schema and key created");

    // The first admin comes from the shell, while the server runs.
    let (admin, _) = create_token(directory.path(), &db, "root", "admin");

    let health = server.request("GET", "/health", None, None);
    assert_eq!((health.status, health.json()["status"].clone()), (200, json!("ok")));

    let verified = server.request("GET", "/v1/auth/verify", Some(&admin), None);
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.json()["permission"], "admin");

    support::ensure_owner(directory.path(), &db, "alice");
    let body = json!({ "name": "svc", "owner": "alice", "scopes": ["tokens:verify"] }).to_string();
    let created = server.request("POST", "/v1/tokens", Some(&admin), Some(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.json()["token"].as_str().unwrap().to_owned();
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/tokens/{id}").as_str()));

    let check = json!({ "token": admin }).to_string();
    let verdict = server.request("POST", "/v1/tokens/verify", Some(&secret), Some(&check));
    assert_eq!((verdict.status, verdict.json()["valid"].clone()), (200, json!(true)));

    let listed = server.request("GET", "/v1/tokens?limit=1", Some(&admin), None);
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 1);
    assert!(listed.json()["next_cursor"].is_string());

    let revoked = server.request("POST", &format!("/v1/tokens/{id}/revoke"), Some(&admin), None);
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let refused = server.request("GET", "/v1/auth/verify", Some(&secret), None);
    assert_eq!((refused.status, refused.json()["code"].clone()), (401, json!("revoked")));
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));

    // The IP allow-list sees the real socket peer (127.0.0.1).
    let body = json!({ "name": "lan", "owner": "root", "ip_allow": ["10.0.0.0/8"] }).to_string();
    let lan =
        server.request("POST", "/v1/tokens", Some(&admin), Some(&body)).json()["token"].as_str().unwrap().to_owned();
    let outside = server.request("GET", "/v1/auth/verify", Some(&lan), None);
    assert_eq!((outside.status, outside.json()["code"].clone()), (403, json!("ip_not_allowed")));
    let body = json!({ "name": "local", "owner": "root", "ip_allow": ["127.0.0.1"] }).to_string();
    let local =
        server.request("POST", "/v1/tokens", Some(&admin), Some(&body)).json()["token"].as_str().unwrap().to_owned();
    assert_eq!(server.request("GET", "/v1/auth/verify", Some(&local), None).status, 200);

    // A user logs in and calls the API with the access JWT (signed with <db>.jwt.key).
    let password = "correct horse battery staple";
    let body = json!({ "username": "ann", "email": "ann@example.com", "role": "user", "password": password });
    let user = server.request("POST", "/v1/users", Some(&admin), Some(&body.to_string()));
    assert_eq!(user.status, 201, "{}", user.body);
    let user_id = user.json()["id"].as_str().unwrap().to_owned();
    let login = json!({ "username": "ann", "password": password }).to_string();
    let session = server.request("POST", "/v1/auth/login", None, Some(&login));
    assert_eq!(session.status, 200, "{}", session.body);
    assert!(directory.path().join("tollgate.db.jwt.key").exists(), "the JWT key sits beside the database");
    let jwt = session.json()["access_token"].as_str().unwrap().to_owned();
    let me = server.request("GET", &format!("/v1/users/{user_id}"), Some(&jwt), None);
    assert_eq!((me.status, me.json()["username"].clone()), (200, json!("ann")), "{}", me.body);
    let mine = json!({ "name": "laptop", "owner": "ann" }).to_string();
    assert_eq!(server.request("POST", "/v1/tokens", Some(&jwt), Some(&mine)).status, 201);
    let not_admin = server.request("GET", "/v1/audit", Some(&jwt), None);
    assert_eq!((not_admin.status, not_admin.json()["code"].clone()), (403, json!("forbidden")));
    let audit = server.request("GET", &format!("/v1/audit?target={user_id}"), Some(&admin), None);
    assert_eq!(audit.json()["items"][0]["ip"], "127.0.0.1", "{}", audit.body);

    let metrics = server.request("GET", "/metrics", None, None);
    assert!(metrics.body.contains(r#"tollgate_verify_total{code="revoked"} 1"#), "{}", metrics.body);
    let openapi = server.request("GET", "/openapi.json", None, None);
    assert_eq!(openapi.json()["openapi"], "3.1.0");
    let missing = server.request("GET", "/v1/nope", Some(&admin), None);
    assert_eq!((missing.status, missing.json()["code"].clone()), (404, json!("route_not_found")));

    assert_eq!(server.terminate(), 0, "log:\n{}", server.log.join("\n"));
    assert!(server.log.iter().any(|line| line.contains("stopped")), "{}", server.log.join("\n"));
    let log = server.log.join("\n");
    for secret in [&admin, &secret, &lan, &local] {
        assert!(!log.contains(&secret[3..]), "a secret reached the log");
    }
    assert!(!log.contains(password) && !log.contains(jwt.rsplit('.').next().unwrap()), "a session secret was logged");

    // With an admin in place the hint is gone.
    let mut again = Server::start(directory.path(), &["--db", db_arg], &[]);
    assert_eq!(again.request("GET", "/health", None, None).status, 200);
    assert_eq!(again.terminate(), 0);
    assert!(!again.log.iter().any(|line| line.contains("no admin exists yet")), "{}", again.log.join("\n"));
}

fn micros_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

#[test]
fn shutdown_under_load_loses_no_acknowledged_work() {
    let (directory, db) = workspace();
    let db_arg = db.to_str().unwrap();
    let (secret, id) = create_token(directory.path(), &db, "alice", "standard");
    // Only the shutdown flush can write last_used_at: the periodic flush is an hour away.
    let mut server = Server::start(directory.path(), &["--db", db_arg, "--flush-interval", "1h"], &[]);
    let address = server.address.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let last_acknowledged = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(AtomicU64::new(0));
    // Two more workers report usage; every event answered 200 must be in the database afterwards.
    let usage_accepted = Arc::new(AtomicU64::new(0));
    let reporters: Vec<_> = (0..2)
        .map(|_| {
            let (address, secret, id) = (address.clone(), secret.clone(), id.clone());
            let (stop, usage_accepted) = (stop.clone(), usage_accepted.clone());
            std::thread::spawn(move || {
                let event = json!({ "token_id": id, "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1 });
                let batch = json!({ "events": [event.clone(), event.clone(), event] }).to_string();
                let mut statuses = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match support::http(&address, "POST", "/v1/usage", Some(&secret), Some(&batch)) {
                        Ok(reply) => {
                            statuses.push(reply.status);
                            if reply.status == 200 {
                                usage_accepted.fetch_add(3, Ordering::SeqCst);
                            }
                        }
                        Err(_) => break,
                    }
                }
                statuses
            })
        })
        .collect();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (address, secret) = (address.clone(), secret.clone());
            let (stop, last_acknowledged, acknowledged) =
                (stop.clone(), last_acknowledged.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let sent_at = micros_now();
                    match support::http(&address, "GET", "/v1/auth/verify", Some(&secret), None) {
                        Ok(reply) => {
                            statuses.push(reply.status);
                            if reply.status == 200 {
                                last_acknowledged.fetch_max(sent_at, Ordering::SeqCst);
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // The listener closed: the shutdown has begun.
                        Err(_) => break,
                    }
                }
                statuses
            })
        })
        .collect();
    while acknowledged.load(Ordering::SeqCst) < 200 || usage_accepted.load(Ordering::SeqCst) < 300 {
        std::thread::yield_now();
    }
    let code = server.terminate();
    stop.store(true, Ordering::SeqCst);
    let statuses: Vec<u16> = workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect();
    let usage_statuses: Vec<u16> = reporters.into_iter().flat_map(|worker| worker.join().unwrap()).collect();
    assert_eq!(code, 0, "log:\n{}", server.log.join("\n"));
    assert!(statuses.iter().all(|&status| status == 200), "every answered request succeeded: {statuses:?}");
    assert!(usage_statuses.iter().all(|&status| status == 200), "{usage_statuses:?}");

    // The periodic usage flush is a second away at most, but the last batches only the shutdown wrote.
    let usage = cli(directory.path(), &["--db", db_arg, "--json", "usage", "show", "--token-id", &id, "--since", "1h"]);
    assert!(usage.status.success(), "{}", String::from_utf8_lossy(&usage.stderr));
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).unwrap();
    let accepted = usage_accepted.load(Ordering::SeqCst);
    assert_eq!(
        usage["totals"]["events"].as_u64(),
        Some(accepted),
        "every acknowledged usage event was written: {usage}"
    );

    let shown = cli(directory.path(), &["--db", db_arg, "--json", "token", "show", &id]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let last_used = shown["record"]["last_used_at"].as_str().expect("last_used_at was flushed at shutdown");
    let last_used = tollgate::Timestamp::parse_rfc3339("last_used_at", last_used).unwrap().unix_micros() as u64;
    let acknowledged_at = last_acknowledged.load(Ordering::SeqCst);
    assert!(
        last_used >= acknowledged_at,
        "last_used_at {last_used} is older than an acknowledged verify {acknowledged_at}"
    );
}

#[test]
fn configuration_comes_from_a_file_env_vars_and_flags() {
    let (directory, _) = workspace();
    let config = directory.path().join("tollgate.toml");
    let db = directory.path().join("from-file.db");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:1\"\ndb = {:?}\nlog_format = \"text\"\n", db.to_str().unwrap()),
    )
    .unwrap();
    // --listen (from Server::start) beats the file; TOLLGATE_LOG_FORMAT beats the file too.
    let env = [("TOLLGATE_CONFIG", config.to_str().unwrap()), ("TOLLGATE_LOG_FORMAT", "json")];
    let mut server = Server::start(directory.path(), &[], &env);
    assert_eq!(server.request("GET", "/health", None, None).status, 200);
    assert!(db.exists(), "the database named by the file was created");
    assert_eq!(server.terminate(), 0);
    assert!(!server.log.is_empty());
    for line in &server.log {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(entry["level"].is_string(), "{line}");
    }

    std::fs::write(&config, "flush_interval = \"never\"\n").unwrap();
    let bad = cli(directory.path(), &["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("flush_interval"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::write(&config, "colour = \"red\"\n").unwrap();
    let unknown = cli(directory.path(), &["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("colour"));
}

#[test]
fn with_no_configuration_it_creates_tollgate_db_in_the_working_directory() {
    let (directory, _) = workspace();
    let mut server = Server::start(directory.path(), &[], &[]);
    assert_eq!(server.request("GET", "/health", None, None).status, 200);
    assert_eq!(server.terminate(), 0);
    assert!(directory.path().join("tollgate.db").exists());
    assert!(directory.path().join("tollgate.db.key").exists());
}

#[test]
fn a_password_in_the_database_url_never_reaches_the_output() {
    let (directory, _) = workspace();
    let dir = directory.path();
    let keys: Vec<String> =
        ["key", "jwt.key", "vault.key"].iter().map(|name| dir.join(name).display().to_string()).collect();
    let output = std::process::Command::new(support::BINARY)
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://tollgate:hunter2-secret@127.0.0.1:1/db",
        ])
        .args(["--key-file", &keys[0], "--jwt-key-file", &keys[1], "--vault-key-file", &keys[2]])
        .env_remove("TOLLGATE_DB")
        .output()
        .expect("run tollgate serve");
    assert!(!output.status.success(), "nothing listens on port 1");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("***@127.0.0.1:1"), "the error names the server: {printed}");
}

/// `tollgate events` tails a running server over its socket: a revocation made by another process
/// (the CLI on the same database) reaches it; at SIGTERM the server ends open streams (`closed`)
/// and still stops cleanly. The credential comes from a file, never argv.
#[test]
fn events_tail_sees_another_process_and_shutdown_ends_the_stream() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let mut server = Server::start(dir, &["--db", db_arg], &[]);
    let (admin, _) = create_token(dir, &db, "root", "admin");
    let (_, doomed) = create_token(dir, &db, "alice", "standard");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{admin}\n")).unwrap();
    let url = format!("http://{}", server.address);
    let tail = |extra: &[&str]| {
        let mut command = Command::new(support::BINARY);
        command.current_dir(dir).args([
            "--json",
            "events",
            "--url",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
        ]);
        command.args(extra).env_remove("TOLLGATE_TOKEN").stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    let one = tail(&["--type", "token.revoked", "--count", "1"]);
    let open = tail(&[]);
    // The streams are open once the server counts them (no sleep: poll the gauge).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.request("GET", "/metrics", None, None).body.contains("tollgate_live_subscribers 2") {
        assert!(std::time::Instant::now() < deadline, "the event streams did not open");
        std::thread::yield_now();
    }
    let revoked = cli(dir, &["--db", db_arg, "token", "revoke", &doomed]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let output = one.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{:?}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!((line["event"].clone(), line["data"]["subject"].clone()), (json!("token.revoked"), json!(doomed)));

    assert_eq!(server.terminate(), 0, "an open stream does not hold the shutdown");
    let output = open.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let last = BufReader::new(&output.stdout[..]).lines().map_while(Result::ok).last().unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&last).unwrap()["event"], "closed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(&admin), "the credential never reaches the output");

    // Without a credential, or with a bad URL, it refuses before connecting (exit 2).
    let refused = cli(dir, &["events", "--url", &url]);
    assert_eq!(refused.status.code(), Some(2));
    let refused = cli(dir, &["events", "--url", "https://x", "--token-file", token_file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
}

/// A backup taken while tokens are being created over HTTP holds every token acknowledged before it
/// started; restored elsewhere (with its key files, all 0600) it verifies its audit chain and the
/// tokens still verify.
#[test]
fn a_backup_under_write_load_restores_every_acknowledged_write() {
    use std::os::unix::fs::PermissionsExt as _;

    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let mut server = Server::start(dir, &["--db", db_arg], &[]);
    let (admin, _) = create_token(dir, &db, "ops", "admin");
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (address, acknowledged, stop, admin) =
            (server.address.clone(), Arc::clone(&acknowledged), Arc::clone(&stop), admin.clone());
        std::thread::spawn(move || {
            let mut index = 0;
            while !stop.load(Ordering::Acquire) {
                let body = json!({ "name": format!("load-{index}"), "owner": "ops" }).to_string();
                let created = support::http(&address, "POST", "/v1/tokens", Some(&admin), Some(&body)).unwrap();
                assert_eq!(created.status, 201, "{}", created.body);
                let created = created.json();
                let pair = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());
                acknowledged.lock().unwrap().push(pair);
                index += 1;
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 40 {
        std::thread::yield_now();
    }
    let before: Vec<(String, String)> = acknowledged.lock().unwrap().clone();
    let backup = dir.join("backup.db");
    let taken = cli(dir, &["--db", db_arg, "--json", "backup", "--to", backup.to_str().unwrap()]);
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(acknowledged.lock().unwrap().len() > before.len(), "writes went on during the backup");

    let elsewhere = tempfile::tempdir().unwrap();
    let restored = elsewhere.path().join("restored.db");
    let restored_arg = restored.to_str().unwrap();
    let output = cli(dir, &["--db", restored_arg, "--json", "restore", backup.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for file in [restored.clone(), elsewhere.path().join("restored.db.key"), backup.clone(), dir.join("backup.db.key")]
    {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let listed = cli(dir, &["--db", restored_arg, "--json", "token", "list", "--limit", "1000", "--status", "all"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: std::collections::HashSet<&str> =
        listed["items"].as_array().unwrap().iter().map(|token| token["id"].as_str().unwrap()).collect();
    for (id, _) in &before {
        assert!(ids.contains(id.as_str()), "{id} was acknowledged before the backup and is missing");
    }
    let audit = cli(dir, &["--db", restored_arg, "audit", "verify"]);
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    // The restored key file still verifies the tokens (stdin only).
    let mut verify = std::process::Command::new(support::BINARY)
        .current_dir(dir)
        .args(["--db", restored_arg, "token", "verify"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut verify.stdin.take().unwrap(), before[0].1.as_bytes()).unwrap();
    assert!(verify.wait().unwrap().success(), "a token restored with its key verifies");
    let again = cli(dir, &["--db", restored_arg, "restore", backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "restore never overwrites");
    assert_eq!(server.terminate(), 0);
}

/// `--log` filters per target and every level means what it says: TRACE lines from tollgate at
/// `trace` (alone or per target), none at `debug`; no secret at any level.
#[test]
fn log_levels_mean_what_they_say_per_target() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let (admin, _) = create_token(dir, &db, "ops", "admin");
    for (filter, traced) in [("tollgate=trace,sqlx=warn", true), ("trace", true), ("tollgate=debug", false)] {
        let mut server = Server::start(dir, &["--db", db_arg, "--log", filter], &[]);
        assert_eq!(server.request("GET", "/v1/auth/verify", Some(&admin), None).status, 200);
        assert_eq!(server.terminate(), 0);
        let log = server.log.join("\n");
        let trace_lines: Vec<&str> = log.lines().filter(|line| line.contains("TRACE")).collect();
        assert_eq!(!trace_lines.is_empty(), traced, "--log {filter}:\n{log}");
        if traced {
            assert!(trace_lines.iter().any(|line| line.contains("token verified")), "{log}");
            assert!(trace_lines.iter().any(|line| line.contains("received")), "{log}");
        }
        assert!(log.lines().any(|line| line.contains("DEBUG")), "--log {filter} includes debug:\n{log}");
        assert!(!log.contains(&admin[3..]), "a secret reached the log at --log {filter}");
    }
}

//! Signed usage receipts end to end: `serve --receipts` over real HTTP answers usage with a
//! receipt, `tollgate receipt verify` accepts it (key from --server, --public-key, or the key file
//! beside the database; a file or standard input), refuses a tampered cost or another key with
//! exit 1 and unreadable input with exit 2; `backup` copies the receipt key.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use support::{BINARY, Server, cli, create_token, workspace};

fn code(directory: &Path, args: &[&str]) -> i32 {
    let output = cli(directory, args);
    output.status.code().unwrap_or_else(|| panic!("killed: {}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn a_served_receipt_verifies_offline_and_a_tampered_one_does_not() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let db_arg = db.to_str().unwrap();
    let (admin, token_id) = create_token(dir, &db, "gateway", "admin");
    let server = Server::start(dir, &["--db", db_arg, "--receipts"], &[]);
    let key_file = dir.join("tollgate.db.receipt.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let event = json!({ "event_id": "req-1", "token_id": token_id, "provider": "openai", "model": "gpt-4o",
                        "input_tokens": 1000, "output_tokens": 100, "cost_micros": 2_500 });
    let reply = server.request("POST", "/v1/usage", Some(&admin), Some(&event.to_string()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["events"][0]["receipt"]["cost_micros"], 2_500, "{answer}");
    let response_file = dir.join("response.json");
    std::fs::write(&response_file, &reply.body).unwrap();
    let response = response_file.to_str().unwrap();
    let server_url = format!("http://{}", server.address);

    assert_eq!(code(dir, &["receipt", "verify", response, "--server", &server_url]), 0);
    assert_eq!(code(dir, &["--db", db_arg, "receipt", "verify", response]), 0, "the key file beside the database");
    let key_output = cli(dir, &["--db", db_arg, "--json", "receipt", "key"]);
    let keys: serde_json::Value = serde_json::from_slice(&key_output.stdout).unwrap();
    let public_key = keys["keys"][0]["public_key"].as_str().unwrap().to_owned();
    assert_eq!(code(dir, &["receipt", "verify", response, "--public-key", &public_key]), 0);
    let served = server.request("GET", "/v1/receipts/key", None, None).json();
    assert_eq!(served["public_key"], public_key.as_str());
    std::fs::write(dir.join("key.json"), served.to_string()).unwrap();
    assert_eq!(code(dir, &["receipt", "verify", response, "--public-key", "@key.json"]), 0);

    // The receipt alone, on standard input.
    let mut child = Command::new(BINARY)
        .current_dir(dir)
        .args(["receipt", "verify", "-", "--public-key", &public_key])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(answer["events"][0]["receipt"].to_string().as_bytes()).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // A cost changed by a byte is invalid (1); so is a receipt checked against another key.
    let mut tampered = answer.clone();
    tampered["events"][0]["receipt"]["cost_micros"] = json!(2_400);
    std::fs::write(dir.join("tampered.json"), tampered.to_string()).unwrap();
    assert_eq!(code(dir, &["receipt", "verify", "tampered.json", "--server", &server_url]), 1);
    let other = dir.join("other.receipt.key");
    let other_key = cli(dir, &["--receipt-key-file", other.to_str().unwrap(), "--json", "receipt", "key"]);
    let other_key: serde_json::Value = serde_json::from_slice(&other_key.stdout).unwrap();
    let other_key = other_key["keys"][0]["public_key"].as_str().unwrap().to_owned();
    assert_eq!(code(dir, &["receipt", "verify", response, "--public-key", &other_key]), 1);
    // Not JSON, no receipt, a bad key: errors (2).
    std::fs::write(dir.join("garbage.json"), "not json").unwrap();
    assert_eq!(code(dir, &["receipt", "verify", "garbage.json", "--public-key", &public_key]), 2);
    assert_eq!(code(dir, &["receipt", "verify", "key.json", "--public-key", &public_key]), 2);
    assert_eq!(code(dir, &["receipt", "verify", response, "--public-key", "short"]), 2);

    // Backups carry the receipt key beside them.
    assert_eq!(code(dir, &["--db", db_arg, "backup", "--to", "backup.db"]), 0);
    assert_eq!(std::fs::read(dir.join("backup.db.receipt.key")).unwrap(), std::fs::read(&key_file).unwrap());
}

#[test]
fn without_receipts_no_key_file_is_made_and_answers_carry_none() {
    let (directory, db) = workspace();
    let dir = directory.path();
    let (admin, token_id) = create_token(dir, &db, "gateway", "admin");
    let server = Server::start(dir, &["--db", db.to_str().unwrap()], &[]);
    let event = json!({ "event_id": "req-1", "token_id": token_id, "provider": "openai", "model": "gpt-4o" });
    let reply = server.request("POST", "/v1/usage", Some(&admin), Some(&event.to_string()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["events"][0].get("receipt").is_none(), "{}", reply.body);
    assert_eq!(server.request("GET", "/v1/receipts/key", None, None).status, 404);
    assert!(!dir.join("tollgate.db.receipt.key").exists());
}

//! `tollgate token …` end to end: the real binary over a real database file.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::Shell;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn create_verify_rotate_revoke_round_trip() {
    let shell = Shell::new();
    shell.project("search", "alice");
    let (code, created) = shell.json(
        &["token", "create", "--name", "ci", "--owner", "alice", "--project", "search", "--ip-allow", "10.0.0.0/8"],
        None,
    );
    assert_eq!(code, 0);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tg_") && id.starts_with("tok_"));

    let (code, verified) = shell.json(&["token", "verify", "--ip", "10.2.3.4"], Some(&secret));
    assert_eq!((code, verified["valid"].as_bool()), (0, Some(true)));
    let (code, refused) = shell.json(&["token", "verify", "--ip", "192.0.2.1"], Some(&secret));
    assert_eq!((code, refused["code"].as_str()), (1, Some("ip_not_allowed")));

    let (code, rotated) = shell.json(&["token", "rotate", &id, "--grace", "1h"], None);
    assert_eq!((code, rotated["id"].as_str()), (0, Some(id.as_str())));
    let new_secret = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(shell.json(&["token", "verify", "--ip", "10.0.0.1"], Some(&secret)).0, 0, "old secret in grace");

    let revoked = shell.run(&["token", "revoke", &id, "--reason", "left the team"], None);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let (code, refused) = shell.json(&["token", "verify", "--ip", "10.0.0.1"], Some(&new_secret));
    assert_eq!((code, refused["code"].as_str()), (1, Some("revoked")));

    let (code, shown) = shell.json(&["token", "show", &id], None);
    assert_eq!((code, shown["status"].as_str()), (0, Some("revoked")));
    assert_eq!(shown["record"]["revoke_reason"].as_str(), Some("left the team"));
}

#[test]
fn list_is_a_table_and_pages_with_a_cursor() {
    let shell = Shell::new();
    for name in ["one", "two", "three"] {
        shell.owner("bob");
        assert!(shell.run(&["token", "create", "--name", name, "--owner", "bob"], None).status.success());
    }
    let table = shell.run(&["token", "list", "--owner", "bob"], None);
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATUS"), "{text}");
    assert_eq!(lines.len(), 4);
    let header_status = lines[0].find("STATUS").unwrap();
    assert!(lines[1..].iter().all(|line| line[header_status..].starts_with("active")), "columns align:\n{text}");

    let (_, first) = shell.json(&["token", "list", "--limit", "2"], None);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = shell.json(&["token", "list", "--limit", "2", "--cursor", &cursor], None);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
}

#[test]
fn invalid_input_exits_2_naming_the_field_and_stores_nothing() {
    let shell = Shell::new();
    let long_name = "n".repeat(10_000);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Every flag is checked before the owner is looked up: "a" names nobody (and is no valid name).
        (vec!["--name", "", "--owner", "a"], "name"),
        (vec!["--name", &long_name, "--owner", "a"], "name"),
        (vec!["--name", "a\u{1}b", "--owner", "a"], "name"),
        (vec!["--name", "a", "--owner", "a", "--ip-allow", "10.0.0.0/33"], "ip_allow"),
        (vec!["--name", "a", "--owner", "a", "--permission", "root"], "permission"),
        (vec!["--name", "a", "--owner", "a", "--expires-in", "0s"], "expires_in"),
        (vec!["--name", "a", "--owner", "a", "--expires-in=-1d"], "expires_in"),
        (vec!["--name", "a", "--owner", "a", "--scope", "Bad Scope"], "scopes"),
        (vec!["--name", "a", "--owner", "a", "--allowed-tools", "ok,NOT OK"], "allowed_tools"),
    ];
    for (args, field) in cases {
        let mut full = vec!["token", "create"];
        full.extend(args.iter().copied());
        let output = shell.run(&full, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.starts_with(&format!("error: {field}: ")), "{args:?} → {message}");
        assert_eq!(message.lines().count(), 1, "one line: {message}");
    }
    let unknown = shell.run(&["token", "create", "--name", "a", "--owner", "nobody"], None);
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("owner"), "{}", stderr(&unknown));
    let (_, listed) = shell.json(&["token", "list", "--status", "all"], None);
    assert!(listed["items"].as_array().unwrap().is_empty(), "nothing stored");

    let bad_id = shell.run(&["token", "show", "tok_nope"], None);
    assert_eq!(bad_id.status.code(), Some(2));
    let missing = shell.run(&["token", "revoke", "tok_0192f3a4b5c6d7e8f90a1b2c3d4e5f60"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("not found"));
    let unknown_flag = shell.run(&["token", "create", "--name", "a", "--owner", "a", "--bogus"], None);
    assert_eq!(unknown_flag.status.code(), Some(2));
}

#[test]
fn verify_reads_only_standard_input_and_refuses_garbage() {
    let shell = Shell::new();
    for garbage in ["", "tg_", "not a token", "\0\0\0", &"x".repeat(100_000)] {
        let (code, refused) = shell.json(&["token", "verify"], Some(garbage));
        assert_eq!((code, refused["code"].as_str()), (1, Some("malformed")), "{:?}", &garbage[..garbage.len().min(10)]);
    }
}

#[test]
fn key_file_is_created_beside_the_database_with_mode_0600() {
    let shell = Shell::new();
    assert!(shell.run(&["migrate"], None).status.success());
    let key = Path::new(&format!("{}.key", shell.db().display())).to_owned();
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn a_closed_standard_output_ends_output_quietly_instead_of_panicking() {
    let shell = Shell::new();
    shell.owner("bob");
    assert!(shell.run(&["token", "create", "--name", "one", "--owner", "bob"], None).status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["--db", shell.db().to_str().unwrap(), "--json", "token", "list"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `tollgate … | head -0`: the reader is gone before anything is written
    let output = child.wait_with_output().unwrap();
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    assert_eq!(output.status.code(), Some(0));
}

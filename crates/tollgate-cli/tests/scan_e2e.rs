//! `tollgate scan` end to end: the real binary, a real SQLite file, real files and a real git
//! repository's history.

mod support;

use std::path::Path;
use std::process::Command;

use support::Shell;

fn git(repo: &Path, args: &[&str]) {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn finds_a_token_in_files_and_history_names_it_and_revokes_it() {
    let shell = Shell::new();
    shell.owner("deployer");
    let (code, created) = shell.json(&["token", "create", "--name", "deploy", "--owner", "deployer"], None);
    assert_eq!(code, 0);
    let (id, secret) = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());

    let tree = shell.directory.path().join("tree");
    std::fs::create_dir_all(tree.join("src/nested")).unwrap();
    std::fs::write(tree.join("src/clean.rs"), "fn main() { let not_a_token = \"tg_abc\"; }\n").unwrap();
    std::fs::write(tree.join("src/nested/config.env"), format!("# settings\nAPI_KEY={secret}\n")).unwrap();
    std::fs::write(tree.join("blob.bin"), [b"\0\0".as_slice(), secret.as_bytes()].concat()).unwrap();

    // Without a database: file:line:column and the masked hint, never the secret; exit 1.
    let plain = support::cli(shell.directory.path(), &["scan", tree.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain.stderr));
    let out = text(&plain.stdout);
    let config = tree.join("src/nested/config.env");
    assert_eq!(out.lines().count(), 1, "binary files are skipped: {out}");
    assert!(out.starts_with(&format!("{}:2:9: tg_", config.display())), "{out}");
    assert!(!out.contains(&secret) && !text(&plain.stderr).contains(&secret));

    // Standard input.
    let piped = shell.run(&["scan", "-"], Some(&format!("x {secret} y")));
    assert_eq!(piped.status.code(), Some(1), "{}", text(&piped.stderr));
    assert!(text(&piped.stdout).starts_with("-:1:3: api_token tg_"), "{}", text(&piped.stdout));

    // A git repository where the token was committed, then removed.
    let repo = shell.directory.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("settings.toml"), format!("[api]\ntoken = \"{secret}\"\n")).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "oops"]);
    std::fs::write(repo.join("settings.toml"), "[api]\ntoken = \"from the environment\"\n").unwrap();
    git(&repo, &["commit", "-qam", "fix"]);
    let work_tree = support::cli(shell.directory.path(), &["scan", repo.to_str().unwrap()]);
    assert_eq!(work_tree.status.code(), Some(0), "the work tree is clean: {}", text(&work_tree.stdout));

    // With the database: the id and state; --revoke revokes it, audited with reason leaked.
    let (code, history) = shell.json(&["scan", "--git", repo.to_str().unwrap()], None);
    assert_eq!(code, 1);
    let finding = &history.as_array().unwrap()[0];
    let commit =
        Command::new("git").arg("-C").arg(&repo).args(["rev-list", "--max-parents=0", "HEAD"]).output().unwrap();
    let first_commit = text(&commit.stdout).trim().to_owned();
    assert_eq!(finding["location"].as_str(), Some(format!("{first_commit}:settings.toml").as_str()));
    assert_eq!((finding["line"].as_u64(), finding["column"].as_u64()), (Some(2), Some(10)));
    assert_eq!((finding["id"].as_str(), finding["state"].as_str()), (Some(id.as_str()), Some("active")));
    assert_eq!(finding["kind"].as_str(), Some("api_token"));
    assert!(!history.to_string().contains(&secret));

    let revoked = shell.run(&["scan", "--revoke", tree.to_str().unwrap()], None);
    assert_eq!(revoked.status.code(), Some(1), "{}", text(&revoked.stderr));
    let out = text(&revoked.stdout);
    assert!(out.contains(&format!("{id} revoked (revoked now)")), "{out}");
    let (code, shown) = shell.json(&["token", "show", &id], None);
    assert_eq!((code, shown["status"].as_str()), (0, Some("revoked")));
    let (_, audit) = shell.json(&["audit", "list", "--target", &id], None);
    let revoke = audit["items"].as_array().unwrap().iter().find(|entry| entry["action"] == "token.revoke").unwrap();
    assert_eq!(revoke["reason"].as_str(), Some("leaked"));

    // Again: already revoked, nothing revoked now, still exit 1 (it was found).
    let again = shell.run(&["scan", "--revoke", config.to_str().unwrap()], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stdout).ends_with(&format!("{id} revoked\n")), "{}", text(&again.stdout));
}

#[test]
fn a_clean_tree_exits_0_and_errors_exit_2() {
    let shell = Shell::new();
    let tree = shell.directory.path().join("clean");
    std::fs::create_dir_all(&tree).unwrap();
    let random = "tg_".to_owned() + &"A1b2C3d4E5".repeat(5)[..49];
    std::fs::write(tree.join("a.txt"), format!("looks like one: {random}\n")).unwrap();
    let clean = support::cli(shell.directory.path(), &["scan", tree.to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}{}", text(&clean.stdout), text(&clean.stderr));
    assert_eq!(text(&clean.stdout), "");

    let missing = support::cli(shell.directory.path(), &["scan", "no/such/path"]);
    assert_eq!(missing.status.code(), Some(2));
    let not_a_repo = support::cli(shell.directory.path(), &["scan", "--git", tree.to_str().unwrap()]);
    assert_eq!(not_a_repo.status.code(), Some(2), "{}", text(&not_a_repo.stderr));
    let revoke_without_db = support::cli(shell.directory.path(), &["scan", "--revoke", tree.to_str().unwrap()]);
    assert_eq!(revoke_without_db.status.code(), Some(2));
    assert!(text(&revoke_without_db.stderr).contains("revoke"));
}

//! `install-hooks` writes a pre-commit hook into the hooks directory git really uses, replaces its
//! own hook freely, and never overwrites somebody else's without `--force`.

use std::process::Command;

use xtask::install_hooks;

#[test]
fn the_hook_runs_the_quick_checks_and_a_foreign_hook_is_kept_unless_forced() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    assert!(Command::new("git").current_dir(root).args(["init", "--quiet"]).status().unwrap().success());

    let path = install_hooks(root, false).unwrap();
    assert_eq!(path, root.join(".git/hooks/pre-commit"));
    let hook = std::fs::read_to_string(&path).unwrap();
    assert!(hook.starts_with("#!/bin/sh\n"), "{hook}");
    assert!(hook.contains("cargo fmt --all --check\n") && hook.contains("cargo xtask validate paths\n"), "{hook}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
    }
    install_hooks(root, false).expect("reinstalling our own hook is fine");

    std::fs::write(&path, "#!/bin/sh\necho mine\n").unwrap();
    let error = install_hooks(root, false).unwrap_err().to_string();
    assert!(error.contains("was not written by xtask") && error.contains("--force"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "#!/bin/sh\necho mine\n");
    install_hooks(root, true).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("cargo xtask validate paths"));
}

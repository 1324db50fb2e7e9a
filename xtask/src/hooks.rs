//! `cargo xtask install-hooks`: a git pre-commit hook that runs the quick checks CI would fail on.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The first lines of the hook; also how a hook written by xtask is recognised.
const HEADER: &str = "#!/bin/sh\n# Installed by `cargo xtask install-hooks`: the quick checks CI would fail on.\n";

/// The hook.
const HOOK: &str = "set -e\ncargo fmt --all --check\ncargo xtask validate paths\n";

/// Writes the pre-commit hook into the hooks directory git uses for `root` (honouring
/// `core.hooksPath` and worktrees). Refuses to replace a hook xtask did not write unless `force`.
pub fn install_hooks(root: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("while running git rev-parse")?;
    if !output.status.success() {
        bail!("not a git checkout: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let hooks = root.join(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::create_dir_all(&hooks).with_context(|| format!("while creating {}", hooks.display()))?;
    let path = hooks.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.starts_with(HEADER)
        && !force
    {
        bail!("{} exists and was not written by xtask; rerun with --force to replace it", path.display());
    }
    std::fs::write(&path, format!("{HEADER}{HOOK}")).with_context(|| format!("while writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path)
}

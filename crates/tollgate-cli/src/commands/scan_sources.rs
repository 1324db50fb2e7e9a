//! Where `tollgate scan` reads from: files, directories (recursively, skipping `.git`, symlinks,
//! binary and huge files), standard input, and every blob of a git repository's history (`git`
//! as a subprocess: `rev-list --all --objects` names the blobs, one `cat-file --batch` reads them).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, anyhow, bail};

/// How many leading bytes decide that a file is binary (a NUL among them), as git does.
const BINARY_PROBE: usize = 8000;

/// Whether `bytes` look binary.
pub(super) fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(BINARY_PROBE)]).is_some()
}

/// Calls `visit(location, bytes)` for every text file under `path` (a file or a directory) no larger
/// than `max_size`; notes what it skips on standard error.
pub(super) fn walk(path: &Path, max_size: u64, visit: &mut dyn FnMut(&str, &[u8])) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(path).with_context(|| format!("while reading {}", path.display()))?;
    if metadata.is_dir() {
        if path.file_name().is_some_and(|name| name == ".git") {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("while listing {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("while listing {}", path.display()))?;
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            walk(&entry.path(), max_size, visit)?;
        }
    } else if metadata.is_file() {
        if metadata.len() > max_size {
            eprintln!("skipped {}: larger than --max-file-size ({} bytes)", path.display(), metadata.len());
            return Ok(());
        }
        let bytes = std::fs::read(path).with_context(|| format!("while reading {}", path.display()))?;
        if !is_binary(&bytes) {
            visit(&path.display().to_string(), &bytes);
        }
    }
    // Symlinks and special files are not followed: a link out of the tree or a loop, or a FIFO that blocks.
    Ok(())
}

/// Standard input, whole.
pub(super) fn stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin().lock().read_to_end(&mut bytes).context("while reading standard input")?;
    Ok(bytes)
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(repo).stderr(Stdio::piped());
    command
}

/// Calls `visit(blob id, path, bytes)` for every text blob of every commit reachable from any ref
/// of the repository at `repo` (each blob once, under the first path git names it by).
pub(super) fn git_blobs(repo: &Path, max_size: u64, visit: &mut dyn FnMut(&str, &str, &[u8])) -> anyhow::Result<()> {
    let listing = git(repo).args(["rev-list", "--all", "--objects"]).output().context("while running git rev-list")?;
    if !listing.status.success() {
        bail!("git rev-list failed in {}: {}", repo.display(), String::from_utf8_lossy(&listing.stderr).trim());
    }
    let mut paths = std::collections::HashMap::new();
    let mut ids = Vec::new();
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        // Commits have no path; trees and blobs do (the root tree's is empty).
        if let Some((id, path)) = line.split_once(' ')
            && !path.is_empty()
            && paths.insert(id.to_owned(), path.to_owned()).is_none()
        {
            ids.push(id.to_owned());
        }
    }
    let mut child = git(repo)
        .args(["cat-file", "--batch=%(objectname) %(objecttype) %(objectsize)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("while running git cat-file")?;
    let mut input = child.stdin.take().ok_or_else(|| anyhow!("git cat-file has no standard input"))?;
    // Written from another thread: git answers while it reads, and both pipes have bounded buffers.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for id in ids {
            writeln!(input, "{id}")?;
        }
        Ok(())
    });
    let mut output = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("git cat-file has no output"))?);
    let mut header = String::new();
    let mut content = Vec::new();
    loop {
        header.clear();
        if output.read_line(&mut header).context("while reading git cat-file")? == 0 {
            break;
        }
        let mut fields = header.split_whitespace();
        let (Some(id), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("git cat-file answered an unexpected line");
        };
        let size: u64 = size.parse().context("git cat-file answered a bad size")?;
        content.clear();
        (&mut output).take(size + 1).read_to_end(&mut content).context("while reading git cat-file")?;
        content.pop(); // the newline after each object
        if kind == "blob" && size <= max_size && !is_binary(&content) {
            visit(id, paths.get(id).map_or("", String::as_str), &content);
        }
    }
    writer.join().map_err(|_| anyhow!("the git cat-file writer panicked"))?.context("while writing to git cat-file")?;
    let status = child.wait().context("while waiting for git cat-file")?;
    if !status.success() {
        bail!("git cat-file failed in {}", repo.display());
    }
    Ok(())
}

/// The oldest commit (on any ref) that added or changed the blob `id`.
pub(super) fn commit_of_blob(repo: &Path, id: &str) -> anyhow::Result<Option<String>> {
    let output = git(repo)
        .args(["log", "--all", "--format=%H", "--find-object", id])
        .output()
        .context("while running git log")?;
    if !output.status.success() {
        bail!("git log failed in {}", repo.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().last().map(str::to_owned))
}

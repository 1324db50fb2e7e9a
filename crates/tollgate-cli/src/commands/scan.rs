//! `tollgate scan PATH… [-] [--git] [--revoke]`: finds tollgate secrets in files, directories,
//! standard input or a git repository's history; with a database (`--db`/`--database-url` given) it
//! names each one's token, session or credential and its state, and `--revoke` revokes them
//! (reason `leaked`). Never prints a secret, only its masked hint. Exit 1 when anything was found,
//! 0 when clean, 2 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use tollgate::{Caller, LeakedSecret, SecretScanner, TokenPrefix, TokenSecret, UserService};

use super::scan_sources;
use crate::cli::GlobalArgs;
use crate::exit::{CliError, CliResult};

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Files and directories to scan (`-` for standard input); with --git, repositories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Scan every blob in the history of the git repositories named (every ref), not the work tree.
    #[arg(long)]
    git: bool,
    /// Revoke every secret found (reason `leaked`, audited); needs --db or --database-url.
    #[arg(long)]
    revoke: bool,
    /// The prefixes to look for when no database is given [default: tg, tgr, tga].
    #[arg(long = "prefix")]
    prefixes: Vec<String>,
    /// Files (and blobs) larger than this many bytes are skipped.
    #[arg(long, default_value_t = 16 << 20)]
    max_file_size: u64,
}

/// One finding, as printed (never the secret).
#[derive(Debug, Serialize)]
struct Finding {
    /// `path`, `-` for standard input, or `<commit>:<path>` in git history.
    location: String,
    line: usize,
    column: usize,
    hint: String,
    #[serde(flatten)]
    classified: Option<LeakedSecret>,
    #[serde(skip)]
    secret: TokenSecret,
}

/// Runs the scan; every error exits 2, so that 1 always means "found something".
pub(crate) async fn run(global: &GlobalArgs, args: ScanArgs) -> CliResult {
    scan(global, args).await.map_err(|error| match error {
        CliError::Failed(error) => CliError::Invalid(format!("{error:#}")),
        invalid => invalid,
    })
}

async fn scan(global: &GlobalArgs, args: ScanArgs) -> CliResult {
    let with_database = !global.db_is_default || global.database_url.is_some();
    if args.revoke && !with_database {
        return Err(CliError::Invalid("revoke: needs the database (--db or --database-url)".to_owned()));
    }
    let users = if with_database { Some(super::identity::open(global).await?.1) } else { None };
    let scanner = match &users {
        Some(users) if args.prefixes.is_empty() => users.secret_scanner(),
        _ => scanner(&args.prefixes)?,
    };
    let mut findings = collect(&scanner, &args)?;
    if let Some(users) = &users {
        classify(users, &mut findings, args.revoke).await?;
    }
    report(global.json, &findings);
    Ok(if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn scanner(prefixes: &[String]) -> CliResult<SecretScanner> {
    let texts: Vec<&str> =
        if prefixes.is_empty() { vec!["tg", "tgr", "tga"] } else { prefixes.iter().map(String::as_str).collect() };
    let prefixes = texts.into_iter().map(TokenPrefix::parse).collect::<Result<Vec<_>, _>>()?;
    Ok(SecretScanner::new(prefixes))
}

fn collect(scanner: &SecretScanner, args: &ScanArgs) -> CliResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut add = |location: &str, bytes: &[u8]| {
        for found in scanner.scan(bytes) {
            findings.push(Finding {
                location: location.to_owned(),
                line: found.line,
                column: found.column,
                hint: found.secret.display_hint(),
                classified: None,
                secret: found.secret,
            });
        }
    };
    for path in &args.paths {
        if path.as_os_str() == "-" {
            add("-", &scan_sources::stdin()?);
        } else if args.git {
            let mut blobs = Vec::new();
            scan_sources::git_blobs(path, args.max_file_size, &mut |id, blob_path, bytes| {
                if !scanner.scan(bytes).is_empty() {
                    blobs.push((id.to_owned(), blob_path.to_owned(), bytes.to_vec()));
                }
            })?;
            for (id, blob_path, bytes) in blobs {
                let commit = scan_sources::commit_of_blob(path, &id)?.unwrap_or(id);
                add(&format!("{commit}:{blob_path}"), &bytes);
            }
        } else {
            scan_sources::walk(path, args.max_file_size, &mut add)?;
        }
    }
    Ok(findings)
}

async fn classify(users: &UserService, findings: &mut [Finding], revoke: bool) -> CliResult<()> {
    let caller = Caller::operator();
    for finding in findings {
        let classified = users.classify_leaks(&caller, std::slice::from_ref(&finding.secret), revoke).await?;
        finding.classified = classified.into_iter().next();
    }
    Ok(())
}

fn report(json: bool, findings: &[Finding]) {
    if json {
        crate::output::print_json(findings);
        return;
    }
    for finding in findings {
        let Finding { location, line, column, hint, .. } = finding;
        match &finding.classified {
            Some(leaked) => {
                let id = leaked.id.as_deref().unwrap_or("-");
                let state = serde_json::to_value(leaked.state).ok();
                let state = state.as_ref().and_then(|state| state.as_str()).unwrap_or("-");
                let kind = serde_json::to_value(leaked.kind).ok();
                let kind = kind.as_ref().and_then(|kind| kind.as_str()).unwrap_or("-");
                let revoked = if leaked.revoked_now { " (revoked now)" } else { "" };
                say!("{location}:{line}:{column}: {kind} {hint} {id} {state}{revoked}");
            }
            None => say!("{location}:{line}:{column}: {hint}"),
        }
    }
    if !findings.is_empty() {
        eprintln!("found {} tollgate secret(s)", findings.len());
    }
}

//! Seeding limits and usage through `tollgate limit set` and `tollgate usage record`: only what is
//! missing is written (a limit by subject, metric and window; an event by token, time, provider and
//! model), so a second seed writes nothing and an interrupted one is finished.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;

use super::SeedOutcome;
use crate::db::with_connection;
use crate::directory::Directory;
use crate::fixture::{Fixture, FixtureLimit, FixtureUsage, LimitSubject, dollars};
use crate::tollgate::Tollgate;

/// How a limit's subject is stored (`quota_limits.subject_kind`, `subject`) and named on the command line.
pub(crate) struct StoredSubject {
    /// `token`, `user`, `service_account` or `project`.
    pub(crate) kind: &'static str,
    /// The id of the token, user, service account or project.
    pub(crate) id: String,
    /// The `tollgate limit set` flag that names it.
    flag: &'static str,
}

/// The stored form of a fixture limit's subject: every subject is stored by id, so a named one must
/// exist in `directory`.
pub(crate) fn stored_subject(limit: &FixtureLimit, directory: &Directory) -> anyhow::Result<StoredSubject> {
    let (kind, flag, found, what, name) = match &limit.subject {
        LimitSubject::Token(id) => {
            return Ok(StoredSubject { kind: "token", id: id.clone(), flag: "--token-id" });
        }
        LimitSubject::User(name) => ("user", "--user", directory.user_id(name), "user", name),
        LimitSubject::ServiceAccount(name) => {
            ("service_account", "--service-account", directory.service_account_id(name), "service account", name)
        }
        LimitSubject::Project(name) => ("project", "--project", directory.project_id(name), "project", name),
    };
    let id =
        found.with_context(|| format!("limit {} names {what} {name}, which is not in the database", limit.tier))?;
    Ok(StoredSubject { kind, id: id.to_owned(), flag })
}

/// Sets the fixture's limits that are missing; a limit whose maxima are all there is left alone.
pub(super) fn seed_limits(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    directory: &Directory,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let present: BTreeSet<(String, String, String, String)> = with_connection(db, async |connection| {
        sqlx::query_as("SELECT subject_kind, subject, metric, period FROM quota_limits")
            .fetch_all(connection)
            .await
            .context("while reading quota_limits")
    })?
    .into_iter()
    .collect();
    for limit in &fixture.limits {
        let subject = stored_subject(limit, directory)?;
        let mut arguments: Vec<String> = vec!["limit".into(), "set".into(), subject.flag.into(), subject.id.clone()];
        for (metric, maximum) in limit.maxima() {
            let key = (subject.kind.to_owned(), subject.id.clone(), metric.to_owned(), limit.window.clone());
            if present.contains(&key) {
                continue;
            }
            arguments.push(format!("--{metric}-per-{}", limit.window));
            arguments.push(if metric == "cost" { dollars(maximum) } else { maximum.to_string() });
        }
        if arguments.len() == 4 {
            outcome.limits_present += 1;
            continue;
        }
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        tollgate.run(db, &arguments, None).with_context(|| format!("while setting limit {}", limit.tier))?;
        outcome.limits_added += 1;
    }
    Ok(())
}

/// Records the fixture's usage events that are missing, at their times.
pub(super) fn seed_usage(
    tollgate: &Tollgate,
    db: &Path,
    fixture: &Fixture,
    anchor: i64,
    outcome: &mut SeedOutcome,
) -> anyhow::Result<()> {
    let present: BTreeSet<(String, i64, String, String)> = with_connection(db, async |connection| {
        sqlx::query_as("SELECT token_id, CAST(at AS INTEGER), provider, model FROM usage_events")
            .fetch_all(connection)
            .await
            .context("while reading usage_events")
    })?
    .into_iter()
    .collect();
    for event in &fixture.usage {
        let key = (event.token.clone(), event.at.at(anchor), event.provider.clone(), event.model.clone());
        if present.contains(&key) {
            outcome.usage_present += 1;
            continue;
        }
        record(tollgate, db, event, anchor)?;
        outcome.usage_added += 1;
    }
    Ok(())
}

fn record(tollgate: &Tollgate, db: &Path, event: &FixtureUsage, anchor: i64) -> anyhow::Result<()> {
    let arguments = [
        "usage".to_owned(),
        "record".into(),
        "--token-id".into(),
        event.token.clone(),
        "--at".into(),
        event.at.rfc3339(anchor),
        "--provider".into(),
        event.provider.clone(),
        "--model".into(),
        event.model.clone(),
        "--input-tokens".into(),
        event.input_tokens.to_string(),
        "--output-tokens".into(),
        event.output_tokens.to_string(),
        "--requests".into(),
        event.requests.to_string(),
        "--cost".into(),
        dollars(event.cost_microdollars),
        "--endpoint".into(),
        event.endpoint.clone(),
        "--outcome".into(),
        event.outcome().to_owned(),
        "--latency-ms".into(),
        event.latency_ms.to_string(),
    ];
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    tollgate
        .run(db, &arguments, None)
        .with_context(|| format!("while recording usage of {} at {}", event.token, event.at))?;
    Ok(())
}

//! `validate seed`, limits and usage: every fixture limit is set on its subject's id with its maxima (and
//! nothing else is), every usage event is stored as the fixture has it (and no other), and the hourly
//! rollups add up to the fixture's totals per token and are attributed to the token's owner and project
//! by id (what reports by user, service account and project read).

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::SqliteConnection;

use crate::db::has_table;
use crate::directory::Directory;
use crate::fixture::{FIXTURE_PATH, Fixture};
use crate::seed::stored_subject;
use crate::validate::Violation;

/// A stored limit: `(kind, subject, metric, period)` → `(maximum, shadow)`.
type Limits = BTreeMap<(String, String, String, String), (i64, i64)>;

/// A stored event's fields after its key, as the `usage_events` view gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventFields {
    endpoint: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    requests: i64,
    cost_micros: Option<i64>,
    outcome: String,
    latency_ms: Option<i64>,
}

/// Stored events: `(token, at, provider, model)` → fields.
type Events = BTreeMap<(String, i64, String, String), EventFields>;

/// Sums per token: events, requests, input tokens, output tokens, cost, errors.
type Totals = BTreeMap<String, [i64; 6]>;

/// Hourly rollup rows per `(token, owner id, project id)`.
type Attributions = BTreeMap<(String, Option<String>, Option<String>), i64>;

/// What the metering tables hold; `None` when the schema has no metering yet.
#[derive(Debug)]
pub(super) struct Metering {
    limits: Limits,
    events: Events,
    totals: Totals,
    attributions: Attributions,
}

pub(super) async fn read_metering(connection: &mut SqliteConnection) -> anyhow::Result<Option<Metering>> {
    if !has_table(connection, "quota_limits").await? {
        return Ok(None);
    }
    let limits: Vec<(String, String, String, String, i64, i64)> =
        sqlx::query_as("SELECT subject_kind, subject, metric, period, maximum, shadow FROM quota_limits")
            .fetch_all(&mut *connection)
            .await
            .context("while reading quota_limits")?;
    type EventRow = (String, i64, String, String, Option<String>, i64, i64, i64, Option<i64>, String, Option<i64>);
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT token_id, CAST(at AS INTEGER), provider, model, endpoint, CAST(input_tokens AS INTEGER),
                CAST(output_tokens AS INTEGER), CAST(requests AS INTEGER), CAST(cost_micros AS INTEGER), outcome,
                CAST(latency_ms AS INTEGER)
         FROM usage_events",
    )
    .fetch_all(&mut *connection)
    .await
    .context("while reading usage_events")?;
    let totals: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT token_id, sum(events), sum(requests), sum(input_tokens), sum(output_tokens), sum(cost_micros),
                sum(errors)
         FROM usage_rollups GROUP BY token_id",
    )
    .fetch_all(&mut *connection)
    .await
    .context("while reading usage_rollups")?;
    let attributions: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT token_id, owner_id, project_id, count(*) FROM usage_rollups GROUP BY token_id, owner_id, project_id",
    )
    .fetch_all(&mut *connection)
    .await
    .context("while reading usage_rollups")?;
    Ok(Some(Metering {
        limits: limits
            .into_iter()
            .map(|(kind, subject, metric, period, maximum, shadow)| {
                ((kind, subject, metric, period), (maximum, shadow))
            })
            .collect(),
        events: events
            .into_iter()
            .map(|(token, at, provider, model, endpoint, input, output, requests, cost, outcome, latency)| {
                let fields = EventFields {
                    endpoint,
                    input_tokens: input,
                    output_tokens: output,
                    requests,
                    cost_micros: cost,
                    outcome,
                    latency_ms: latency,
                };
                ((token, at, provider, model), fields)
            })
            .collect(),
        totals: totals
            .into_iter()
            .map(|(token, events, requests, input, output, cost, errors)| {
                (token, [events, requests, input, output, cost, errors])
            })
            .collect(),
        attributions: attributions
            .into_iter()
            .map(|(token, owner, project, rows)| ((token, owner, project), rows))
            .collect(),
    }))
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Every difference between the fixture's limits and the stored ones.
pub(super) fn check_limits(
    fixture: &Fixture,
    stored: &Limits,
    directory: &Directory,
    shown_db: &str,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut expected = BTreeMap::new();
    for (index, limit) in fixture.limits.iter().enumerate() {
        let line = fixture.line_of("limits", index);
        let subject = match stored_subject(limit, directory) {
            Ok(subject) => subject,
            Err(error) => {
                violations.push(Violation::at(FIXTURE_PATH, line, format!("{error:#}")));
                continue;
            }
        };
        for (metric, maximum) in limit.maxima() {
            let key = (subject.kind.to_owned(), subject.id.clone(), metric.to_owned(), limit.window.clone());
            let name = format!("limit {} ({metric} per {})", limit.tier, limit.window);
            match stored.get(&key) {
                None => {
                    violations.push(Violation::at(FIXTURE_PATH, line, format!("{name} is missing from {shown_db}")))
                }
                Some(&(stored_maximum, shadow)) => {
                    if stored_maximum != signed(maximum) {
                        let message =
                            format!("{name}: maximum is {stored_maximum} in the database, {maximum} in the fixture");
                        violations.push(Violation::at(FIXTURE_PATH, line, message));
                    }
                    if shadow != 0 {
                        let message = format!("{name}: is in shadow mode in the database, enforced in the fixture");
                        violations.push(Violation::at(FIXTURE_PATH, line, message));
                    }
                }
            }
            expected.insert(key, ());
        }
    }
    for (kind, subject, metric, period) in stored.keys().filter(|key| !expected.contains_key(*key)) {
        let subject = match kind.as_str() {
            "token" => format!("token {subject}"),
            _ => format!("{} ({subject})", directory.describe(subject)),
        };
        let message = format!("limit {metric} per {period} of {subject} is not in {FIXTURE_PATH}");
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

/// Every difference between the fixture's usage and the stored events and rollups.
pub(super) fn check_usage(fixture: &Fixture, metering: &Metering, anchor: i64, shown_db: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut expected_keys = BTreeMap::new();
    let mut expected_totals: Totals = BTreeMap::new();
    for (index, event) in fixture.usage.iter().enumerate() {
        let line = fixture.line_of("usage", index);
        let key = (event.token.clone(), event.at.at(anchor), event.provider.clone(), event.model.clone());
        let name = format!("usage at {} ({} {}/{})", event.at, event.token, event.provider, event.model);
        let wanted = EventFields {
            endpoint: Some(event.endpoint.clone()).filter(|endpoint| !endpoint.is_empty()),
            input_tokens: signed(event.input_tokens),
            output_tokens: signed(event.output_tokens),
            requests: signed(event.requests),
            cost_micros: Some(signed(event.cost_microdollars)),
            outcome: event.outcome().to_owned(),
            latency_ms: Some(signed(event.latency_ms)),
        };
        match metering.events.get(&key) {
            None => violations.push(Violation::at(FIXTURE_PATH, line, format!("{name} is missing from {shown_db}"))),
            Some(stored) if *stored != wanted => violations.push(Violation::at(
                FIXTURE_PATH,
                line,
                format!("{name} differs: the database has {stored:?}, the fixture {wanted:?}"),
            )),
            Some(_) => {}
        }
        expected_keys.insert(key, ());
        let sums = expected_totals.entry(event.token.clone()).or_default();
        let error = i64::from(event.outcome() == "error");
        for (sum, value) in sums.iter_mut().zip([
            1,
            wanted.requests,
            wanted.input_tokens,
            wanted.output_tokens,
            signed(event.cost_microdollars),
            error,
        ]) {
            *sum += value;
        }
    }
    for (token, at, provider, model) in metering.events.keys().filter(|key| !expected_keys.contains_key(*key)) {
        let at = tollgate_types::Timestamp::from_unix_micros(*at);
        let message = format!("usage event of {token} at {at} ({provider}/{model}) is not in {FIXTURE_PATH}");
        violations.push(Violation::in_file(shown_db, message));
    }
    // The rollups are what reports read: they must add up to the same totals.
    let names = ["events", "requests", "input tokens", "output tokens", "cost (microdollars)", "errors"];
    for token in expected_totals.keys().chain(metering.totals.keys()).collect::<std::collections::BTreeSet<_>>() {
        let wanted = expected_totals.get(token).copied().unwrap_or_default();
        let stored = metering.totals.get(token).copied().unwrap_or_default();
        for ((name, wanted), stored) in names.iter().zip(wanted).zip(stored) {
            if wanted != stored {
                let message =
                    format!("usage totals of {token}: {name} is {stored} in the rollups, {wanted} in the fixture");
                violations.push(Violation::in_file(shown_db, message));
            }
        }
    }
    violations
}

/// Every rollup row of a fixture token that is not attributed to the token's owner and project (by id):
/// reports by user, service account and project would count it for someone else, or for nobody.
fn check_attributions(fixture: &Fixture, metering: &Metering, directory: &Directory, shown_db: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for ((token_id, owner_id, project_id), rows) in &metering.attributions {
        let Some(token) = fixture.token(token_id) else { continue };
        let owner_ok = owner_id.as_deref().is_some_and(|id| directory.owner_id(&token.owner) == Some(id));
        let project_ok = match (project_id.as_deref(), &token.project) {
            (None, None) => true,
            (Some(id), Some(name)) => directory.project_id(name) == Some(id),
            _ => false,
        };
        if owner_ok && project_ok {
            continue;
        }
        let owner = owner_id.as_deref().map_or_else(|| "no owner".to_owned(), |id| directory.describe(id));
        let project = project_id.as_deref().map_or_else(|| "no project".to_owned(), |id| directory.describe(id));
        let wanted_owner = fixture
            .owner_kind(&token.owner)
            .map_or_else(|| token.owner.clone(), |kind| format!("{} {}", kind.as_str(), token.owner));
        let wanted_project =
            token.project.as_ref().map_or_else(|| "no project".to_owned(), |name| format!("project {name}"));
        let message = format!(
            "usage rollups of {token_id}: {rows} hourly row{} attributed to {owner} and {project}, but the token \
             belongs to {wanted_owner} and {wanted_project}",
            if *rows == 1 { " is" } else { "s are" },
        );
        violations.push(Violation::in_file(shown_db, message));
    }
    violations
}

/// The limits, events and rollups checks together.
pub(super) fn check_metering(
    fixture: &Fixture,
    metering: &Metering,
    directory: &Directory,
    anchor: i64,
    shown_db: &str,
) -> Vec<Violation> {
    let mut violations = check_limits(fixture, &metering.limits, directory, shown_db);
    violations.extend(check_usage(fixture, metering, anchor, shown_db));
    violations.extend(check_attributions(fixture, metering, directory, shown_db));
    violations
}

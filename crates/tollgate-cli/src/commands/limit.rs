//! `tollgate limit …`: quotas per token, user, service account or project, and per-token rate limits.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tollgate::{
    LimitKey, LimitSpec, LimitStatus, LimitSubject, Metric, Microdollars, Principal, RateLimitRecord, RateLimitSpec,
    TokenId, TokenManager, ValidationError, Window, parse_count,
};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum LimitCommand {
    /// Set limits (each given flag creates or replaces one limit) and a token's rate limit.
    Set(Box<SetArgs>),
    /// List limits with their use in the current window.
    List {
        #[command(flatten)]
        subject: OptionalSubject,
    },
    /// Remove limits of a subject: the named ones (--limit requests_per_day), or all with --all.
    Remove(RemoveArgs),
}

/// Whom a limit governs: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SubjectArgs {
    /// A token (tok_…).
    #[arg(long)]
    token_id: Option<String>,
    /// Every token of a user, by id (usr_…) or username.
    #[arg(long)]
    user: Option<String>,
    /// Every token of a service account, by id (svc_…) or name.
    #[arg(long)]
    service_account: Option<String>,
    /// Every token of an owner of either kind, by id or name.
    #[arg(long)]
    owner: Option<String>,
    /// Every token bound to a project, by id (prj_…) or name.
    #[arg(long)]
    project: Option<String>,
}

/// Optionally whom: at most one of these.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct OptionalSubject {
    /// A token (tok_…).
    #[arg(long)]
    token_id: Option<String>,
    /// A user, by id (usr_…) or username.
    #[arg(long)]
    user: Option<String>,
    /// A service account, by id (svc_…) or name.
    #[arg(long)]
    service_account: Option<String>,
    /// An owner of either kind, by id or name.
    #[arg(long)]
    owner: Option<String>,
    /// A project, by id (prj_…) or name.
    #[arg(long)]
    project: Option<String>,
}

/// The subject flags as given (at most one is set; clap's group checks that).
struct Named<'a> {
    token_id: Option<&'a str>,
    user: Option<&'a str>,
    service_account: Option<&'a str>,
    owner: Option<&'a str>,
    project: Option<&'a str>,
}

/// Resolves names to ids: a limit always names its subject by id.
async fn subject(tokens: &TokenManager, named: Named<'_>) -> CliResult<Option<LimitSubject>> {
    let operator = Principal::Operator;
    if let Some(id) = named.token_id {
        return Ok(Some(LimitSubject::Token(TokenId::parse(id)?)));
    }
    let owner = |field: &'static str, text: &str| OwnerOf { field, text: text.to_owned() };
    let wanted = match (named.user, named.service_account, named.owner) {
        (Some(text), ..) => Some((owner("user", text), Some("user"))),
        (_, Some(text), _) => Some((owner("service_account", text), Some("service_account"))),
        (_, _, Some(text)) => Some((owner("owner", text), None)),
        _ => None,
    };
    if let Some((named_owner, kind)) = wanted {
        let id = tokens.resolve_owner(&operator, &named_owner.text).await?;
        if kind.is_some_and(|kind| kind != id.kind()) {
            return Err(ValidationError::new(named_owner.field, "names an owner of the other kind").into());
        }
        return Ok(Some(LimitSubject::Owner(id)));
    }
    match named.project {
        Some(project) => Ok(Some(LimitSubject::Project(tokens.resolve_project(&operator, project).await?))),
        None => Ok(None),
    }
}

struct OwnerOf {
    field: &'static str,
    text: String,
}

impl SubjectArgs {
    async fn resolve(&self, tokens: &TokenManager) -> CliResult<LimitSubject> {
        let named = Named {
            token_id: self.token_id.as_deref(),
            user: self.user.as_deref(),
            service_account: self.service_account.as_deref(),
            owner: self.owner.as_deref(),
            project: self.project.as_deref(),
        };
        subject(tokens, named).await?.ok_or_else(|| {
            ValidationError::new("subject", "give one of --token-id, --user, --service-account, --owner, --project")
                .into()
        })
    }
}

impl OptionalSubject {
    async fn resolve(&self, tokens: &TokenManager) -> CliResult<Option<LimitSubject>> {
        let named = Named {
            token_id: self.token_id.as_deref(),
            user: self.user.as_deref(),
            service_account: self.service_account.as_deref(),
            owner: self.owner.as_deref(),
            project: self.project.as_deref(),
        };
        subject(tokens, named).await
    }
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Requests per minute (UTC calendar minute).
    #[arg(long, allow_hyphen_values = true)]
    requests_per_minute: Option<String>,
    /// Requests per hour.
    #[arg(long, allow_hyphen_values = true)]
    requests_per_hour: Option<String>,
    /// Requests per day (UTC).
    #[arg(long, allow_hyphen_values = true)]
    requests_per_day: Option<String>,
    /// Requests per month (UTC calendar month).
    #[arg(long, allow_hyphen_values = true)]
    requests_per_month: Option<String>,
    /// LLM tokens (input + output) per minute.
    #[arg(long, allow_hyphen_values = true)]
    tokens_per_minute: Option<String>,
    /// LLM tokens per hour.
    #[arg(long, allow_hyphen_values = true)]
    tokens_per_hour: Option<String>,
    /// LLM tokens per day.
    #[arg(long, allow_hyphen_values = true)]
    tokens_per_day: Option<String>,
    /// LLM tokens per month.
    #[arg(long, allow_hyphen_values = true)]
    tokens_per_month: Option<String>,
    /// Dollars per minute, e.g. 0.50.
    #[arg(long, allow_hyphen_values = true)]
    cost_per_minute: Option<String>,
    /// Dollars per hour.
    #[arg(long, allow_hyphen_values = true)]
    cost_per_hour: Option<String>,
    /// Dollars per day.
    #[arg(long, allow_hyphen_values = true)]
    cost_per_day: Option<String>,
    /// Dollars per month, e.g. 50.00.
    #[arg(long, allow_hyphen_values = true)]
    cost_per_month: Option<String>,
    /// A token's rate limit: sustained requests per minute (GCRA); needs --token-id.
    #[arg(long)]
    rate_per_minute: Option<String>,
    /// Requests allowed at once for --rate-per-minute (default: the rate).
    #[arg(long, requires = "rate_per_minute")]
    burst: Option<String>,
    /// Report who would be refused, refuse nobody.
    #[arg(long)]
    shadow: bool,
}

impl SetArgs {
    /// Every (metric, window, flag name, text) the user gave.
    fn given(&self) -> Vec<(Metric, Window, &'static str, &str)> {
        let flags = [
            (Metric::Requests, Window::Minute, "requests_per_minute", &self.requests_per_minute),
            (Metric::Requests, Window::Hour, "requests_per_hour", &self.requests_per_hour),
            (Metric::Requests, Window::Day, "requests_per_day", &self.requests_per_day),
            (Metric::Requests, Window::Month, "requests_per_month", &self.requests_per_month),
            (Metric::Tokens, Window::Minute, "tokens_per_minute", &self.tokens_per_minute),
            (Metric::Tokens, Window::Hour, "tokens_per_hour", &self.tokens_per_hour),
            (Metric::Tokens, Window::Day, "tokens_per_day", &self.tokens_per_day),
            (Metric::Tokens, Window::Month, "tokens_per_month", &self.tokens_per_month),
            (Metric::Cost, Window::Minute, "cost_per_minute", &self.cost_per_minute),
            (Metric::Cost, Window::Hour, "cost_per_hour", &self.cost_per_hour),
            (Metric::Cost, Window::Day, "cost_per_day", &self.cost_per_day),
            (Metric::Cost, Window::Month, "cost_per_month", &self.cost_per_month),
        ];
        flags
            .into_iter()
            .filter_map(|(metric, window, field, text)| text.as_deref().map(|text| (metric, window, field, text)))
            .collect()
    }
}

/// Parses a limit's maximum: a whole count, or exact dollars for cost.
fn maximum(metric: Metric, field: &'static str, text: &str) -> Result<u64, ValidationError> {
    match metric {
        Metric::Cost => {
            let amount = Microdollars::parse_dollars(field, text)?;
            Ok(u64::try_from(amount.micros()).unwrap_or(0))
        }
        _ => parse_count(field, text, LimitSpec::MAX_VALUE),
    }
}

/// Parses a limit name as shown by `limit list` and refusals: `<metric>_per_<window>`.
fn limit_name(text: &str) -> Result<(Metric, Window), ValidationError> {
    let (metric, window) = text
        .split_once("_per_")
        .ok_or_else(|| ValidationError::new("limit", "must be <metric>_per_<window>, e.g. requests_per_day"))?;
    Ok((metric.parse()?, window.parse()?))
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// A limit to remove, e.g. requests_per_day (repeatable).
    #[arg(long = "limit")]
    limits: Vec<String>,
    /// Remove every limit of the subject.
    #[arg(long, conflicts_with = "limits")]
    all: bool,
    /// Remove the token's rate limit.
    #[arg(long)]
    rate: bool,
}

fn shown_max(status: &LimitStatus) -> (String, String) {
    let spec = &status.limit.spec;
    match spec.key().metric {
        Metric::Cost => (
            Microdollars::from_micros(i64::try_from(spec.max()).unwrap_or(i64::MAX)).to_string(),
            Microdollars::from_micros(status.used).to_string(),
        ),
        _ => (spec.max().to_string(), status.used.to_string()),
    }
}

fn print_limits(global: &GlobalArgs, statuses: &[LimitStatus], rates: &[RateLimitRecord]) {
    if global.json {
        print_json(&serde_json::json!({ "limits": statuses, "rate_limits": rates }));
        return;
    }
    let mut rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            let (max, used) = shown_max(status);
            let key = status.limit.spec.key();
            vec![
                key.subject.to_string(),
                key.name(),
                max,
                used,
                held(key.metric, status.leased),
                held(key.metric, status.stranded),
                status.resets_at.to_string(),
                if status.limit.spec.shadow() { "shadow".to_owned() } else { "enforced".to_owned() },
                status.limit.shadow_hits.to_string(),
            ]
        })
        .collect();
    rows.extend(rates.iter().map(|rate| {
        vec![
            format!("token:{}", rate.token_id),
            "rate_per_minute".to_owned(),
            format!("{} (burst {})", rate.spec.requests_per_minute(), rate.spec.burst()),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "enforced".to_owned(),
            "-".to_owned(),
        ]
    }));
    print_table(&["SUBJECT", "LIMIT", "MAX", "USED", "LEASED", "STRANDED", "RESETS", "MODE", "SHADOW HITS"], &rows);
}

/// Leased or stranded units: request limits only (a process's unused blocks, or a crashed one's).
fn held(metric: tollgate::Metric, units: u64) -> String {
    if metric == tollgate::Metric::Requests { units.to_string() } else { "-".to_owned() }
}

/// Runs one limit command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: LimitCommand) -> CliResult {
    let context = context::open(global).await?;
    let metering = &context.metering;
    let operator = Principal::Operator;
    match command {
        LimitCommand::Set(args) => {
            let subject = args.subject.resolve(&context.tokens).await?;
            let given = args.given();
            if given.is_empty() && args.rate_per_minute.is_none() {
                return Err(
                    ValidationError::new("limit", "give at least one limit, e.g. --requests-per-day 1000").into()
                );
            }
            let mut specs = Vec::new();
            for (metric, window, field, text) in given {
                let key = LimitKey { subject: subject.clone(), metric, window };
                specs.push(LimitSpec::new(key, maximum(metric, field, text)?, args.shadow)?);
            }
            let rate = match &args.rate_per_minute {
                Some(rate) => {
                    let LimitSubject::Token(token_id) = &subject else {
                        return Err(
                            ValidationError::new("rate_per_minute", "applies to a token: use --token-id").into()
                        );
                    };
                    let per_minute = parse_count("rate_per_minute", rate, u64::from(RateLimitSpec::MAX))?;
                    let burst = args
                        .burst
                        .as_deref()
                        .map_or(Ok(per_minute), |burst| parse_count("burst", burst, u64::from(RateLimitSpec::MAX)))?;
                    let spec = RateLimitSpec::new(
                        u32::try_from(per_minute).unwrap_or(u32::MAX),
                        u32::try_from(burst).unwrap_or(u32::MAX),
                    )?;
                    Some((*token_id, spec))
                }
                None => None,
            };
            for spec in specs {
                metering.set_limit(&operator, spec).await?;
            }
            let mut rates = Vec::new();
            if let Some((token_id, spec)) = rate {
                rates.push(metering.set_rate_limit(&operator, &token_id, spec).await?);
            }
            let statuses = metering.limit_status(&operator, Some(&subject)).await?;
            metering.shutdown().await?;
            print_limits(global, &statuses, &rates);
        }
        LimitCommand::List { subject } => {
            let subject = subject.resolve(&context.tokens).await?;
            let statuses = metering.limit_status(&operator, subject.as_ref()).await?;
            let rates: Vec<RateLimitRecord> = metering
                .rate_limits(&operator)
                .await?
                .into_iter()
                .filter(|rate| subject.as_ref().is_none_or(|subject| *subject == LimitSubject::Token(rate.token_id)))
                .collect();
            metering.shutdown().await?;
            print_limits(global, &statuses, &rates);
        }
        LimitCommand::Remove(args) => {
            let subject = args.subject.resolve(&context.tokens).await?;
            if args.limits.is_empty() && !args.all && !args.rate {
                return Err(
                    ValidationError::new("limit", "name the limits (--limit requests_per_day), or --all").into()
                );
            }
            let mut keys = Vec::new();
            for name in &args.limits {
                let (metric, window) = limit_name(name)?;
                keys.push(LimitKey { subject: subject.clone(), metric, window });
            }
            if args.all {
                let existing = metering.limits(&operator, Some(&subject)).await?;
                keys.extend(existing.into_iter().map(|record| record.spec.key().clone()));
            }
            let mut removed = Vec::new();
            for key in &keys {
                removed.push(metering.remove_limit(&operator, key).await?);
            }
            let mut removed_rates = Vec::new();
            if args.rate {
                let LimitSubject::Token(token_id) = &subject else {
                    return Err(ValidationError::new("rate", "applies to a token: use --token-id").into());
                };
                removed_rates.push(metering.remove_rate_limit(&operator, token_id).await?);
            }
            metering.shutdown().await?;
            if global.json {
                print_json(&serde_json::json!({ "removed": removed, "removed_rate_limits": removed_rates }));
            } else {
                for record in &removed {
                    say!("removed {}", record.spec.key());
                }
                for rate in &removed_rates {
                    say!("removed the rate limit of {}", rate.token_id);
                }
                if removed.is_empty() && removed_rates.is_empty() {
                    say!("{subject} has no limits to remove");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_names_parse_and_unknown_windows_name_the_field() {
        assert_eq!(limit_name("cost_per_month").unwrap(), (Metric::Cost, Window::Month));
        assert_eq!(limit_name("requests_per_fortnight").unwrap_err().field, "window");
        assert_eq!(limit_name("dollars_per_day").unwrap_err().field, "metric");
        assert_eq!(limit_name("daily").unwrap_err().field, "limit");
    }

    #[test]
    fn maxima_are_counts_or_exact_dollars() {
        assert_eq!(maximum(Metric::Cost, "cost_per_month", "50.00").unwrap(), 50_000_000);
        assert_eq!(maximum(Metric::Requests, "requests_per_day", "1000").unwrap(), 1_000);
        assert_eq!(maximum(Metric::Requests, "requests_per_day", "-1").unwrap_err().field, "requests_per_day");
        assert_eq!(maximum(Metric::Cost, "cost_per_month", "1e3").unwrap_err().field, "cost_per_month");
    }
}

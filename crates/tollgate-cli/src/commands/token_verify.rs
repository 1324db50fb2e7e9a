//! `tollgate token verify`: what a gateway asks on every request, from the shell; with an estimate
//! it also holds it against the token's tokens and cost limits (a reservation).

use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;
use tollgate::{Error, EstimateInput, Metric, Microdollars, ValidationError, VerifyRequest};

use crate::cli::GlobalArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use crate::output::print_json;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The client IP to check against the token's allow-list.
    #[arg(long)]
    ip: Option<String>,
    /// The tool being called, checked against the token's allowed tools.
    #[arg(long)]
    tool: Option<String>,
    /// Estimate: the provider, to price it (with --model).
    #[arg(long)]
    provider: Option<String>,
    /// Estimate: the model, to price it (with --provider).
    #[arg(long)]
    model: Option<String>,
    /// Estimate: the prompt's tokens.
    #[arg(long, allow_hyphen_values = true)]
    max_input_tokens: Option<i64>,
    /// Estimate: the most tokens the call may produce.
    #[arg(long, allow_hyphen_values = true)]
    max_output_tokens: Option<i64>,
    /// Estimate: the most the call may cost, in dollars (instead of pricing it).
    #[arg(long, allow_hyphen_values = true)]
    reserve_cost: Option<String>,
}

impl VerifyArgs {
    fn estimate(&self) -> Result<Option<tollgate::Estimate>, ValidationError> {
        let given = self.provider.is_some()
            || self.model.is_some()
            || self.max_input_tokens.is_some()
            || self.max_output_tokens.is_some()
            || self.reserve_cost.is_some();
        if !given {
            return Ok(None);
        }
        let cost_micros = self
            .reserve_cost
            .as_deref()
            .map(|cost| Microdollars::parse_dollars("reserve_cost", cost).map(Microdollars::micros))
            .transpose()?;
        let input = EstimateInput {
            provider: self.provider.clone(),
            model: self.model.clone(),
            max_input_tokens: self.max_input_tokens.unwrap_or(0),
            max_output_tokens: self.max_output_tokens.unwrap_or(0),
            cost_micros,
        };
        input.parse().map(Some)
    }
}

pub(crate) async fn run(global: &GlobalArgs, context: &Context, args: VerifyArgs) -> CliResult {
    let ip = args
        .ip
        .as_deref()
        .map(|ip| ip.trim().parse::<IpAddr>().map_err(|_| ValidationError::new("ip", "is not an IP address")))
        .transpose()?;
    let estimate = args.estimate()?;
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|error| CliError::Failed(anyhow::anyhow!("cannot read the token from standard input: {error}")))?;
    let presented = zeroize::Zeroizing::new(input);
    let request = VerifyRequest { ip, tool: args.tool };
    let (tokens, metering) = (&context.tokens, &context.metering);
    let outcome = match &estimate {
        None => tokens.verify(presented.trim(), &request).await.map(|context| (context, None)),
        Some(estimate) => {
            let reservation = metering.reservation_for(estimate);
            tokens.verify_and_reserve(presented.trim(), &request, &reservation).await.map(|(c, r)| (c, Some(r)))
        }
    };
    // Writes the last-used time and gives back the request quota this process leased.
    tokens.flush().await?;
    metering.shutdown().await?;
    match outcome {
        Ok((context, reservation)) => {
            let held = reservation.as_ref().map(|reservation| {
                serde_json::json!({
                    "id": reservation.id(),
                    "expires_at": reservation.expires_at(),
                    "held_tokens": reservation.held(Metric::Tokens),
                    "held_cost_micros": reservation.held(Metric::Cost),
                })
            });
            if global.json {
                print_json(
                    &serde_json::json!({ "valid": true, "code": "valid", "context": context, "reservation": held }),
                );
            } else {
                say!(
                    "valid: {} ({}, owner {}, permission {})",
                    context.token_id,
                    context.record.name,
                    context.record.owner_name,
                    context.effective_permission
                );
                if let Some(reservation) = &reservation {
                    match reservation.id() {
                        Some(id) => say!(
                            "reserved {id} until {}: settle with `tollgate usage settle {id} …` or release it",
                            reservation.expires_at().map_or_else(String::new, |at| at.to_string())
                        ),
                        None => say!("nothing needed holding: record the usage with `tollgate usage record`"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Refused(refusal)) => {
            // For rate_limited: when to retry; for quota_exceeded: which limit and when it resets.
            let retry_after_seconds = refusal.retry_after.map(|wait| wait.as_micros().div_ceil(1_000_000));
            if global.json {
                print_json(&serde_json::json!({
                    "valid": false,
                    "code": refusal.code,
                    "limit": refusal.limit,
                    "resets_at": refusal.resets_at,
                    "retry_after_seconds": retry_after_seconds,
                }));
            } else {
                let mut line = format!("refused: {}", refusal.code);
                if let Some(limit) = &refusal.limit {
                    line.push_str(&format!(" ({limit})"));
                }
                if let Some(resets_at) = refusal.resets_at {
                    line.push_str(&format!(", resets at {resets_at}"));
                }
                if let Some(seconds) = retry_after_seconds {
                    line.push_str(&format!(", retry after {seconds}s"));
                }
                say!("{line}");
            }
            Ok(ExitCode::from(1))
        }
        Err(other) => Err(other.into()),
    }
}

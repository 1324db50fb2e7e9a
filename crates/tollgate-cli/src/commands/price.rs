//! `tollgate price …`: the model price table (shipped list prices and stored overrides).

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{Microdollars, ModelName, ModelPrice, PriceEntry, Principal, ProviderName};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{or_dash, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum PriceCommand {
    /// List the prices in effect (dollars per million tokens).
    List {
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Store a price for a model, replacing the shipped list price.
    Set {
        /// Provider, e.g. openai.
        #[arg(long)]
        provider: String,
        /// Model, e.g. gpt-4o.
        #[arg(long)]
        model: String,
        /// Dollars per million input tokens, e.g. 2.50.
        #[arg(long, allow_hyphen_values = true)]
        input: String,
        /// Dollars per million output tokens, e.g. 10.00.
        #[arg(long, allow_hyphen_values = true)]
        output: String,
    },
    /// Remove a stored price (the shipped list price, if any, applies again).
    Remove {
        /// Provider.
        #[arg(long)]
        provider: String,
        /// Model.
        #[arg(long)]
        model: String,
    },
}

fn print_prices(global: &GlobalArgs, entries: &[PriceEntry]) {
    if global.json {
        print_json(entries);
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                entry.price.provider().to_string(),
                entry.price.model().to_string(),
                entry.price.input_per_million().to_string(),
                entry.price.output_per_million().to_string(),
                entry.source.as_str().to_owned(),
                or_dash(entry.updated_at),
            ]
        })
        .collect();
    print_table(&["PROVIDER", "MODEL", "INPUT/1M", "OUTPUT/1M", "SOURCE", "UPDATED"], &rows);
}

/// Runs one price command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: PriceCommand) -> CliResult {
    let context = context::open(global).await?;
    let metering = &context.metering;
    let operator = Principal::Operator;
    match command {
        PriceCommand::List { provider } => {
            let provider = provider.as_deref().map(ProviderName::parse).transpose()?;
            let entries: Vec<PriceEntry> = metering
                .prices()
                .into_iter()
                .filter(|entry| provider.as_ref().is_none_or(|provider| entry.price.provider() == provider))
                .collect();
            print_prices(global, &entries);
        }
        PriceCommand::Set { provider, model, input, output } => {
            let price = ModelPrice::new(
                ProviderName::parse(&provider)?,
                ModelName::parse(&model)?,
                Microdollars::parse_dollars("input", &input)?,
                Microdollars::parse_dollars("output", &output)?,
            )?;
            let entry = metering.set_price(&operator, price).await?;
            print_prices(global, &[entry]);
        }
        PriceCommand::Remove { provider, model } => {
            let (provider, model) = (ProviderName::parse(&provider)?, ModelName::parse(&model)?);
            let now_in_effect = metering.remove_price(&operator, &provider, &model).await?;
            if global.json {
                print_json(
                    &serde_json::json!({ "removed": format!("{provider}/{model}"), "in_effect": now_in_effect }),
                );
            } else {
                match now_in_effect {
                    Some(entry) => println!(
                        "removed the stored price of {provider}/{model}; the {} price applies",
                        entry.source.as_str()
                    ),
                    None => println!("removed the stored price of {provider}/{model}; it has no price now"),
                }
            }
        }
    }
    metering.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

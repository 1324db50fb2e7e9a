//! `tollgate vault …`: the provider-key vault's master keys. Rotation adds a key to the key file and
//! re-wraps every data key under it in one transaction; the old key stays until it is retired.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::Principal;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Show the master keys in the key file and how many provider keys each wraps.
    Status,
    /// Add a new master key and re-wrap every provider key under it (old keys stay until retired).
    RotateMasterKey,
    /// Re-wrap every provider key not under the current master key (idempotent): run it after
    /// servers that were running during a rotation have restarted.
    Rewrap,
    /// Remove an old master key from the key file; refused while any provider key still uses it.
    RetireMasterKey {
        /// The master key id.
        key_id: u32,
    },
}

/// Runs one vault command as the operator (who holds the key file).
pub(crate) async fn run(global: &GlobalArgs, command: VaultCommand) -> CliResult {
    let (_context, agents) = context::open_agents(global).await?;
    let operator = Principal::Operator;
    match command {
        VaultCommand::Status => {
            let status = agents.vault_status(&operator).await?;
            if global.json {
                print_json(&status);
            } else {
                say!("key file: {}", status.key_file);
                let rows: Vec<Vec<String>> = status
                    .master_keys
                    .iter()
                    .map(|(id, rows)| {
                        let current = if *id == status.current { "current" } else { "" };
                        vec![id.to_string(), rows.to_string(), current.to_owned()]
                    })
                    .collect();
                print_table(&["MASTER KEY", "PROVIDER KEYS", ""], &rows);
                for missing in &status.missing {
                    eprintln!("warning: provider keys name master key {missing}, which the key file does not hold");
                }
            }
        }
        VaultCommand::RotateMasterKey | VaultCommand::Rewrap => {
            let rotation = if matches!(command, VaultCommand::RotateMasterKey) {
                agents.rotate_master_key(&operator).await?
            } else {
                agents.rewrap_provider_keys(&operator).await?
            };
            if global.json {
                print_json(&rotation);
            } else {
                if let Some(added) = rotation.added {
                    say!("added master key {added}");
                }
                say!(
                    "re-wrapped {} provider keys; master keys in the file: {:?}",
                    rotation.rewrapped,
                    rotation.master_keys
                );
            }
        }
        VaultCommand::RetireMasterKey { key_id } => {
            agents.retire_master_key(&operator, key_id).await?;
            if global.json {
                print_json(&serde_json::json!({ "retired": key_id }));
            } else {
                say!("retired master key {key_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

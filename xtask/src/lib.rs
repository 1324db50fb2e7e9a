//! The developer workflow behind `cargo xtask`: it drives the `tollgate` binary for every write to a
//! database and reads databases with plain SQL only to check them. Validators are functions over a
//! root path, so tests point them at fixture trees and databases with known violations.

mod args;
mod db;
mod dev_fresh;
mod directory;
mod fixture;
mod hooks;
mod reset;
mod seed;
mod tollgate;
mod validate;
mod workspace;

use std::process::ExitCode;

pub use args::{Command, USAGE, parse_args};
pub use db::{Marker, read_marker};
pub use fixture::{
    Fixture, FixtureLimit, FixtureMember, FixtureProject, FixtureServiceAccount, FixtureToken, FixtureUsage,
    FixtureUser, LimitSubject, Offset, OwnerKind, TokenState, UserStatus,
};
pub use hooks::install_hooks;
pub use reset::{ResetOutcome, check_reset_target, reset};
pub use seed::{SeedOutcome, seed};
pub use tollgate::Tollgate;
pub use validate::{
    Validator, Violation, check_migrated_database, check_migration_folders, check_paths, check_schema, check_seed,
};
pub use workspace::{CANONICAL_DB, canonical_db, project_root};

/// Runs `cargo xtask` with these arguments; prints errors and returns the exit code
/// (0 success, 1 violations or a failed step, 2 bad arguments).
pub fn run(arguments: Vec<String>) -> ExitCode {
    let command = match parse_args(&arguments) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match dispatch(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let root = project_root();
    match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset { db } => {
            let tollgate = Tollgate::build(&root)?;
            let outcome = reset(&root, &tollgate, &workspace::db_or_canonical(&root, db))?;
            println!("{outcome}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { db } => {
            let tollgate = Tollgate::build(&root)?;
            let fixture = Fixture::load(&root)?;
            let outcome = seed(&root, &tollgate, &workspace::db_or_canonical(&root, db), &fixture)?;
            println!("{outcome}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { validators, db } => {
            let db = workspace::db_or_canonical(&root, db);
            let clean = validate::run_and_report(&root, &validators, &db)?;
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::DevFresh { test, db } => dev_fresh::dev_fresh(&root, &workspace::db_or_canonical(&root, db), test),
        Command::InstallHooks { force } => {
            let path = install_hooks(&root, force)?;
            println!(
                "installed the pre-commit hook at {} (cargo fmt --check, cargo xtask validate paths)",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! Command-line arguments, parsed by hand: six commands and three flags do not earn a parser crate
//! (keeping `cargo xtask` quick to compile).

use std::path::PathBuf;

use crate::validate::Validator;

/// What `cargo xtask help` prints.
pub const USAGE: &str = "\
cargo xtask <command>

commands:
  dev-fresh [--test] [--db PATH]   reset + seed + validate, then print the development credentials;
                                    --test also runs the whole test suite
  reset [--db PATH]                back the database up beside it and recreate it from the migrations
  seed [--db PATH]                 load tests/fixtures/seed.json into a development database
  validate [paths|schema|seed]...  check the repository and the database (all three when none is named),
           [--db PATH]              reporting every violation with file and line; exit 1 if any
  install-hooks [--force]          install a pre-commit hook: cargo fmt --check, cargo xtask validate paths
  help                             this text

The database defaults to ./tollgate.db at the repository root (the only development database path).";

/// A parsed `cargo xtask` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help`, `--help`, `-h` or nothing at all.
    Help,
    /// `reset [--db PATH]`.
    Reset {
        /// The database, when not the canonical one.
        db: Option<PathBuf>,
    },
    /// `seed [--db PATH]`.
    Seed {
        /// The database, when not the canonical one.
        db: Option<PathBuf>,
    },
    /// `validate [paths|schema|seed]... [--db PATH]`.
    Validate {
        /// Which validators, in the order given; all when none was named.
        validators: Vec<Validator>,
        /// The database, when not the canonical one.
        db: Option<PathBuf>,
    },
    /// `dev-fresh [--test] [--db PATH]`.
    DevFresh {
        /// Also run the test suite.
        test: bool,
        /// The database, when not the canonical one.
        db: Option<PathBuf>,
    },
    /// `install-hooks [--force]`.
    InstallHooks {
        /// Replace a pre-commit hook that xtask did not write.
        force: bool,
    },
}

/// Parses the arguments after `cargo xtask`. The error names what was wrong.
pub fn parse_args(arguments: &[String]) -> Result<Command, String> {
    let Some((name, rest)) = arguments.split_first() else {
        return Ok(Command::Help);
    };
    let mut db = None;
    let mut test = false;
    let mut force = false;
    let mut positional = Vec::new();
    let mut rest = rest.iter();
    while let Some(argument) = rest.next() {
        match argument.as_str() {
            "--db" => {
                let path = rest.next().ok_or("--db needs a path")?;
                db = Some(PathBuf::from(path));
            }
            flag if flag.starts_with("--db=") => db = Some(PathBuf::from(&flag["--db=".len()..])),
            "--test" => test = true,
            "--force" => force = true,
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag} for {name}")),
            word => positional.push(word),
        }
    }
    let takes = |allowed: &[&str]| -> Result<(), String> {
        for (flag, given) in [("--db", db.is_some()), ("--test", test), ("--force", force)] {
            if given && !allowed.contains(&flag) {
                return Err(format!("{name} does not take {flag}"));
            }
        }
        if name != "validate" && !positional.is_empty() {
            return Err(format!("{name} takes no argument {:?}", positional[0]));
        }
        Ok(())
    };
    let command = match name.as_str() {
        "help" | "--help" | "-h" => {
            takes(&[])?;
            Command::Help
        }
        "reset" => {
            takes(&["--db"])?;
            Command::Reset { db }
        }
        "seed" => {
            takes(&["--db"])?;
            Command::Seed { db }
        }
        "validate" => {
            takes(&["--db"])?;
            let mut validators = Vec::new();
            for word in positional {
                let validator = Validator::parse(word)
                    .ok_or_else(|| format!("unknown validator {word:?} (expected paths, schema or seed)"))?;
                if !validators.contains(&validator) {
                    validators.push(validator);
                }
            }
            if validators.is_empty() {
                validators = Validator::ALL.to_vec();
            }
            Command::Validate { validators, db }
        }
        "dev-fresh" => {
            takes(&["--db", "--test"])?;
            Command::DevFresh { test, db }
        }
        "install-hooks" => {
            takes(&["--force"])?;
            Command::InstallHooks { force }
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, String> {
        parse_args(&line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_flags_parse() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("reset --db dev/a.db"), Ok(Command::Reset { db: Some("dev/a.db".into()) }));
        assert_eq!(parse("dev-fresh --test"), Ok(Command::DevFresh { test: true, db: None }));
        assert_eq!(
            parse("validate seed paths seed"),
            Ok(Command::Validate { validators: vec![Validator::Seed, Validator::Paths], db: None })
        );
        assert_eq!(parse("validate"), Ok(Command::Validate { validators: Validator::ALL.to_vec(), db: None }));
        assert_eq!(parse("install-hooks --force"), Ok(Command::InstallHooks { force: true }));
    }

    #[test]
    fn mistakes_are_named() {
        for (line, expected) in [
            ("reset --db", "--db needs a path"),
            ("reset --test", "reset does not take --test"),
            ("validate tables", "unknown validator \"tables\""),
            ("seed extra", "seed takes no argument \"extra\""),
            ("frobnicate", "unknown command \"frobnicate\""),
            ("seed --verbose", "unknown flag --verbose for seed"),
        ] {
            let error = parse(line).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }
}

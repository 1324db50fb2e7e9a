//! `cargo xtask validate [paths|schema|seed]`: each validator reports every violation with file and
//! line, never just the first.

mod ddl;
mod migration_data;
mod paths;
mod rust_text;
mod schema;
mod seed;
mod sql;

use std::fmt;
use std::path::Path;

pub use paths::check_paths;
pub use schema::{check_migrated_database, check_migration_folders, check_schema};
pub use seed::check_seed;

use crate::tollgate::Tollgate;
use crate::workspace::shown;

/// One problem found by a validator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The file, relative to the repository root (or a database path).
    pub file: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Violation {
    /// A problem at `file:line`.
    pub fn at(file: impl Into<String>, line: usize, message: String) -> Self {
        Self { file: file.into(), line: Some(line), message }
    }

    /// A problem with a file or folder as a whole.
    pub fn in_file(file: impl Into<String>, message: String) -> Self {
        Self { file: file.into(), line: None, message }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// Database paths and absolute local paths in the repository.
    Paths,
    /// Migrations against a freshly migrated database, across backends, and their checksums.
    Schema,
    /// The development database against the seed fixture.
    Seed,
}

impl Validator {
    /// All of them, in the order `validate` runs them.
    pub const ALL: [Validator; 3] = [Self::Paths, Self::Schema, Self::Seed];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Paths => "paths",
            Self::Schema => "schema",
            Self::Seed => "seed",
        }
    }

    /// The validator named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|validator| validator.name() == name)
    }
}

/// Runs `validators` on the repository at `root` and the database `db`, printing every violation;
/// true when there were none.
pub(crate) fn run_and_report(root: &Path, validators: &[Validator], db: &Path) -> anyhow::Result<bool> {
    let mut clean = true;
    for validator in validators {
        let violations = match validator {
            Validator::Paths => check_paths(root)?,
            Validator::Schema => {
                let tollgate = Tollgate::build(root)?;
                check_schema(root, &tollgate, db.exists().then_some(db))?
            }
            Validator::Seed => check_seed(root, db, &crate::Fixture::load(root)?)?,
        };
        for violation in &violations {
            println!("{violation}");
        }
        let what = match validator {
            Validator::Seed => format!("seed ({})", shown(root, db)),
            other => other.name().to_owned(),
        };
        match violations.len() {
            0 => println!("validate {what}: ok"),
            count => println!("validate {what}: {count} violation{}", if count == 1 { "" } else { "s" }),
        }
        clean &= violations.is_empty();
    }
    Ok(clean)
}

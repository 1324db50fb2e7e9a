//! Schema migrations as every backend embeds them: a version, a name and the SQL of
//! `migrations/<backend>/<version>_<name>.sql`, with the checksum a backend records when it applies
//! one (an applied migration edited afterwards is refused).

use ring::digest;

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version number, from 1, without gaps.
    pub version: i64,
    /// The name part of the file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL, recorded when applied.
    pub fn checksum(&self) -> Vec<u8> {
        digest::digest(&digest::SHA256, self.sql.as_bytes()).as_ref().to_vec()
    }
}

/// A migration recorded in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Whether the SQL in this binary still has the checksum recorded when it was applied.
    pub unchanged: bool,
}

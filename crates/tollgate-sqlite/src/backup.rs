//! Online backups: a consistent copy of the database taken while it is written (`VACUUM INTO`, in
//! one read transaction on a reader: writers are not blocked), into a new file only its owner reads.

use std::path::Path;

use rusqlite::params;
use tollgate_store::StoreError;

use crate::SqliteStore;
use crate::columns::execute;
use crate::store::create_private;

impl SqliteStore {
    /// Writes a consistent copy of the database, as of one moment, to `target`, which must not
    /// exist (it is created readable by its owner only). Every write acknowledged before the call
    /// is in the copy.
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        if target.exists() {
            return Err(StoreError::Conflict(format!("{} already exists", target.display())));
        }
        let name =
            target.to_str().ok_or_else(|| StoreError::Conflict("the backup path is not UTF-8".to_owned()))?.to_owned();
        // An empty file is what VACUUM INTO accepts besides none: made first, with the mode.
        create_private(target)?;
        let copied = self.scan(move |connection| execute(connection, "VACUUM INTO ?1", params![name]).map(drop)).await;
        if copied.is_err() {
            let _ = std::fs::remove_file(target);
        }
        copied
    }

    /// Whether the database's pages and indexes are intact (`PRAGMA quick_check`); the first
    /// problem found, or `None`.
    pub async fn quick_check(&self) -> Result<Option<String>, StoreError> {
        self.scan(|connection| {
            let verdict: String = crate::columns::scalar(connection, "PRAGMA quick_check", [])?;
            Ok((verdict != "ok").then_some(verdict))
        })
        .await
    }
}

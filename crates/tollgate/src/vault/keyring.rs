//! The master keys a running process uses, kept in step with the key file: another process (the
//! operator's `tollgate vault rotate-master-key`) may add or retire a key while this one runs.

use std::sync::{Arc, PoisonError, RwLock};

use zeroize::Zeroizing;

use super::{MasterKeys, SealedSecret, VaultError};
use crate::Result;

/// Shared master keys: sealing reads the key file first (so new rows use the newest key), opening
/// reads it again only when a row names a key this process has not seen.
#[derive(Debug)]
pub(crate) struct KeyRing {
    keys: RwLock<Arc<MasterKeys>>,
    from_file: bool,
}

impl KeyRing {
    pub(crate) fn new(keys: MasterKeys) -> Self {
        let from_file = !keys.path().as_os_str().is_empty();
        Self { keys: RwLock::new(Arc::new(keys)), from_file }
    }

    /// The keys now.
    pub(crate) fn keys(&self) -> Arc<MasterKeys> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the key file; keys held only in memory stay as they are.
    pub(crate) fn reload(&self) -> Result<Arc<MasterKeys>> {
        if !self.from_file {
            return Ok(self.keys());
        }
        let fresh = Arc::new(MasterKeys::load(self.keys().path())?);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Replaces the keys after this process changed the file (or the in-memory set).
    pub(crate) fn replace(&self, keys: MasterKeys) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// Seals `secret` for `row` under the newest master key in the file.
    pub(crate) fn seal(&self, row: &str, secret: &[u8]) -> Result<SealedSecret> {
        Ok(self.reload()?.seal(row, secret)?)
    }

    /// Opens the secret of `row`, re-reading the key file once if the row names an unknown key.
    pub(crate) fn open(&self, row: &str, sealed: &SealedSecret) -> Result<Zeroizing<Vec<u8>>> {
        match self.keys().open(row, sealed) {
            Err(VaultError::MissingMasterKey { .. }) if self.from_file => Ok(self.reload()?.open(row, sealed)?),
            opened => Ok(opened?),
        }
    }
}

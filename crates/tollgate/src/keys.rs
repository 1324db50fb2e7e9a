//! Server keys kept in key files beside the database when the operator configures none: the token
//! hashing key ("pepper", `<db>.key`) and the access-token signing key (`<db>.jwt.key`), each
//! created once with mode 0600 and reused after.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use tollgate_types::{KeyId, TokenHasher};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A key read from (or written to) a key file: `tollgate-key v1 <key id> <64 hex digits>`.
pub struct KeyFile {
    /// Where it lives.
    pub path: PathBuf,
    /// Its id.
    pub key_id: KeyId,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("path", &self.path).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KeyFile {
    /// A token hasher using this key.
    pub fn hasher(&self) -> Result<TokenHasher> {
        Ok(TokenHasher::new(self.key_id, &self.key)?)
    }

    /// The raw key bytes (for deriving other keys, e.g. a JWT signing key). Never log them.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("key file {}: {why}", path.display()));
        let mut parts = text.split_whitespace();
        if parts.next() != Some("tollgate-key") || parts.next() != Some("v1") {
            return Err(bad("does not start with 'tollgate-key v1'"));
        }
        let key_id = parts.next().and_then(|id| id.parse::<u32>().ok()).ok_or_else(|| bad("missing key id"))?;
        let hex = parts.next().ok_or_else(|| bad("missing key"))?;
        let key = Zeroizing::new(decode_hex(hex).ok_or_else(|| bad("key is not hex"))?);
        if key.len() < TokenHasher::MIN_KEY_BYTES {
            return Err(bad("key is shorter than 32 bytes"));
        }
        Ok(Self { path: path.to_owned(), key_id: KeyId(key_id), key })
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

/// Reads the key file at `path`, or creates it with a fresh random 32-byte key (mode 0600) when
/// it does not exist. Creation is exclusive, so two processes starting together agree on one key.
pub fn load_or_create_key_file(path: &Path) -> Result<KeyFile> {
    match fs::read_to_string(path) {
        Ok(text) => return KeyFile::parse(path, &text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::Config(format!("key file {}: {error}", path.display()))),
    }
    let mut key = Zeroizing::new(vec![0u8; 32]);
    SystemRandom::new().fill(&mut key).map_err(|_| Error::Config("the system random generator failed".into()))?;
    let hex: Zeroizing<String> = Zeroizing::new(key.iter().map(|byte| format!("{byte:02x}")).collect());
    let contents = Zeroizing::new(format!("tollgate-key v1 1 {}\n", hex.as_str()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|error| Error::Config(format!("key file {}: {error}", path.display())))?;
            Ok(KeyFile { path: path.to_owned(), key_id: KeyId(1), key })
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key_file(path),
        Err(error) => Err(Error::Config(format!("key file {}: {error}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("tollgate.key");
        let first = load_or_create_key_file(&path).unwrap();
        let second = load_or_create_key_file(&path).unwrap();
        assert_eq!(first.key_bytes(), second.key_bytes());
        assert_eq!(first.key_id, KeyId(1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let hex: String = first.key_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
        assert!(!format!("{first:?}").contains(&hex[..16]));
    }

    #[test]
    fn broken_key_files_are_refused_clearly() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bad.key");
        fs::write(&path, "tollgate-key v1 1 abcd\n").unwrap();
        let error = load_or_create_key_file(&path).unwrap_err().to_string();
        assert!(error.contains("shorter than 32 bytes"), "{error}");
    }
}

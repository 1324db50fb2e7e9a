//! The vault's master keys: a file of AES-256 keys, each with an id, that wrap the data keys of
//! provider-key secrets. The highest id is current; older keys stay to open rows not yet rewrapped.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tollgate_types::ValidationError;
use zeroize::Zeroizing;

use super::crypto::fill_random;
use crate::{Error, Result};

/// Bytes in a master key (AES-256).
pub(super) const KEY_BYTES: usize = 32;
const LINE_START: &str = "tollgate-vault-key v1";

/// The id of a master key, stored beside every row it wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MasterKeyId(pub u32);

impl fmt::Display for MasterKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

type Key = Zeroizing<[u8; KEY_BYTES]>;

/// The vault's master keys, read from a key file of lines `tollgate-vault-key v1 <id> <64 hex digits>`.
///
/// ```
/// let mut keys = tollgate::MasterKeys::ephemeral()?;
/// let sealed = keys.seal("row-1", b"sk-provider-secret")?;
/// keys.add_key()?;
/// let sealed = keys.rewrap("row-1", &sealed)?;
/// assert_eq!(sealed.master_key_id, keys.current_id());
/// assert_eq!(keys.open("row-1", &sealed)?.as_slice(), b"sk-provider-secret");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MasterKeys {
    /// `None` for keys held only in memory.
    path: Option<PathBuf>,
    /// Never empty: the last entry is the current key.
    keys: BTreeMap<MasterKeyId, Key>,
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys").field("path", &self.path()).field("ids", &self.ids()).finish_non_exhaustive()
    }
}

impl MasterKeys {
    /// Reads the key file at `path`, or creates it (mode 0600) with one fresh key, id 1, when it does
    /// not exist. Creation is exclusive, so two processes starting together agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &Zeroizing::new(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(file_error(path, error)),
        }
        let keys = BTreeMap::from([(MasterKeyId(1), random_key(path)?)]);
        let contents = encode(&keys);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let written = file
                    .write_all(contents.as_bytes())
                    .and_then(|()| file.sync_all())
                    .and_then(|()| sync_directory(path));
                if let Err(error) = written {
                    // Leave no empty or partial file behind that the next start would refuse.
                    let _ = fs::remove_file(path);
                    return Err(file_error(path, error));
                }
                Ok(Self { path: Some(path.to_owned()), keys })
            }
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(error) => Err(file_error(path, error)),
        }
    }

    /// Reads the key file at `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|error| file_error(path, error))?);
        Self::parse(path, &text)
    }

    /// Keys held only in memory, for tests and in-memory stores: one random key, id 1.
    /// [`add_key`](Self::add_key) and [`retire`](Self::retire) change them without writing anywhere.
    pub fn ephemeral() -> Result<Self> {
        Ok(Self { path: None, keys: BTreeMap::from([(MasterKeyId(1), random_key(Path::new(""))?)]) })
    }

    /// The key file (empty for [`ephemeral`](Self::ephemeral) keys).
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// The id of the key new secrets are wrapped with: the highest.
    pub fn current_id(&self) -> MasterKeyId {
        *self.keys.last_key_value().expect("a vault key set holds at least one key").0
    }

    /// Every key's id, ascending.
    pub fn ids(&self) -> Vec<MasterKeyId> {
        self.keys.keys().copied().collect()
    }

    /// Adds a fresh random key with the next id and makes it current, rewriting the key file
    /// atomically. Older keys stay, so rows wrapped by them still open until rewrapped.
    pub fn add_key(&mut self) -> Result<MasterKeyId> {
        let id = self.current_id().0.checked_add(1).map(MasterKeyId).ok_or_else(|| {
            file_error(self.path(), format!("key id {} is the last one: no id is left for a new key", u32::MAX))
        })?;
        self.keys.insert(id, random_key(self.path())?);
        if let Err(error) = self.persist() {
            self.keys.remove(&id);
            return Err(error);
        }
        Ok(id)
    }

    /// Removes a key, rewriting the key file atomically. Rows it still wraps will no longer open:
    /// rewrap them first. Refuses the current key and an id not in the file.
    pub fn retire(&mut self, id: MasterKeyId) -> Result<()> {
        if id == self.current_id() {
            let reason = format!("master key {id} is the current one: add a new key before retiring it");
            return Err(ValidationError::new("key_id", reason).into());
        }
        let Some(key) = self.keys.remove(&id) else {
            return Err(ValidationError::new("key_id", format!("no master key {id} in the vault key file")).into());
        };
        if let Err(error) = self.persist() {
            self.keys.insert(id, key);
            return Err(error);
        }
        Ok(())
    }

    /// The key with this id, if the file holds it.
    pub(crate) fn key(&self, id: MasterKeyId) -> Option<&[u8; KEY_BYTES]> {
        self.keys.get(&id).map(|key| &**key)
    }

    /// The current key and its id.
    pub(super) fn current_key(&self) -> (MasterKeyId, &[u8; KEY_BYTES]) {
        let (id, key) = self.keys.last_key_value().expect("a vault key set holds at least one key");
        (*id, key)
    }

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_error = |why: String| file_error(path, format!("line {}: {why}", index + 1));
            let (id, key) = parse_line(line).map_err(line_error)?;
            if keys.insert(id, key).is_some() {
                return Err(line_error(format!("key id {id} appears more than once")));
            }
        }
        if keys.is_empty() {
            return Err(file_error(path, "holds no key"));
        }
        Ok(Self { path: Some(path.to_owned()), keys })
    }

    /// Writes every key to the file: a private temporary file beside it, synced, then renamed over
    /// it, so a crash leaves either the old file or the new one, never a mix.
    fn persist(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let contents = encode(&self.keys);
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix).map_err(|error| file_error(path, error))?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(path.file_name().ok_or_else(|| file_error(path, "is not a file path"))?);
        temporary_name.push(format!(".{}.tmp", u64::from_be_bytes(suffix)));
        let temporary = path.with_file_name(temporary_name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, path)
        });
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(file_error(path, error));
        }
        sync_directory(path).map_err(|error| file_error(path, error))
    }
}

fn file_error(path: &Path, why: impl fmt::Display) -> Error {
    if path.as_os_str().is_empty() {
        return Error::Config(format!("vault keys: {why}"));
    }
    Error::Config(format!("vault key file {}: {why}", path.display()))
}

fn random_key(path: &Path) -> Result<Key> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    fill_random(&mut *key).map_err(|error| file_error(path, error))?;
    Ok(key)
}

/// Makes a created or renamed file's directory entry durable.
fn sync_directory(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::File::open(directory)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Never echoes the line: it may hold a key.
fn parse_line(line: &str) -> std::result::Result<(MasterKeyId, Key), String> {
    let mut parts = line.split_whitespace();
    if parts.next() != Some("tollgate-vault-key") || parts.next() != Some("v1") {
        return Err(format!("does not start with '{LINE_START}'"));
    }
    let id = parts.next().ok_or("missing key id")?;
    if !id.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err("key id is not a number".into());
    }
    let id = id.parse::<u32>().map_err(|_| format!("key id is larger than {}", u32::MAX))?;
    let hex = parts.next().ok_or("missing key")?;
    if parts.next().is_some() {
        return Err("unexpected text after the key".into());
    }
    if !hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("key is not lowercase hex".into());
    }
    if hex.len() != 2 * KEY_BYTES {
        return Err(format!("key is {} hex digits, not {} (a {KEY_BYTES}-byte key)", hex.len(), 2 * KEY_BYTES));
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok((MasterKeyId(id), key))
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

/// The file's contents, built in one buffer sized up front so no copy of a key is left behind.
fn encode(keys: &BTreeMap<MasterKeyId, Key>) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut contents = Zeroizing::new(String::with_capacity(keys.len() * (LINE_START.len() + 2 * KEY_BYTES + 16)));
    for (id, key) in keys {
        contents.push_str(&format!("{LINE_START} {id} "));
        for byte in key.iter() {
            contents.push(char::from(DIGITS[usize::from(byte >> 4)]));
            contents.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        contents.push('\n');
    }
    contents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(key: &[u8]) -> String {
        key.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn line(id: u32, byte: u8) -> String {
        format!("{LINE_START} {id} {}\n", hex(&[byte; KEY_BYTES]))
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        let first = MasterKeys::load_or_create(&path).unwrap();
        let second = MasterKeys::load_or_create(&path).unwrap();
        assert_eq!(first.ids(), vec![MasterKeyId(1)]);
        assert_eq!(first.current_id(), MasterKeyId(1));
        assert_eq!(first.key(MasterKeyId(1)), second.key(MasterKeyId(1)));
        assert_eq!(first.path(), path);
        let key_hex = hex(first.key(MasterKeyId(1)).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{LINE_START} 1 {key_hex}\n"));
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn load_needs_the_file_to_exist() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing.key");
        let error = MasterKeys::load(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn added_keys_persist_beside_the_old_ones() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        let mut keys = MasterKeys::load_or_create(&path).unwrap();
        assert_eq!(keys.add_key().unwrap(), MasterKeyId(2));
        assert_eq!(keys.current_id(), MasterKeyId(2));
        assert_ne!(keys.key(MasterKeyId(1)), keys.key(MasterKeyId(2)));
        let reloaded = MasterKeys::load(&path).unwrap();
        assert_eq!(reloaded.ids(), vec![MasterKeyId(1), MasterKeyId(2)]);
        for id in keys.ids() {
            assert_eq!(reloaded.key(id), keys.key(id));
        }
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(directory.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("vault.key")], "no temporary file is left behind");
    }

    #[test]
    fn retiring_persists_and_refuses_the_current_key_and_unknown_ids() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        let mut keys = MasterKeys::load_or_create(&path).unwrap();
        let refused = |result: Result<()>| match result {
            Err(Error::Validation(error)) => assert_eq!(error.field, "key_id"),
            other => panic!("expected a key_id validation error, got {other:?}"),
        };
        refused(keys.retire(MasterKeyId(1)));
        keys.add_key().unwrap();
        refused(keys.retire(MasterKeyId(2)));
        refused(keys.retire(MasterKeyId(7)));
        keys.retire(MasterKeyId(1)).unwrap();
        assert_eq!(keys.ids(), vec![MasterKeyId(2)]);
        assert_eq!(MasterKeys::load(&path).unwrap().ids(), vec![MasterKeyId(2)]);
    }

    #[test]
    fn the_highest_id_is_current_whatever_the_order_and_blank_lines_are_ignored() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        fs::write(&path, format!("\n{}\n  \n{}", line(5, 0xaa), line(3, 0xbb))).unwrap();
        let keys = MasterKeys::load(&path).unwrap();
        assert_eq!(keys.ids(), vec![MasterKeyId(3), MasterKeyId(5)]);
        assert_eq!(keys.current_id(), MasterKeyId(5));
        assert_eq!(keys.key(MasterKeyId(5)), Some(&[0xaa; KEY_BYTES]));
    }

    #[test]
    fn broken_key_files_are_refused_clearly_without_showing_keys() {
        let check = |contents: String, expected: &str| {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("bad.key");
            fs::write(&path, &contents).unwrap();
            let error = MasterKeys::load_or_create(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{contents:?}: {error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(!error.contains(&hex(&[0x5a; 4])), "a key leaked: {error}");
        };
        let key = hex(&[0x5a; KEY_BYTES]);
        check(String::new(), "holds no key");
        check("\n  \n".into(), "holds no key");
        check(format!("{}{}", line(1, 0x5a), line(1, 0x11)), "line 2: key id 1 appears more than once");
        check(format!("tollgate-key v1 1 {key}"), "line 1: does not start with 'tollgate-vault-key v1'");
        check(format!("tollgate-vault-key v2 1 {key}"), "does not start with 'tollgate-vault-key v1'");
        check("tollgate-vault-key v1".into(), "missing key id");
        check(format!("tollgate-vault-key v1 x1 {key}"), "key id is not a number");
        check(format!("tollgate-vault-key v1 -1 {key}"), "key id is not a number");
        check(format!("tollgate-vault-key v1 4294967296 {key}"), "key id is larger than 4294967295");
        check("tollgate-vault-key v1 1".into(), "missing key");
        check(format!("tollgate-vault-key v1 1 {key} extra"), "unexpected text after the key");
        check(format!("tollgate-vault-key v1 1 {}", key.to_uppercase()), "key is not lowercase hex");
        check(format!("tollgate-vault-key v1 1 {}", &key[..62]), "key is 62 hex digits, not 64");
        check(format!("tollgate-vault-key v1 1 {key}5a"), "key is 66 hex digits, not 64");
        check(format!("tollgate-vault-key v1 1 {}", &key[..63]), "key is 63 hex digits, not 64");
    }

    #[test]
    fn debug_shows_the_path_and_ids_but_no_key() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        let mut keys = MasterKeys::load_or_create(&path).unwrap();
        keys.add_key().unwrap();
        let debug = format!("{keys:?}");
        assert_eq!(debug, format!("MasterKeys {{ path: {path:?}, ids: [MasterKeyId(1), MasterKeyId(2)], .. }}"));
        for id in keys.ids() {
            let key = keys.key(id).unwrap();
            assert!(!debug.contains(&hex(&key[..4])) && !debug.contains(&format!("{:?}", &key[..4])));
        }
    }

    #[test]
    fn ephemeral_keys_change_in_memory_only() {
        let mut keys = MasterKeys::ephemeral().unwrap();
        assert_eq!((keys.path(), keys.ids()), (Path::new(""), vec![MasterKeyId(1)]));
        assert_eq!(keys.add_key().unwrap(), MasterKeyId(2));
        keys.retire(MasterKeyId(1)).unwrap();
        assert_eq!(keys.ids(), vec![MasterKeyId(2)]);
        assert_eq!(MasterKeyId(2).to_string(), "2");
    }

    #[test]
    fn the_last_id_has_no_successor() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        fs::write(&path, line(u32::MAX, 1)).unwrap();
        let mut keys = MasterKeys::load(&path).unwrap();
        let error = keys.add_key().unwrap_err().to_string();
        assert!(error.contains("no id is left"), "{error}");
        assert_eq!(keys.ids(), vec![MasterKeyId(u32::MAX)]);
        assert_eq!(fs::read_to_string(&path).unwrap(), line(u32::MAX, 1));
    }
}

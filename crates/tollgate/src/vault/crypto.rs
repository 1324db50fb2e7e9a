//! Envelope encryption of provider-key secrets with AES-256-GCM: each secret is sealed with its own
//! random data key, and the data key is sealed ("wrapped") with the current master key. The
//! associated data binds both to the row (and the wrapped key to its master key id), so a sealed
//! value moved to another row, or relabelled with another master key id, does not open.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, MAX_TAG_LEN, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::master_keys::{KEY_BYTES, MasterKeyId, MasterKeys};
use crate::Error;

const SECRET_CONTEXT: &[u8] = b"tollgate/provider-key/secret/v1\0";
const DATA_KEY_CONTEXT: &[u8] = b"tollgate/provider-key/data-key/v1\0";
/// The wrap nonce, then the sealed data key with its tag.
const WRAPPED_KEY_BYTES: usize = NONCE_LEN + KEY_BYTES + MAX_TAG_LEN;

/// A provider-key secret as stored: what [`MasterKeys::seal`] made, for [`MasterKeys::open`].
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The secret sealed with its data key, tag included.
    pub ciphertext: Vec<u8>,
    /// The 12-byte nonce the secret was sealed with.
    pub nonce: Vec<u8>,
    /// The 12-byte wrap nonce followed by the data key sealed with the master key, tag included.
    pub wrapped_key: Vec<u8>,
    /// The master key that wrapped the data key.
    pub master_key_id: MasterKeyId,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("nonce_len", &self.nonce.len())
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("master_key_id", &self.master_key_id)
            .finish()
    }
}

/// Why a provider-key secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultError {
    /// The row names a master key the key file no longer (or never) held.
    #[error("provider key {row} is wrapped by master key {key_id}, which is not in the vault key file")]
    MissingMasterKey {
        /// The row's id.
        row: String,
        /// The master key it names.
        key_id: MasterKeyId,
    },
    /// Authentication failed: the stored values or their row binding changed, or the key is wrong.
    #[error(
        "provider key {row} does not decrypt: its ciphertext, nonce, wrapped key or row binding was altered, or it was wrapped by a different master key with the same id"
    )]
    Tampered {
        /// The row's id.
        row: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl From<VaultError> for Error {
    fn from(error: VaultError) -> Self {
        // A row that does not open, or no randomness, is a deployment problem (wrong or missing
        // key file, broken system), not the caller's input.
        match error {
            VaultError::MissingMasterKey { .. } | VaultError::Tampered { .. } => Self::Config(error.to_string()),
            VaultError::Random => Self::Config(error.to_string()),
        }
    }
}

impl MasterKeys {
    /// Seals `secret` for the row `row_id` under a fresh data key wrapped by the current master key.
    ///
    /// # Panics
    ///
    /// If `secret` is longer than AES-GCM can seal (64 GiB).
    pub fn seal(&self, row_id: &str, secret: &[u8]) -> Result<SealedSecret, VaultError> {
        let mut data_key = Zeroizing::new([0u8; KEY_BYTES]);
        fill_random(&mut *data_key)?;
        let nonce = random_nonce()?;
        // Room for the tag up front: growing the buffer would leave a copy of the secret behind.
        let mut ciphertext = Vec::with_capacity(secret.len() + MAX_TAG_LEN);
        ciphertext.extend_from_slice(secret);
        aead_key(&data_key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(secret_aad(row_id)),
                &mut ciphertext,
            )
            .expect("a provider-key secret is within AES-GCM's 64 GiB limit");
        let (master_key_id, master_key) = self.current_key();
        let wrapped_key = wrap(master_key, master_key_id, row_id, &data_key)?;
        Ok(SealedSecret { ciphertext, nonce: nonce.to_vec(), wrapped_key, master_key_id })
    }

    /// Opens the secret sealed for the row `row_id`.
    pub fn open(&self, row_id: &str, sealed: &SealedSecret) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let data_key = self.unwrap_data_key(row_id, sealed)?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| tampered(row_id))?;
        let mut buffer = Zeroizing::new(sealed.ciphertext.clone());
        let secret_len = aead_key(&data_key)
            .open_in_place(nonce, Aad::from(secret_aad(row_id)), buffer.as_mut_slice())
            .map_err(|_| tampered(row_id))?
            .len();
        buffer.truncate(secret_len);
        Ok(buffer)
    }

    /// Re-wraps the row's data key under the current master key, leaving ciphertext and nonce as
    /// they are, so the row's old master key can be retired. A row already under the current key
    /// is returned unchanged (once its wrapped key is checked to open).
    pub fn rewrap(&self, row_id: &str, sealed: &SealedSecret) -> Result<SealedSecret, VaultError> {
        let data_key = self.unwrap_data_key(row_id, sealed)?;
        let (master_key_id, master_key) = self.current_key();
        if sealed.master_key_id == master_key_id {
            return Ok(sealed.clone());
        }
        Ok(SealedSecret {
            ciphertext: sealed.ciphertext.clone(),
            nonce: sealed.nonce.clone(),
            wrapped_key: wrap(master_key, master_key_id, row_id, &data_key)?,
            master_key_id,
        })
    }

    fn unwrap_data_key(&self, row_id: &str, sealed: &SealedSecret) -> Result<Zeroizing<[u8; KEY_BYTES]>, VaultError> {
        let key_id = sealed.master_key_id;
        let master_key =
            self.key(key_id).ok_or_else(|| VaultError::MissingMasterKey { row: row_id.to_owned(), key_id })?;
        if sealed.wrapped_key.len() != WRAPPED_KEY_BYTES {
            return Err(tampered(row_id));
        }
        let (nonce, sealed_key) = sealed.wrapped_key.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| tampered(row_id))?;
        let mut buffer = Zeroizing::new([0u8; KEY_BYTES + MAX_TAG_LEN]);
        buffer.copy_from_slice(sealed_key);
        let opened = aead_key(master_key)
            .open_in_place(nonce, Aad::from(data_key_aad(row_id, key_id)), &mut buffer[..])
            .map_err(|_| tampered(row_id))?;
        let mut data_key = Zeroizing::new([0u8; KEY_BYTES]);
        data_key.copy_from_slice(opened);
        Ok(data_key)
    }
}

/// Fills `bytes` from the system's secure random number generator.
pub(super) fn fill_random(bytes: &mut [u8]) -> Result<(), VaultError> {
    SystemRandom::new().fill(bytes).map_err(|_| VaultError::Random)
}

/// A fresh random nonce: each data key seals one secret, each wrap uses its own nonce, and 96
/// random bits make a repeat under one master key negligible for any realistic number of rows.
fn random_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

fn aead_key(key: &[u8; KEY_BYTES]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32 bytes are an AES-256 key"))
}

fn tampered(row_id: &str) -> VaultError {
    VaultError::Tampered { row: row_id.to_owned() }
}

fn secret_aad(row_id: &str) -> Vec<u8> {
    [SECRET_CONTEXT, row_id.as_bytes()].concat()
}

/// The master key id is last and fixed-width, so no two (row, id) pairs give the same bytes.
fn data_key_aad(row_id: &str, master_key_id: MasterKeyId) -> Vec<u8> {
    [DATA_KEY_CONTEXT, row_id.as_bytes(), b"\0", &master_key_id.0.to_be_bytes()].concat()
}

fn wrap(
    master_key: &[u8; KEY_BYTES],
    master_key_id: MasterKeyId,
    row_id: &str,
    data_key: &[u8; KEY_BYTES],
) -> Result<Vec<u8>, VaultError> {
    let nonce = random_nonce()?;
    let mut wrapped = Vec::with_capacity(WRAPPED_KEY_BYTES);
    wrapped.extend_from_slice(&nonce);
    wrapped.extend_from_slice(data_key);
    let tag = aead_key(master_key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(data_key_aad(row_id, master_key_id)),
            &mut wrapped[NONCE_LEN..],
        )
        .expect("a 32-byte data key is within AES-GCM's limit");
    wrapped.extend_from_slice(tag.as_ref());
    Ok(wrapped)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"sk-live-0123456789abcdef";

    fn assert_tampered(keys: &MasterKeys, row_id: &str, sealed: &SealedSecret) {
        assert_eq!(keys.open(row_id, sealed), Err(VaultError::Tampered { row: row_id.to_owned() }), "{sealed:?}");
    }

    #[test]
    fn a_sealed_secret_opens_on_its_row() {
        let keys = MasterKeys::ephemeral().unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        assert_eq!(keys.open("row-1", &sealed).unwrap().as_slice(), SECRET);
        assert_eq!(sealed.master_key_id, MasterKeyId(1));
        assert_eq!(
            (sealed.ciphertext.len(), sealed.nonce.len(), sealed.wrapped_key.len()),
            (SECRET.len() + 16, 12, 12 + 32 + 16)
        );
        let again = keys.seal("row-1", SECRET).unwrap();
        assert_ne!(again.ciphertext, sealed.ciphertext, "every seal uses a fresh data key and nonce");
        assert_ne!(again.nonce, sealed.nonce);
        assert_ne!(again.wrapped_key[..12], sealed.wrapped_key[..12]);
    }

    #[test]
    fn any_changed_byte_or_length_is_tampering() {
        let keys = MasterKeys::ephemeral().unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        let fields: [fn(&mut SealedSecret) -> &mut Vec<u8>; 3] =
            [|sealed| &mut sealed.ciphertext, |sealed| &mut sealed.nonce, |sealed| &mut sealed.wrapped_key];
        for field in fields {
            let mut altered = sealed.clone();
            for index in 0..field(&mut altered).len() {
                let mut altered = sealed.clone();
                field(&mut altered)[index] ^= 0x01;
                assert_tampered(&keys, "row-1", &altered);
            }
            field(&mut altered).push(0);
            assert_tampered(&keys, "row-1", &altered);
            field(&mut altered).truncate(1);
            assert_tampered(&keys, "row-1", &altered);
        }
        assert_eq!(keys.open("row-1", &sealed).unwrap().as_slice(), SECRET);
    }

    #[test]
    fn a_secret_or_wrapped_key_moved_to_another_row_does_not_open() {
        let keys = MasterKeys::ephemeral().unwrap();
        let first = keys.seal("row-1", SECRET).unwrap();
        let second = keys.seal("row-2", SECRET).unwrap();
        assert_tampered(&keys, "row-2", &first);
        assert_tampered(&keys, "row-1", &SealedSecret { wrapped_key: second.wrapped_key.clone(), ..first.clone() });
        assert_tampered(&keys, "row-2", &SealedSecret { wrapped_key: first.wrapped_key.clone(), ..second.clone() });
        assert_tampered(&keys, "row-10", &keys.seal("row-1", SECRET).unwrap());
    }

    #[test]
    fn a_secret_opens_only_on_its_row_even_with_its_data_key_wrapped_for_another() {
        // What a rotation tool that rewrapped with the wrong row id would store.
        let keys = MasterKeys::ephemeral().unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        let data_key = keys.unwrap_data_key("row-1", &sealed).unwrap();
        let (master_key_id, master_key) = keys.current_key();
        let wrapped_key = wrap(master_key, master_key_id, "row-2", &data_key).unwrap();
        let moved = SealedSecret { wrapped_key, ..sealed.clone() };
        assert_eq!(keys.unwrap_data_key("row-2", &moved).unwrap(), data_key);
        assert_tampered(&keys, "row-2", &moved);
        assert_eq!(keys.rewrap("row-2", &sealed), Err(tampered("row-2")), "rewrap checks the row binding");
    }

    #[test]
    fn the_wrapped_key_is_bound_to_its_master_key_id_even_when_two_ids_hold_one_key() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vault.key");
        let key = "ab".repeat(32);
        std::fs::write(&path, format!("tollgate-vault-key v1 1 {key}\ntollgate-vault-key v1 2 {key}\n")).unwrap();
        let keys = MasterKeys::load(&path).unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        assert_eq!(keys.open("row-1", &sealed).unwrap().as_slice(), SECRET);
        assert_tampered(&keys, "row-1", &SealedSecret { master_key_id: MasterKeyId(1), ..sealed });
    }

    #[test]
    fn a_relabelled_master_key_id_does_not_open() {
        let mut keys = MasterKeys::ephemeral().unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        keys.add_key().unwrap();
        assert_tampered(&keys, "row-1", &SealedSecret { master_key_id: MasterKeyId(2), ..sealed.clone() });
        let missing = SealedSecret { master_key_id: MasterKeyId(7), ..sealed };
        let error = keys.open("row-1", &missing).unwrap_err();
        assert_eq!(error, VaultError::MissingMasterKey { row: "row-1".into(), key_id: MasterKeyId(7) });
        assert!(error.to_string().contains("master key 7"), "{error}");
    }

    #[test]
    fn rotation_rewraps_rows_and_retiring_strands_the_rest() {
        let mut keys = MasterKeys::ephemeral().unwrap();
        let old = keys.seal("row-1", SECRET).unwrap();
        assert_eq!(keys.add_key().unwrap(), MasterKeyId(2));
        let new = keys.seal("row-2", b"second").unwrap();
        assert_eq!(new.master_key_id, MasterKeyId(2));
        assert_eq!(keys.open("row-1", &old).unwrap().as_slice(), SECRET, "not yet rewrapped: the old key opens it");
        let rewrapped = keys.rewrap("row-1", &old).unwrap();
        assert_eq!(rewrapped.master_key_id, MasterKeyId(2));
        assert_eq!((&rewrapped.ciphertext, &rewrapped.nonce), (&old.ciphertext, &old.nonce));
        assert_ne!(rewrapped.wrapped_key, old.wrapped_key);
        assert_eq!(keys.rewrap("row-2", &new).unwrap(), new, "already under the current key");
        assert_eq!(keys.rewrap("row-1", &rewrapped).unwrap(), rewrapped);
        assert_eq!(keys.rewrap("row-2", &old), Err(tampered("row-2")));
        keys.retire(MasterKeyId(1)).unwrap();
        assert_eq!(keys.open("row-1", &rewrapped).unwrap().as_slice(), SECRET);
        assert_eq!(keys.open("row-2", &new).unwrap().as_slice(), b"second");
        let stranded = VaultError::MissingMasterKey { row: "row-1".into(), key_id: MasterKeyId(1) };
        assert_eq!(keys.open("row-1", &old), Err(stranded.clone()));
        assert_eq!(keys.rewrap("row-1", &old), Err(stranded));
    }

    #[test]
    fn debug_shows_lengths_and_the_key_id_only() {
        let keys = MasterKeys::ephemeral().unwrap();
        let sealed = keys.seal("row-1", SECRET).unwrap();
        assert_eq!(
            format!("{sealed:?}"),
            "SealedSecret { ciphertext_len: 40, nonce_len: 12, wrapped_key_len: 60, master_key_id: MasterKeyId(1) }"
        );
        assert_eq!(format!("{keys:?}"), r#"MasterKeys { path: "", ids: [MasterKeyId(1)], .. }"#);
    }

    #[test]
    fn vault_errors_become_configuration_errors() {
        let error = Error::from(tampered("row-1"));
        assert!(matches!(&error, Error::Config(message) if message.contains("provider key row-1 does not decrypt")));
        assert!(matches!(Error::from(VaultError::Random), Error::Config(_)));
    }

    proptest! {
        #[test]
        fn any_secret_round_trips_on_any_row(
            secret in proptest::collection::vec(any::<u8>(), 0..4096),
            row_id in "\\PC{0,40}",
        ) {
            let keys = MasterKeys::ephemeral().unwrap();
            let sealed = keys.seal(&row_id, &secret).unwrap();
            let opened = keys.open(&row_id, &sealed).unwrap();
            prop_assert_eq!(opened.as_slice(), secret.as_slice());
            prop_assert_eq!(keys.rewrap(&row_id, &sealed).unwrap(), sealed);
        }
    }
}

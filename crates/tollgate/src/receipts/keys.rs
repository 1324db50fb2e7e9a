//! The receipt signing key: its key file (created 0600 on first use, rotated by appending a new key
//! and keeping only the public half of the old ones), the signer with its memory of issued
//! receipts, and public keys for verifiers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::{RECEIPT_VERSION, Receipt, ReceiptContent, ReceiptKind};
use crate::{Error, Result};

const SIGNING_LINE: &str = "tollgate-receipt-key v1";
const PUBLIC_LINE: &str = "tollgate-receipt-public v1";
/// How many issued receipts the signer remembers, so that a repeat gets the same one.
const REMEMBERED_RECEIPTS: usize = 32_768;

pub(super) fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// A receipt public key: 32 raw Ed25519 bytes and the id receipts name it by.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiptPublicKey {
    bytes: [u8; 32],
    key_id: String,
}

impl fmt::Debug for ReceiptPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptPublicKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl ReceiptPublicKey {
    /// From the 32 raw bytes of an Ed25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let key_id = digest.as_ref()[..8].iter().map(|byte| format!("{byte:02x}")).collect();
        Self { bytes, key_id }
    }

    /// From its base64url text (as `GET /v1/receipts/key` serves it; padding is allowed).
    ///
    /// ```
    /// let signer = tollgate::ReceiptSigner::ephemeral()?;
    /// let text = signer.public_key().to_base64url();
    /// assert_eq!(tollgate::ReceiptPublicKey::parse(&text)?, signer.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(text: &str) -> std::result::Result<Self, tollgate_types::ValidationError> {
        let bytes = decode_base64url(text.trim())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| tollgate_types::ValidationError::new("public_key", "must be 32 bytes in base64url"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key id: the first 8 bytes of SHA-256 of the raw key, in lowercase hex.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw key in base64url without padding.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.bytes).verify(message, signature).is_ok()
    }
}

/// Signs receipts with the current key of a receipt key file. Cheap to clone.
///
/// A receipt for a request with an idempotency key (a reservation, a lease report, an event id) is
/// remembered: a repeat of the request gets the very receipt the first one did.
#[derive(Clone)]
pub struct ReceiptSigner {
    inner: Arc<Inner>,
}

struct Inner {
    key_pair: Ed25519KeyPair,
    public_key: ReceiptPublicKey,
    previous: Vec<ReceiptPublicKey>,
    path: Option<PathBuf>,
    issued: Mutex<Issued>,
}

impl fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("path", &self.inner.path)
            .field("key_id", &self.inner.public_key.key_id)
            .finish_non_exhaustive()
    }
}

type IssuedKey = (ReceiptKind, String, Option<String>, Option<String>);

/// Receipts issued for requests that can be repeated, oldest first out.
#[derive(Default)]
struct Issued {
    receipts: HashMap<IssuedKey, Receipt>,
    order: VecDeque<IssuedKey>,
}

impl ReceiptSigner {
    /// Reads the receipt key file at `path`, or creates it (mode 0600) with a fresh key when it
    /// does not exist. Creation is exclusive, so two processes starting together agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => return Self::parse(Some(path), &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(file_error(path, error)),
        }
        let contents = signing_line(&generate(path)?);
        match write_new(path, &contents) {
            Ok(()) => Self::parse(Some(path), &contents),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(error) => Err(file_error(path, error)),
        }
    }

    /// Reads an existing receipt key file; a missing one is an error.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|error| file_error(path, error))?;
        Self::parse(Some(path), &text)
    }

    /// A signer with a fresh key held only in memory (tests, examples).
    pub fn ephemeral() -> Result<Self> {
        let contents = signing_line(&generate(Path::new(""))?);
        Self::parse(None, &contents)
    }

    /// The public half of the current key.
    pub fn public_key(&self) -> ReceiptPublicKey {
        self.inner.public_key.clone()
    }

    /// The public halves of keys rotated out, still good to verify the receipts they signed.
    pub fn previous_keys(&self) -> &[ReceiptPublicKey] {
        &self.inner.previous
    }

    /// Every public key of the file: the current one first.
    pub fn all_public_keys(&self) -> Vec<ReceiptPublicKey> {
        std::iter::once(self.public_key()).chain(self.inner.previous.iter().cloned()).collect()
    }

    /// Signs `content` with the current key; a request signed before (same kind, token, reference
    /// and request id) gets the receipt it got then, while it is remembered.
    pub fn sign(&self, content: ReceiptContent) -> Receipt {
        let remembered = (content.reference.is_some() || content.request_id.is_some())
            .then(|| (content.kind, content.token_id.clone(), content.reference.clone(), content.request_id.clone()));
        if let Some(key) = &remembered
            && let Some(receipt) = self.issued().receipts.get(key)
        {
            return receipt.clone();
        }
        let mut receipt = Receipt {
            version: RECEIPT_VERSION,
            key_id: self.inner.public_key.key_id.clone(),
            kind: content.kind,
            token_id: content.token_id,
            agent_id: content.agent_id,
            reference: content.reference,
            request_id: content.request_id,
            provider: content.provider,
            model: content.model,
            input_tokens: content.input_tokens,
            output_tokens: content.output_tokens,
            cost_micros: content.cost,
            at: content.at,
            signature: String::new(),
        };
        // Values come from validated ids and names; one that could not be signed stays unsigned
        // (and so never verifies) rather than failing the metered request after it committed.
        if let Some(message) = receipt.canonical_bytes() {
            receipt.signature = URL_SAFE_NO_PAD.encode(self.inner.key_pair.sign(&message));
        }
        if let Some(key) = remembered {
            let mut issued = self.issued();
            if let Some(first) = issued.receipts.get(&key) {
                // A concurrent repeat signed first: answer what it answered.
                return first.clone();
            }
            if issued.order.len() >= REMEMBERED_RECEIPTS
                && let Some(oldest) = issued.order.pop_front()
            {
                issued.receipts.remove(&oldest);
            }
            issued.order.push_back(key.clone());
            issued.receipts.insert(key, receipt.clone());
        }
        receipt
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, Issued> {
        self.inner.issued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Never echoes a line: it may hold a key.
    fn parse(path: Option<&Path>, text: &str) -> Result<Self> {
        let shown = path.unwrap_or(Path::new(""));
        let mut signing = Vec::new();
        let mut previous = Vec::new();
        for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let bad = |why: &str| file_error(shown, format!("line {}: {why}", number + 1));
            if let Some(rest) = line.strip_prefix(SIGNING_LINE) {
                let pkcs8 = Zeroizing::new(decode_base64url(rest.trim()).ok_or_else(|| bad("key is not base64url"))?);
                signing.push(Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| bad("not an Ed25519 PKCS#8 key"))?);
            } else if let Some(rest) = line.strip_prefix(PUBLIC_LINE) {
                previous
                    .push(ReceiptPublicKey::parse(rest).map_err(|_| bad("public key is not 32 bytes of base64url"))?);
            } else {
                return Err(bad("starts with neither 'tollgate-receipt-key v1' nor 'tollgate-receipt-public v1'"));
            }
        }
        let key_pair = signing.pop().ok_or_else(|| file_error(shown, "holds no signing key"))?;
        previous.extend(signing.iter().map(public_of));
        let public_key = public_of(&key_pair);
        previous.retain(|key| *key != public_key);
        previous.reverse();
        let path = path.map(Path::to_owned);
        Ok(Self { inner: Arc::new(Inner { key_pair, public_key, previous, path, issued: Mutex::default() }) })
    }
}

fn public_of(key_pair: &Ed25519KeyPair) -> ReceiptPublicKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key_pair.public_key().as_ref());
    ReceiptPublicKey::from_bytes(bytes)
}

/// Rotates the receipt key file: a new signing key becomes current and every older key is kept
/// by its public half only (to verify the receipts it signed). The file is replaced atomically.
/// Servers pick the new key up when they restart. Returns the new public key.
pub fn rotate_receipt_key_file(path: &Path) -> Result<ReceiptPublicKey> {
    let old = ReceiptSigner::load(path)?;
    let mut contents = String::new();
    for key in old.inner.previous.iter().rev().chain(std::iter::once(&old.inner.public_key)) {
        contents.push_str(&format!("{PUBLIC_LINE} {}\n", key.to_base64url()));
    }
    let contents = Zeroizing::new(contents + &signing_line(&generate(path)?));
    let rotated = ReceiptSigner::parse(Some(path), &contents)?;
    replace(path, &contents).map_err(|error| file_error(path, error))?;
    Ok(rotated.public_key())
}

fn generate(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| file_error(path, "the system random generator failed"))?;
    Ok(Zeroizing::new(document.as_ref().to_vec()))
}

fn signing_line(pkcs8: &[u8]) -> String {
    format!("{SIGNING_LINE} {}\n", URL_SAFE_NO_PAD.encode(pkcs8))
}

fn file_error(path: &Path, why: impl fmt::Display) -> Error {
    if path.as_os_str().is_empty() {
        return Error::Config(format!("receipt key: {why}"));
    }
    Error::Config(format!("receipt key file {}: {why}", path.display()))
}

/// Creates `path` (refused if it exists) readable by its owner only, with `contents`, synced.
fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// A private temporary file beside `path`, synced, renamed over it: a crash leaves the old file
/// or the new one, never a mix.
fn replace(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut suffix = [0u8; 8];
    SystemRandom::new().fill(&mut suffix).map_err(|_| std::io::Error::other("the system random generator failed"))?;
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().ok_or_else(|| std::io::Error::other("is not a file path"))?);
    name.push(format!(".{}.tmp", u64::from_be_bytes(suffix)));
    let temporary = path.with_file_name(name);
    let written = write_new(&temporary, contents).and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    #[cfg(unix)]
    {
        let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::File::open(directory)?.sync_all()?;
    }
    Ok(())
}

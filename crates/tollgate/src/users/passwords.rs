//! bcrypt, off the async runtime: hashing and verifying run on tokio's blocking pool, and every
//! verification costs the configured bcrypt cost — against a dummy hash of that cost when the user
//! is unknown, and padded with dummy runs when the stored hash was made at a lower cost — so a login
//! costs the same whether or not the account exists, whatever cost its hash was made at.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::OnceCell;
use tollgate_types::{Password, PasswordHash};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The bcrypt cost used when none is configured.
pub(crate) const DEFAULT_COST: u32 = 12;
/// The lowest cost accepted outside tests.
pub(crate) const MIN_COST: u32 = 10;

#[derive(Debug)]
pub(crate) struct Passwords {
    cost: u32,
    dummy: OnceCell<PasswordHash>,
    /// Dummy hashes at lower costs, for padding a verification against an older, cheaper hash.
    padding: tokio::sync::Mutex<HashMap<u32, PasswordHash>>,
    verifications: AtomicU64,
    hashes: AtomicU64,
    /// bcrypt work done by verifications, in units of one round (`2^cost` per run).
    work: AtomicU64,
}

fn hashing_failed() -> Error {
    Error::Config("password hashing failed".to_owned())
}

impl Passwords {
    pub(crate) fn new(cost: u32) -> Self {
        Self {
            cost,
            dummy: OnceCell::new(),
            padding: tokio::sync::Mutex::new(HashMap::new()),
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            work: AtomicU64::new(0),
        }
    }

    pub(crate) fn cost(&self) -> u32 {
        self.cost
    }

    /// Hashes a new password at the configured cost.
    pub(crate) async fn hash(&self, password: &Password) -> Result<PasswordHash> {
        let cost = self.cost;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        // `Password` guarantees at most 72 bytes, so bcrypt never drops a byte of it. (The crate's
        // `non_truncating_hash` would refuse exactly 72 bytes: it counts its own NUL terminator.)
        let bytes = Zeroizing::new(password.expose().as_bytes().to_vec());
        let text = tokio::task::spawn_blocking(move || bcrypt::hash(bytes.as_slice(), cost))
            .await
            .map_err(|_| hashing_failed())?
            .map_err(|_| hashing_failed())?;
        Ok(PasswordHash::parse(&text)?)
    }

    /// Makes sure the dummy hash exists, so that the first login for an unknown user does not pay
    /// for creating it (which would make it measurably slower than a login for a known user).
    pub(crate) async fn warm_up(&self) -> Result<()> {
        self.dummy().await.map(drop)
    }

    async fn dummy(&self) -> Result<&PasswordHash> {
        self.dummy.get_or_try_init(|| random_hash(self.cost)).await
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no user; `false`
    /// for the dummy. The bcrypt work is the configured cost's either way: a hash made at a lower cost
    /// `s` is followed by dummy runs at costs `s, s+1, …, cost-1` (2^s + … + 2^(cost-1) = 2^cost − 2^s).
    pub(crate) async fn verify(&self, password: &Password, hash: Option<&PasswordHash>) -> Result<bool> {
        let (hash, real) = match hash {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy().await?.clone(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let stored_cost = hash.cost();
        let matched = self.run(password.expose().as_bytes().to_vec(), hash).await?;
        for cost in stored_cost.max(bcrypt_min_cost())..self.cost {
            let pad = self.padding_hash(cost).await?;
            self.run(b"padding".to_vec(), pad).await?;
        }
        Ok(matched && real)
    }

    /// One bcrypt verification on the blocking pool; a stored hash bcrypt cannot read matches nothing.
    async fn run(&self, password: Vec<u8>, hash: PasswordHash) -> Result<bool> {
        self.work.fetch_add(1u64 << hash.cost().min(63), Ordering::Relaxed);
        let password = Zeroizing::new(password);
        Ok(tokio::task::spawn_blocking(move || bcrypt::verify(password.as_slice(), hash.as_str()))
            .await
            .map_err(|_| hashing_failed())?
            .unwrap_or(false))
    }

    /// The dummy hash at `cost`, made on first use.
    async fn padding_hash(&self, cost: u32) -> Result<PasswordHash> {
        let mut padding = self.padding.lock().await;
        if let Some(hash) = padding.get(&cost) {
            return Ok(hash.clone());
        }
        let hash = random_hash(cost).await?;
        padding.insert(cost, hash.clone());
        Ok(hash)
    }

    /// Whether a hash should be made again at the configured cost (after a successful login).
    pub(crate) fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        hash.cost() != self.cost
    }

    /// bcrypt work done by verifications so far, in rounds (`2^cost` per run): lets tests prove that
    /// every login costs the configured cost, whatever the stored hash's.
    pub(crate) fn work(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }

    /// How many bcrypt verifications ran (for metrics and for tests that prove no shortcut is taken).
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many passwords were hashed.
    pub(crate) fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// The cost of the dummy hash (once made), which must equal the configured cost.
    pub(crate) fn dummy_cost(&self) -> Option<u32> {
        self.dummy.get().map(PasswordHash::cost)
    }
}

/// The lowest cost bcrypt accepts.
const fn bcrypt_min_cost() -> u32 {
    4
}

/// A bcrypt hash of a random password at `cost`.
async fn random_hash(cost: u32) -> Result<PasswordHash> {
    let mut random = Zeroizing::new([0u8; 24]);
    SystemRandom::new().fill(random.as_mut()).map_err(|_| hashing_failed())?;
    let text = tokio::task::spawn_blocking(move || {
        let password: Zeroizing<String> = Zeroizing::new(random.iter().map(|b| format!("{b:02x}")).collect());
        bcrypt::hash(password.as_bytes(), cost)
    })
    .await
    .map_err(|_| hashing_failed())?
    .map_err(|_| hashing_failed())?;
    Ok(PasswordHash::parse(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_dummy_each_run_bcrypt_once() {
        let passwords = Passwords::new(4);
        let hash = passwords.hash(&Password::new("correct horse battery".into()).unwrap()).await.unwrap();
        assert_eq!(hash.cost(), 4);
        let right = Password::presented("correct horse battery".into()).unwrap();
        assert!(passwords.verify(&right, Some(&hash)).await.unwrap());
        let wrong = Password::presented("wrong horse battery".into()).unwrap();
        assert!(!passwords.verify(&wrong, Some(&hash)).await.unwrap());
        let anything = Password::presented("correct horse battery".into()).unwrap();
        assert!(!passwords.verify(&anything, None).await.unwrap());
        assert_eq!((passwords.verifications(), passwords.hashes()), (3, 1));
        assert_eq!(passwords.dummy_cost(), Some(4));
    }

    #[tokio::test]
    async fn a_cheaper_stored_hash_is_padded_to_the_configured_cost() {
        let old = Passwords::new(4).hash(&Password::new("correct horse battery".into()).unwrap()).await.unwrap();
        let passwords = Passwords::new(6);
        let wrong = Password::presented("wrong horse battery".into()).unwrap();
        assert!(!passwords.verify(&wrong, Some(&old)).await.unwrap());
        assert_eq!(passwords.work(), 1 << 6, "2^4 + 2^4 + 2^5");
        let unknown = Password::presented("wrong horse battery".into()).unwrap();
        assert!(!passwords.verify(&unknown, None).await.unwrap());
        assert_eq!(passwords.work(), 2 << 6, "the dummy at the configured cost");
        let right = Password::presented("correct horse battery".into()).unwrap();
        assert!(passwords.verify(&right, Some(&old)).await.unwrap(), "padding does not change the answer");
        assert!(passwords.needs_rehash(&old));
    }
}

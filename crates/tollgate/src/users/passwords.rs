//! bcrypt, off the async runtime: hashing and verifying run on tokio's blocking pool, and every
//! verification runs bcrypt exactly once — against a dummy hash of the same cost when the user is
//! unknown — so a login costs the same whether or not the account exists.

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
    verifications: AtomicU64,
    hashes: AtomicU64,
}

fn hashing_failed() -> Error {
    Error::Config("password hashing failed".to_owned())
}

impl Passwords {
    pub(crate) fn new(cost: u32) -> Self {
        Self { cost, dummy: OnceCell::new(), verifications: AtomicU64::new(0), hashes: AtomicU64::new(0) }
    }

    pub(crate) fn cost(&self) -> u32 {
        self.cost
    }

    /// Hashes a new password at the configured cost.
    pub(crate) async fn hash(&self, password: Password) -> Result<PasswordHash> {
        let cost = self.cost;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        // `Password` guarantees at most 72 bytes, so bcrypt never drops a byte of it. (The crate's
        // `non_truncating_hash` would refuse exactly 72 bytes: it counts its own NUL terminator.)
        let text = tokio::task::spawn_blocking(move || bcrypt::hash(password.expose(), cost))
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
        let cost = self.cost;
        self.dummy
            .get_or_try_init(|| async move {
                let mut random = Zeroizing::new([0u8; 24]);
                SystemRandom::new().fill(random.as_mut()).map_err(|_| hashing_failed())?;
                let text = tokio::task::spawn_blocking(move || {
                    let password: Zeroizing<String> =
                        Zeroizing::new(random.iter().map(|b| format!("{b:02x}")).collect());
                    bcrypt::hash(password.as_bytes(), cost)
                })
                .await
                .map_err(|_| hashing_failed())?
                .map_err(|_| hashing_failed())?;
                Ok(PasswordHash::parse(&text)?)
            })
            .await
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no user. Runs
    /// bcrypt exactly once either way; `false` for the dummy.
    pub(crate) async fn verify(&self, password: Password, hash: Option<&PasswordHash>) -> Result<bool> {
        let (hash, real) = match hash {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy().await?.clone(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password.expose(), hash.as_str()))
            .await
            .map_err(|_| hashing_failed())?
            // A stored hash bcrypt cannot read matches nothing.
            .unwrap_or(false);
        Ok(matched && real)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_dummy_each_run_bcrypt_once() {
        let passwords = Passwords::new(4);
        let hash = passwords.hash(Password::new("correct horse battery".into()).unwrap()).await.unwrap();
        assert_eq!(hash.cost(), 4);
        let right = Password::presented("correct horse battery".into()).unwrap();
        assert!(passwords.verify(right, Some(&hash)).await.unwrap());
        let wrong = Password::presented("wrong horse battery".into()).unwrap();
        assert!(!passwords.verify(wrong, Some(&hash)).await.unwrap());
        let anything = Password::presented("correct horse battery".into()).unwrap();
        assert!(!passwords.verify(anything, None).await.unwrap());
        assert_eq!((passwords.verifications(), passwords.hashes()), (3, 1));
        assert_eq!(passwords.dummy_cost(), Some(4));
    }
}

//! Token hashing: HMAC-SHA256 under a server key ("pepper"), so a leaked database alone cannot
//! be used to test guesses. Tokens are 256-bit random, so a fast keyed hash is the right tool
//! (bcrypt is for low-entropy passwords).

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

use crate::{PresentedSecret, ValidationError};

/// The stored form of a token: 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps raw bytes read back from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, as stored.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a hash from a byte slice of exactly 32 bytes (a database column).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but eight hex digits are enough to tell two apart in a log.
        write!(f, "TokenHash({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// Which server key produced a hash, stored beside it so keys can be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

/// HMAC-SHA256 keys: one current key that hashes new tokens, and older keys still accepted on verify.
/// Cloning copies the keys (one hasher per manager, say); `Debug` shows only the key ids.
#[derive(Clone)]
pub struct TokenHasher {
    current: (KeyId, hmac::Key),
    previous: Vec<(KeyId, hmac::Key)>,
}

impl TokenHasher {
    /// The shortest accepted key.
    pub const MIN_KEY_BYTES: usize = 32;

    /// A hasher with `current` as the key for new tokens. Keys shorter than 32 bytes are refused.
    pub fn new(current_id: KeyId, current_key: &[u8]) -> Result<Self, ValidationError> {
        Ok(Self { current: (current_id, Self::key(current_key)?), previous: Vec::new() })
    }

    /// Also accepts hashes made under an older key (during key rotation).
    pub fn with_previous_key(mut self, id: KeyId, key: &[u8]) -> Result<Self, ValidationError> {
        self.previous.push((id, Self::key(key)?));
        Ok(self)
    }

    fn key(bytes: &[u8]) -> Result<hmac::Key, ValidationError> {
        if bytes.len() < Self::MIN_KEY_BYTES {
            return Err(ValidationError::new("hash_key", "must be at least 32 bytes"));
        }
        let bytes = Zeroizing::new(bytes.to_vec());
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    /// The key that hashes new tokens.
    pub fn current_key_id(&self) -> KeyId {
        self.current.0
    }

    /// The hash of `secret` under the current key.
    pub fn hash<'a>(&self, secret: impl Into<PresentedSecret<'a>>) -> TokenHash {
        Self::hash_with(&self.current.1, secret.into())
    }

    /// The hashes of `secret` under each older key, for a lookup after a miss under the current key.
    pub fn previous_hashes<'a>(
        &'a self,
        secret: impl Into<PresentedSecret<'a>>,
    ) -> impl Iterator<Item = (KeyId, TokenHash)> + 'a {
        let secret = secret.into();
        self.previous.iter().map(move |(id, key)| (*id, Self::hash_with(key, secret)))
    }

    fn hash_with(key: &hmac::Key, secret: PresentedSecret<'_>) -> TokenHash {
        let tag = hmac::sign(key, secret.expose().as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        TokenHash(bytes)
    }
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHasher")
            .field("current_key_id", &self.current.0)
            .field("previous_key_ids", &self.previous.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TokenPrefix, TokenSecret};

    #[test]
    fn a_clone_hashes_alike() {
        let secret = TokenSecret::generate(&TokenPrefix::default()).unwrap();
        let hasher = TokenHasher::new(KeyId(3), &[5u8; 32]).unwrap();
        let copy = hasher.clone();
        assert_eq!(copy.hash(&secret), hasher.hash(&secret));
        assert_eq!(copy.current_key_id(), KeyId(3));
    }

    #[test]
    fn hashes_depend_on_the_key() {
        let secret = TokenSecret::generate(&TokenPrefix::default()).unwrap();
        let one = TokenHasher::new(KeyId(1), &[1; 32]).unwrap();
        let two = TokenHasher::new(KeyId(2), &[2; 32]).unwrap().with_previous_key(KeyId(1), &[1; 32]).unwrap();
        assert_eq!(one.hash(&secret), one.hash(&secret));
        assert_ne!(one.hash(&secret), two.hash(&secret));
        assert_eq!(two.previous_hashes(&secret).next().unwrap().1, one.hash(&secret));
        assert!(TokenHasher::new(KeyId(1), &[0; 16]).is_err());
        assert!(!format!("{two:?}").contains("[1"));
    }

    #[test]
    fn a_presented_secret_hashes_as_its_owned_copy() {
        let prefix = TokenPrefix::default();
        let secret = TokenSecret::generate(&prefix).unwrap();
        let presented = PresentedSecret::parse(&prefix, secret.expose()).unwrap();
        let hasher = TokenHasher::new(KeyId(2), &[2; 32]).unwrap().with_previous_key(KeyId(1), &[1; 32]).unwrap();
        assert_eq!(hasher.hash(presented), hasher.hash(&secret));
        let older: Vec<_> = hasher.previous_hashes(presented).collect();
        assert_eq!(older, hasher.previous_hashes(&secret).collect::<Vec<_>>());
    }
}

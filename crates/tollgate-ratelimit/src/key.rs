//! Whose budget a check spends: 16 bytes, so a key is `Copy`, hashes fast and costs no allocation to store.

use std::fmt;

use tollgate_types::{TokenId, UserId};

/// The identity a budget belongs to, usually a token's id.
///
/// A fixed 16-byte value rather than a generic key: the trait stays object-safe (`Arc<dyn RateLimiter>`),
/// a million keys fit in a few tens of megabytes, and a shared backend can name the key without a
/// serialization format. Keys of different kinds (tokens, users) should use different limiters.
///
/// ```
/// use tollgate_ratelimit::RateKey;
/// use tollgate_types::TokenId;
///
/// let token_id = TokenId::generate();
/// assert_eq!(RateKey::from(token_id).as_bytes(), token_id.as_bytes());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RateKey([u8; 16]);

impl RateKey {
    /// A key from 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The key's 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl From<TokenId> for RateKey {
    fn from(token_id: TokenId) -> Self {
        Self(*token_id.as_bytes())
    }
}

impl From<UserId> for RateKey {
    fn from(user_id: UserId) -> Self {
        Self(*user_id.as_bytes())
    }
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateKey(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_bytes() {
        let token_id = TokenId::generate();
        let user_id = UserId::generate();
        assert_eq!(RateKey::from(token_id).as_bytes(), token_id.as_bytes());
        assert_eq!(RateKey::from(user_id).as_bytes(), user_id.as_bytes());
        assert_ne!(RateKey::from(token_id), RateKey::from(TokenId::generate()));
    }

    #[test]
    fn debug_shows_the_bytes_in_hex() {
        let key = RateKey::from_bytes([0xab; 16]);
        assert_eq!(format!("{key:?}"), format!("RateKey({})", "ab".repeat(16)));
    }
}

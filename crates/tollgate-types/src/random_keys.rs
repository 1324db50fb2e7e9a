//! Hashing for maps keyed by values that are already random and never chosen by a caller.

use std::hash::{BuildHasher, Hasher};

/// A [`BuildHasher`] for maps whose keys are uniformly random and that no caller can choose: HMAC
/// outputs under the server key ([`TokenHash`](crate::TokenHash)). SipHash's protection against
/// chosen colliding keys buys nothing there (nobody can predict an HMAC without the key), and the
/// verify path looks such a map up on every request. Ids are not such keys: an admin may import a
/// token under an id of their choosing, so maps keyed by ids, names or addresses keep the standard
/// hasher.
///
/// ```
/// # use std::collections::HashMap;
/// # use tollgate_types::{KeyId, RandomKeys, TokenHasher, TokenPrefix, TokenSecret};
/// let hasher = TokenHasher::new(KeyId(1), &[7; 32]).unwrap();
/// let secret = TokenSecret::generate(&TokenPrefix::default()).unwrap();
/// let mut cached = HashMap::with_hasher(RandomKeys);
/// cached.insert(hasher.hash(&secret), "record");
/// assert_eq!(cached.get(&hasher.hash(&secret)), Some(&"record"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomKeys;

impl BuildHasher for RandomKeys {
    type Hasher = RandomKeyHasher;

    fn build_hasher(&self) -> RandomKeyHasher {
        RandomKeyHasher(0)
    }
}

/// Folds the key 8 bytes at a time with an add and a multiply, then rotates the well-mixed high
/// bits into the low ones hash tables pick buckets by (rustc-hash's construction).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomKeyHasher(u64);

/// An odd constant with well-spread bits (FxHash's).
const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

impl RandomKeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for RandomKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("chunks_exact yields 8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{KeyId, TokenHasher, TokenId, TokenPrefix, TokenSecret};

    /// hashbrown picks the bucket from the low bits and a tag from the top 7: both must spread.
    fn spread(hashes: &[u64]) -> (usize, usize) {
        let low: HashSet<u64> = hashes.iter().map(|hash| hash & 1023).collect();
        let top: HashSet<u64> = hashes.iter().map(|hash| hash >> 57).collect();
        (low.len(), top.len())
    }

    #[test]
    fn token_hashes_and_ids_spread_over_buckets_and_tags() {
        let hasher = TokenHasher::new(KeyId(1), &[7; 32]).unwrap();
        let prefix = TokenPrefix::default();
        let token_hashes: Vec<u64> =
            (0..4096).map(|_| RandomKeys.hash_one(hasher.hash(&TokenSecret::generate(&prefix).unwrap()))).collect();
        // 4,096 uniform draws over 1,024 buckets leave about 18 empty; over 128 tags, none.
        let (buckets, tags) = spread(&token_hashes);
        assert!(buckets > 980 && tags == 128, "{buckets} buckets, {tags} tags");
        // Ids made in one burst share their time prefix; their random tail must still spread.
        let ids: Vec<u64> = (0..4096).map(|_| RandomKeys.hash_one(TokenId::generate())).collect();
        let (buckets, tags) = spread(&ids);
        assert!(buckets > 980 && tags == 128, "{buckets} buckets, {tags} tags");
    }

    #[test]
    fn equal_keys_hash_alike_and_lengths_matter() {
        let id = TokenId::generate();
        assert_eq!(RandomKeys.hash_one(id), RandomKeys.hash_one(id));
        assert_ne!(RandomKeys.hash_one([0u8; 3].as_slice()), RandomKeys.hash_one([0u8; 4].as_slice()));
    }
}

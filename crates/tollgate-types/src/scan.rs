//! Finding tollgate secrets in arbitrary bytes (source files, git blobs, webhook payloads): pure,
//! no I/O, and fast enough to run over a whole repository's history.
//!
//! A secret is `<prefix>_` followed by exactly 49 base62 characters (43 body + 6 check), with a
//! word boundary on both sides (the byte before the prefix and the byte after the check are not
//! ASCII letters or digits), whose checksum matches. The checksum is what keeps random base62
//! strings out: only about one in 2^32 passes it.
//!
//! The first pass is `memchr` over `_` (vectorized); each `_` is rejected after a byte or two unless
//! 49 alphanumeric bytes follow it, and only then is the word before it compared to the prefixes.

use crate::TokenPrefix;
use crate::TokenSecret;

/// The digits after `<prefix>_`: 43 body digits and 6 check digits.
const TAIL: usize = 49;

/// A tollgate secret found in a byte slice.
///
/// `Debug` shows the position and the redacted secret only.
#[derive(Debug)]
pub struct Found {
    /// The secret, checksum verified. Redacted in `Debug`; zeroized on drop.
    pub secret: TokenSecret,
    /// Which of the scanner's prefixes it has (an index into [`SecretScanner::prefixes`]).
    pub prefix: usize,
    /// The byte offset of its first character.
    pub offset: usize,
    /// Its line, from 1 (lines end at `\n`).
    pub line: usize,
    /// Its column in bytes, from 1.
    pub column: usize,
}

/// Finds secrets of a set of prefixes.
///
/// ```
/// # use tollgate_types::{SecretScanner, TokenPrefix, TokenSecret};
/// let prefix = TokenPrefix::default();
/// let secret = TokenSecret::generate(&prefix).unwrap();
/// let text = format!("fn main() {{\n    let key = \"{}\";\n}}\n", secret.expose());
/// let scanner = SecretScanner::new(vec![prefix]);
/// let found = scanner.scan(text.as_bytes());
/// assert_eq!(found.len(), 1);
/// assert_eq!((found[0].line, found[0].column), (2, 16));
/// assert_eq!(found[0].secret.expose(), secret.expose());
/// ```
#[derive(Debug, Clone)]
pub struct SecretScanner {
    prefixes: Vec<TokenPrefix>,
}

impl SecretScanner {
    /// A scanner for `prefixes` (duplicates are dropped, order kept).
    pub fn new(prefixes: Vec<TokenPrefix>) -> Self {
        let mut unique: Vec<TokenPrefix> = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            if !unique.contains(&prefix) {
                unique.push(prefix);
            }
        }
        Self { prefixes: unique }
    }

    /// The prefixes it looks for.
    pub fn prefixes(&self) -> &[TokenPrefix] {
        &self.prefixes
    }

    /// Every secret in `bytes`, in order. Bytes need not be UTF-8.
    pub fn scan(&self, bytes: &[u8]) -> Vec<Found> {
        let mut found = Vec::new();
        let mut lines = LineCounter::default();
        // A secret's tail cannot hold `_`, so after a hit the search goes on past it.
        let mut from = 0;
        while let Some(relative) = memchr::memchr(b'_', &bytes[from..]) {
            let underscore = from + relative;
            from = underscore + 1;
            let Some(tail_end) = tail_end(bytes, underscore) else { continue };
            let Some((start, prefix)) = self.prefix_before(bytes, underscore) else { continue };
            // Only ASCII here (prefix, `_`, base62), so the slice is valid UTF-8.
            let Ok(text) = std::str::from_utf8(&bytes[start..tail_end]) else { continue };
            let Ok(secret) = TokenSecret::parse(&self.prefixes[prefix], text) else { continue };
            let (line, column) = lines.position(bytes, start);
            found.push(Found { secret, prefix, offset: start, line, column });
            from = tail_end;
        }
        found
    }

    /// The prefix that ends just before `underscore` and starts at a word boundary: its start and index.
    fn prefix_before(&self, bytes: &[u8], underscore: usize) -> Option<(usize, usize)> {
        self.prefixes.iter().enumerate().find_map(|(index, prefix)| {
            let text = prefix.as_str().as_bytes();
            let start = underscore.checked_sub(text.len())?;
            let at_boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            (at_boundary && &bytes[start..underscore] == text).then_some((start, index))
        })
    }
}

/// Where the 49 base62 characters after `underscore` end, when they are there and followed by a
/// word boundary.
fn tail_end(bytes: &[u8], underscore: usize) -> Option<usize> {
    let end = underscore + 1 + TAIL;
    if end > bytes.len() || bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // Most `_` in source text start a short identifier: the last byte rejects them before the loop.
    if !bytes[end - 1].is_ascii_alphanumeric() {
        return None;
    }
    bytes[underscore + 1..end].iter().all(u8::is_ascii_alphanumeric).then_some(end)
}

/// Line and column of offsets asked for in increasing order, counting each byte once.
#[derive(Debug, Default)]
struct LineCounter {
    counted_to: usize,
    newlines: usize,
    line_start: usize,
}

impl LineCounter {
    fn position(&mut self, bytes: &[u8], offset: usize) -> (usize, usize) {
        for newline in memchr::memchr_iter(b'\n', &bytes[self.counted_to..offset]) {
            self.newlines += 1;
            self.line_start = self.counted_to + newline + 1;
        }
        self.counted_to = offset;
        (self.newlines + 1, offset - self.line_start + 1)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;

    fn prefixes() -> Vec<TokenPrefix> {
        ["tg", "tgr", "tga"].iter().map(|text| TokenPrefix::parse(text).unwrap()).collect()
    }

    fn scanner() -> SecretScanner {
        SecretScanner::new(prefixes())
    }

    fn token(prefix: &str) -> String {
        TokenSecret::generate(&TokenPrefix::parse(prefix).unwrap()).unwrap().expose().to_owned()
    }

    /// The (prefix, line, column) of every secret `scanner()` finds in `text`, checking each is the
    /// text at its offset.
    fn check(text: &str) -> Vec<(&'static str, usize, usize)> {
        scanner()
            .scan(text.as_bytes())
            .into_iter()
            .map(|found| {
                let secret = found.secret.expose();
                assert_eq!(&text[found.offset..found.offset + secret.len()], secret);
                (["tg", "tgr", "tga"][found.prefix], found.line, found.column)
            })
            .collect()
    }

    #[test]
    fn finds_every_kind_with_its_position() {
        let (api, refresh, agent) = (token("tg"), token("tgr"), token("tga"));
        let text = format!("first line\nTOKEN={api}\n  \"{refresh}\", '{agent}'\n");
        assert_eq!(check(&text), [("tg", 2, 7), ("tgr", 3, 4), ("tga", 3, 61)]);
    }

    #[test]
    fn finds_secrets_at_the_edges_and_side_by_side() {
        let (one, two) = (token("tg"), token("tga"));
        assert_eq!(check(&one), [("tg", 1, 1)]);
        assert_eq!(check(&format!("{one} {two}")), [("tg", 1, 1), ("tga", 1, 54)]);
        assert_eq!(check(&format!("x_{one}_y")), [("tg", 1, 3)]);
    }

    #[test]
    fn ignores_a_wrong_checksum() {
        let mut bytes = token("tg").into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(check(std::str::from_utf8(&bytes).unwrap()), []);
    }

    #[test]
    fn ignores_characters_glued_on_either_side() {
        let real = token("tg");
        for glued in
            [format!("x{real}"), format!("{real}x"), format!("7{real}"), format!("{real}0"), format!("Z{real}Z")]
        {
            assert_eq!(check(&glued), [], "{glued}");
        }
        // Cut short or a prefix the scanner does not know.
        assert_eq!(check(&real[..real.len() - 1]), []);
        assert_eq!(check(&token("xy")), []);
    }

    #[test]
    fn ignores_random_base62_strings() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = "(tg|tgr|tga)_[0-9A-Za-z]{49}";
        for _ in 0..10_000 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            assert_eq!(check(&text), [], "{text}");
        }
    }

    #[test]
    fn duplicate_prefixes_are_dropped() {
        let prefix = TokenPrefix::default();
        let scanner = SecretScanner::new(vec![prefix.clone(), prefix.clone()]);
        assert_eq!(scanner.prefixes(), [prefix]);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let real = token("tg");
        let found = scanner().scan(real.as_bytes());
        assert!(!format!("{found:?}").contains(&real[3..]));
    }

    proptest! {
        #[test]
        fn random_bytes_never_yield_a_secret(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert!(scanner().scan(&bytes).is_empty());
        }

        #[test]
        fn random_text_of_prefixes_and_base62_never_yields_a_secret(text in "((tg|tgr|tga)_|[0-9A-Za-z_ \n]){0,400}") {
            prop_assert!(scanner().scan(text.as_bytes()).is_empty());
        }

        #[test]
        fn an_inserted_secret_is_always_found(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            at in any::<proptest::sample::Index>(),
            kind in 0usize..3,
        ) {
            let real = token(["tg", "tgr", "tga"][kind]);
            let at = at.index(bytes.len() + 1);
            // A boundary on both sides, as a secret written into a file has.
            let inserted: Vec<u8> = [b" ", real.as_bytes(), b"\n"].concat();
            bytes.splice(at..at, inserted);
            let found = scanner().scan(&bytes);
            prop_assert!(found.iter().any(|found| found.secret.expose() == real && found.offset == at + 1 && found.prefix == kind));
            let line = bytes[..=at].iter().filter(|&&b| b == b'\n').count() + 1;
            prop_assert!(found.iter().any(|found| found.offset == at + 1 && found.line == line));
        }
    }
}

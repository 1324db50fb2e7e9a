//! The API token format `<prefix>_<body><check>` and the secret that holds one.
//!
//! body = 32 CSPRNG bytes as 43 base62 digits; check = CRC32 of `<prefix>_<body>` as 6 base62 digits.
//! A wrong prefix, bad character, bad length or bad checksum is refused by [`TokenSecret::parse`]
//! before anything touches storage.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::ValidationError;
use crate::base62;

const BODY_BYTES: usize = 32;
const BODY_DIGITS: usize = 43;
const CHECK_DIGITS: usize = 6;

/// The token prefix: 1–16 characters of `a-z 0-9`, default `tg`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenPrefix(String);

impl TokenPrefix {
    /// Validates a prefix.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.is_empty() || text.len() > 16 {
            return Err(ValidationError::new("prefix", "must be 1 to 16 characters"));
        }
        if !text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return Err(ValidationError::new("prefix", "may contain only lowercase letters a-z and digits 0-9"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The length of a whole token with this prefix.
    pub fn token_len(&self) -> usize {
        self.0.len() + 1 + BODY_DIGITS + CHECK_DIGITS
    }
}

impl Default for TokenPrefix {
    fn default() -> Self {
        Self("tg".to_owned())
    }
}

/// Why a presented token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// It does not start with `<prefix>_`.
    #[error("token does not start with the expected prefix")]
    WrongPrefix,
    /// It is longer or shorter than every token of this prefix.
    #[error("token has the wrong length")]
    WrongLength,
    /// It holds a character outside base62.
    #[error("token contains a character outside 0-9, A-Z, a-z")]
    BadCharacter,
    /// Its checksum does not match: a typo or a forgery.
    #[error("token checksum does not match")]
    BadChecksum,
    /// The system random number generator failed (never for a presented token).
    #[error("the system random number generator failed")]
    RandomFailure,
}

/// An API token in plaintext. It exists only between generation and the one response that shows it,
/// or between receiving a request and hashing it.
///
/// No `Display`, no `Serialize`; `Debug` is redacted; the text is zeroized on drop.
///
/// ```
/// # use tollgate_types::{TokenPrefix, TokenSecret};
/// let prefix = TokenPrefix::default();
/// let secret = TokenSecret::generate(&prefix).unwrap();
/// assert_eq!(format!("{secret:?}"), "TokenSecret(<redacted>)");
/// let again = TokenSecret::parse(&prefix, secret.expose()).unwrap();
/// assert_eq!(again.expose(), secret.expose());
/// ```
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate(prefix: &TokenPrefix) -> Result<Self, TokenFormatError> {
        let mut body = Zeroizing::new([0u8; BODY_BYTES]);
        SystemRandom::new().fill(body.as_mut()).map_err(|_| TokenFormatError::RandomFailure)?;
        let mut text = Zeroizing::new(String::with_capacity(prefix.token_len()));
        text.push_str(prefix.as_str());
        text.push('_');
        base62::encode_fixed(body.as_ref(), BODY_DIGITS, &mut text);
        let check = base62::encode_u32(crc32fast::hash(text.as_bytes()));
        text.extend(check.iter().map(|&digit| digit as char));
        Ok(Self(text))
    }

    /// Checks the format and checksum of a presented token, and keeps a copy that is zeroized on
    /// drop. Cheap: no allocation on refusal. The verify path borrows instead
    /// ([`PresentedSecret::parse`]).
    pub fn parse(prefix: &TokenPrefix, text: &str) -> Result<Self, TokenFormatError> {
        PresentedSecret::parse(prefix, text).map(|presented| Self(Zeroizing::new(presented.0.to_owned())))
    }

    /// The plaintext, to show once or to hash. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A non-secret hint for lists and logs: the prefix, the first 4 and the last 4 characters of the rest.
    pub fn display_hint(&self) -> String {
        let (prefix, rest) = self.0.split_once('_').unwrap_or(("", &self.0));
        let start = &rest[..4.min(rest.len())];
        let end = &rest[rest.len().saturating_sub(4)..];
        format!("{prefix}_{start}…{end}")
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl Drop for TokenSecret {
    fn drop(&mut self) {
        // `Zeroizing` clears the string; this keeps the intent visible where the type is defined.
        self.0.zeroize();
    }
}

/// A presented token whose format and checksum were checked, borrowed from the request that
/// carries it. Verifies hash it without a copy: a copy zeroized on drop would leave the request's
/// own bytes where they are, and copying and clearing it was a thirtieth of a verify's work.
///
/// No `Display`, no `Serialize`; `Debug` is redacted.
///
/// ```
/// # use tollgate_types::{PresentedSecret, TokenPrefix, TokenSecret};
/// let prefix = TokenPrefix::default();
/// let secret = TokenSecret::generate(&prefix).unwrap();
/// let presented = PresentedSecret::parse(&prefix, secret.expose()).unwrap();
/// assert_eq!(format!("{presented:?}"), "PresentedSecret(<redacted>)");
/// assert!(PresentedSecret::parse(&prefix, "tg_not-a-token").is_err());
/// ```
#[derive(Clone, Copy)]
pub struct PresentedSecret<'a>(&'a str);

impl<'a> PresentedSecret<'a> {
    /// Checks the format and checksum of a presented token. Cheap: no allocation.
    pub fn parse(prefix: &TokenPrefix, text: &'a str) -> Result<Self, TokenFormatError> {
        let bytes = text.as_bytes();
        let head = prefix.as_str().len();
        if bytes.len() != prefix.token_len() {
            return Err(TokenFormatError::WrongLength);
        }
        if !text.starts_with(prefix.as_str()) || bytes[head] != b'_' {
            return Err(TokenFormatError::WrongPrefix);
        }
        // One branch-free pass over one slice (body and check digits are contiguous; base62 is exactly
        // ASCII alphanumeric), which the compiler turns into vector compares: this runs on every verify.
        if !bytes[head + 1..].iter().fold(true, |all, &b| all & b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::BadCharacter);
        }
        let (signed, check) = bytes.split_at(bytes.len() - CHECK_DIGITS);
        if base62::encode_u32(crc32fast::hash(signed)) != check {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(Self(text))
    }

    /// The plaintext, to hash. Never log it.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl<'a> From<&'a TokenSecret> for PresentedSecret<'a> {
    fn from(secret: &'a TokenSecret) -> Self {
        Self(secret.expose())
    }
}

impl fmt::Debug for PresentedSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn prefix() -> TokenPrefix {
        TokenPrefix::default()
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let secret = TokenSecret::generate(&prefix()).unwrap();
        let text = secret.expose();
        assert_eq!(text.len(), 2 + 1 + 43 + 6);
        assert!(text.starts_with("tg_"));
        let hint = secret.display_hint();
        assert!(hint.starts_with(&text[..7]) && hint.ends_with(&text[text.len() - 4..]));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let secret = TokenSecret::generate(&prefix()).unwrap();
        let text = secret.expose();
        let other = TokenPrefix::parse("xy").unwrap();
        assert_eq!(TokenSecret::parse(&other, text).unwrap_err(), TokenFormatError::WrongPrefix);
        assert_eq!(TokenSecret::parse(&prefix(), &text[1..]).unwrap_err(), TokenFormatError::WrongLength);
        let bad_char = format!("{}!{}", &text[..10], &text[11..]);
        assert_eq!(TokenSecret::parse(&prefix(), &bad_char).unwrap_err(), TokenFormatError::BadCharacter);
        assert_eq!(TokenSecret::parse(&prefix(), "").unwrap_err(), TokenFormatError::WrongLength);
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(TokenPrefix::parse("tg").is_ok());
        assert!(TokenPrefix::parse("acme2").is_ok());
        for bad in ["", "TG", "t-g", "abcdefghijklmnopq"] {
            assert_eq!(TokenPrefix::parse(bad).unwrap_err().field, "prefix", "{bad}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = TokenSecret::generate(&prefix()).unwrap();
        let debug = format!("{secret:?} {:?}", Some(&secret));
        assert!(!debug.contains(&secret.expose()[3..]));
    }

    proptest! {
        #[test]
        fn parse_accepts_what_generate_makes(prefix_text in "[a-z0-9]{1,16}") {
            let prefix = TokenPrefix::parse(&prefix_text).unwrap();
            let secret = TokenSecret::generate(&prefix).unwrap();
            let parsed = TokenSecret::parse(&prefix, secret.expose()).unwrap();
            prop_assert_eq!(parsed.expose(), secret.expose());
        }

        #[test]
        fn any_single_character_change_is_refused(position in 3usize..52, replacement in "[0-9A-Za-z]") {
            let secret = TokenSecret::generate(&prefix()).unwrap();
            let mut bytes = secret.expose().as_bytes().to_vec();
            let new = replacement.as_bytes()[0];
            prop_assume!(bytes[position] != new);
            bytes[position] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(TokenSecret::parse(&prefix(), &changed).unwrap_err(), TokenFormatError::BadChecksum);
        }
    }
}

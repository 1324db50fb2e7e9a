//! Provider API keys (OpenAI, Anthropic, …) held in the vault: their metadata, the secret in
//! plaintext only between the request and the encryption, and the masked hint shown instead.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Description, Metadata, Microdollars, OwnerId, OwnerName, ProjectId, ProviderKeyId, ProviderName};
use crate::{Timestamp, ValidationError};

/// Providers whose API address is known; any other provider needs a base URL.
pub const KNOWN_PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];

/// Where a provider's API lives: `https://…` (or `http://` to a loopback host), no user info, no
/// query or fragment (a secret must never travel in a URL), at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Validates a base URL.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let bad = |reason: &str| Err(ValidationError::new("base_url", reason));
        if text.len() > 2048 {
            return bad("must be at most 2048 characters");
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad("must not contain spaces or control characters");
        }
        let rest = if let Some(rest) = text.strip_prefix("https://") {
            rest
        } else if let Some(rest) = text.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if !matches!(host, "localhost" | "127.0.0.1" | "[") && !rest.starts_with("[::1]") {
                return bad("must use https (plain http only to localhost)");
            }
            rest
        } else {
            return bad("must start with https://");
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return bad("must name a host");
        }
        if authority.contains('@') {
            return bad("must not contain user info (credentials never go in a URL)");
        }
        if text.contains('?') || text.contains('#') {
            return bad("must not contain a query or fragment (credentials never go in a URL)");
        }
        Ok(Self(text.trim_end_matches('/').to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A provider's API key in plaintext: between the request that brings it and its encryption, or
/// between its decryption and the one response that delivers it. Redacted `Debug`, zeroized on drop,
/// no `Display` and no `Serialize`.
pub struct ProviderSecret(Zeroizing<String>);

impl ProviderSecret {
    /// Validates a key: 8–4096 characters, printable ASCII without spaces.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.len() < 8 || text.len() > 4096 {
            return Err(ValidationError::new("secret", "must be 8 to 4096 characters"));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ValidationError::new("secret", "must be printable ASCII without spaces"));
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// A decrypted key read back from the vault (already validated when it was stored).
    pub fn from_decrypted(bytes: Zeroizing<Vec<u8>>) -> Result<Self, ValidationError> {
        let text = std::str::from_utf8(&bytes).map_err(|_| ValidationError::new("secret", "is not UTF-8"))?;
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The plaintext, to encrypt or to deliver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form shown in lists: the text up to its first `-` (at most 8 characters), `…`,
    /// and the last 4 characters, e.g. `sk-…abcd`.
    pub fn masked(&self) -> String {
        let text = self.0.as_str();
        let head = match text.find('-') {
            Some(dash) if dash < 8 => &text[..=dash],
            _ => "",
        };
        format!("{head}…{}", &text[text.len() - 4..])
    }
}

impl fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderSecret(<redacted>)")
    }
}

/// A validated request to store a provider key (the secret travels beside it, as a [`ProviderSecret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProviderKey {
    /// Which provider.
    pub provider: ProviderName,
    /// Its API address; required for providers outside [`KNOWN_PROVIDERS`].
    pub base_url: Option<BaseUrl>,
    /// What it is for.
    pub description: Description,
    /// Who owns it.
    pub owner: OwnerId,
    /// The project it is assigned to: only that project's agents may be given it.
    pub project: Option<ProjectId>,
    /// What is left on the provider account, when tracked.
    pub balance: Option<Microdollars>,
    /// Free-form metadata.
    pub metadata: Metadata,
}

impl NewProviderKey {
    /// Checks that a provider outside the known ones names its base URL.
    pub fn check(&self) -> Result<(), ValidationError> {
        check_base_url(&self.provider, self.base_url.as_ref())
    }
}

/// Checks that `provider` has an address: a known provider, or a base URL.
pub fn check_base_url(provider: &ProviderName, base_url: Option<&BaseUrl>) -> Result<(), ValidationError> {
    if base_url.is_none() && !KNOWN_PROVIDERS.contains(&provider.as_str()) {
        return Err(ValidationError::new(
            "base_url",
            "is required for a provider other than openai, anthropic, google",
        ));
    }
    Ok(())
}

/// A provider key as listed: metadata and the masked hint, never the secret or its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderKeyRecord {
    /// Its id.
    pub id: ProviderKeyId,
    /// Which provider.
    pub provider: ProviderName,
    /// Its API address.
    pub base_url: Option<BaseUrl>,
    /// What it is for.
    pub description: Description,
    /// Who owns it.
    pub owner: OwnerId,
    /// The owner's name when it was stored, for display.
    pub owner_name: OwnerName,
    /// The project it is assigned to.
    pub project: Option<ProjectId>,
    /// Whether it may be delivered.
    pub enabled: bool,
    /// What is left on the provider account, when tracked (microdollars).
    #[serde(rename = "balance_micros")]
    pub balance: Option<Microdollars>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// The secret, masked (`sk-…abcd`).
    pub masked: String,
    /// Which vault master key wraps its data key.
    pub master_key_id: u32,
    /// When it was stored.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
}

/// A change to a provider key. `None` leaves a field as it is; `Some(None)` clears an optional one.
/// A new secret travels beside the patch, already encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderKeyPatch {
    /// New notes.
    pub description: Option<Description>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// New balance, or `Some(None)` for untracked.
    pub balance: Option<Option<Microdollars>>,
    /// New base URL, or `Some(None)` for the provider's own.
    pub base_url: Option<Option<BaseUrl>>,
    /// Another project, or `Some(None)` for none.
    pub project: Option<Option<ProjectId>>,
    /// New metadata.
    pub metadata: Option<Metadata>,
}

impl ProviderKeyPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_redacted() {
        let secret = ProviderSecret::parse("sk-proj-1234567890abcd").unwrap();
        assert_eq!(secret.masked(), "sk-…abcd");
        assert_eq!(ProviderSecret::parse("abcdefghijkl").unwrap().masked(), "…ijkl");
        assert_eq!(format!("{secret:?}"), "ProviderSecret(<redacted>)");
        assert_eq!(ProviderSecret::parse("short").unwrap_err().field, "secret");
        assert_eq!(ProviderSecret::parse("has a space in it").unwrap_err().field, "secret");
    }

    #[test]
    fn base_urls_carry_no_credentials() {
        assert_eq!(BaseUrl::parse("https://api.example.com/v1/").unwrap().as_str(), "https://api.example.com/v1");
        assert!(BaseUrl::parse("http://localhost:8080").is_ok());
        for bad in ["ftp://x", "http://example.com", "https://user:pw@example.com", "https://x.com/?key=1", "https://"]
        {
            let error = BaseUrl::parse(bad).unwrap_err();
            assert_eq!(error.field, "base_url", "{bad}");
            assert!(!error.reason.contains("pw"), "{bad}");
        }
    }
}

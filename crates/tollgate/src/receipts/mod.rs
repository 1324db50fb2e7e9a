//! Signed usage receipts: what a metered request (a settle, a budget report, a usage event) was
//! billed, signed with Ed25519 under the server's receipt key so a customer can check it offline.
//!
//! The signature covers [`Receipt::canonical_bytes`], a fixed-order text independent of how the
//! JSON is laid out; `docs/http-api.md` ("Usage receipts") specifies it for verifiers in any language.

mod keys;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_types::{Microdollars, ValidationError};

pub use keys::{ReceiptPublicKey, ReceiptSigner, rotate_receipt_key_file};

/// The one receipt format there is so far.
pub const RECEIPT_VERSION: u32 = 1;
/// The signature algorithm, as `GET /v1/receipts/key` names it.
pub const RECEIPT_ALGORITHM: &str = "Ed25519";
/// The first line of the canonical form.
const CANONICAL_HEADER: &str = "tollgate-receipt";

/// Which metered request a receipt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptKind {
    /// `POST /v1/reservations/{id}/settle`.
    Settle,
    /// `POST /v1/budget/leases/{id}/report`.
    Report,
    /// One event of `POST /v1/usage`.
    Usage,
}

impl ReceiptKind {
    /// The name used in JSON and in the canonical form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settle => "settle",
            Self::Report => "report",
            Self::Usage => "usage",
        }
    }
}

/// What a receipt states, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptContent {
    /// The kind of request.
    pub kind: ReceiptKind,
    /// The token billed (for a report, the agent credential that made it).
    pub token_id: String,
    /// The agent, for a report.
    pub agent_id: Option<String>,
    /// What the request was made against: the reservation (`rsv_…`) or the lease (`bls_…`).
    pub reference: Option<String>,
    /// The caller's idempotency key: the event id, or a report's `request_id`.
    pub request_id: Option<String>,
    /// The provider, where known.
    pub provider: Option<String>,
    /// The model, where known.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// What was billed.
    pub cost: Microdollars,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// A signed receipt, as it appears in a response (`"receipt": {…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The format version ([`RECEIPT_VERSION`]).
    pub version: u32,
    /// The signing key's id: the first 8 bytes of SHA-256 of its raw public key, in hex.
    pub key_id: String,
    /// The kind of request.
    pub kind: ReceiptKind,
    /// The token billed.
    pub token_id: String,
    /// The agent, for a report.
    pub agent_id: Option<String>,
    /// The reservation or lease.
    pub reference: Option<String>,
    /// The caller's idempotency key.
    pub request_id: Option<String>,
    /// The provider.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// What was billed, in microdollars.
    pub cost_micros: Microdollars,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Ed25519 over [`Receipt::canonical_bytes`], base64url without padding.
    pub signature: String,
}

/// The answer of [`Receipt::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The signature is good under the key with this id.
    Valid {
        /// The key that signed it.
        key_id: String,
    },
    /// It is not a receipt these keys signed, or it was changed since.
    Invalid {
        /// Why, without echoing the receipt.
        reason: &'static str,
    },
}

impl Receipt {
    /// The bytes the signature covers: `tollgate-receipt` then one `name=value` line per field in
    /// a fixed order (version, key_id, kind, token_id, agent_id, reference, request_id, provider,
    /// model, input_tokens, output_tokens, cost_micros, at), each ended by `\n`; an absent value is
    /// empty, numbers are decimal, strings verbatim. `None` when a value holds a control character
    /// or a present value is empty, which no receipt this server signs has.
    pub fn canonical_bytes(&self) -> Option<Vec<u8>> {
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        let fields: [(&str, String); 13] = [
            ("version", self.version.to_string()),
            ("key_id", self.key_id.clone()),
            ("kind", self.kind.as_str().to_owned()),
            ("token_id", self.token_id.clone()),
            ("agent_id", optional(&self.agent_id)),
            ("reference", optional(&self.reference)),
            ("request_id", optional(&self.request_id)),
            ("provider", optional(&self.provider)),
            ("model", optional(&self.model)),
            ("input_tokens", self.input_tokens.to_string()),
            ("output_tokens", self.output_tokens.to_string()),
            ("cost_micros", self.cost_micros.micros().to_string()),
            ("at", self.at.clone()),
        ];
        let present = [&self.agent_id, &self.reference, &self.request_id, &self.provider, &self.model];
        if present.iter().any(|value| value.as_deref() == Some(""))
            || self.token_id.is_empty()
            || self.key_id.is_empty()
            || self.at.is_empty()
        {
            return None;
        }
        let mut text = format!("{CANONICAL_HEADER}\n");
        for (name, value) in fields {
            if value.chars().any(char::is_control) {
                return None;
            }
            text.push_str(name);
            text.push('=');
            text.push_str(&value);
            text.push('\n');
        }
        Some(text.into_bytes())
    }

    /// Checks the signature against whichever of `keys` has the receipt's key id.
    pub fn verify(&self, keys: &[ReceiptPublicKey]) -> Verification {
        let invalid = |reason| Verification::Invalid { reason };
        if self.version != RECEIPT_VERSION {
            return invalid("unknown receipt version");
        }
        let Some(key) = keys.iter().find(|key| key.key_id() == self.key_id) else {
            return invalid("signed by a key that is not among the keys given");
        };
        let Some(message) = self.canonical_bytes() else {
            return invalid("a field holds a control character or is empty");
        };
        let Some(signature) = keys::decode_base64url(&self.signature) else {
            return invalid("the signature is not base64url");
        };
        if key.verify(&message, &signature) {
            Verification::Valid { key_id: key.key_id().to_owned() }
        } else {
            invalid("the signature does not match the receipt")
        }
    }

    /// Every receipt in a JSON document: the document itself when it is one, its `receipt`, and
    /// the `receipt` of each of its `events` (a `POST /v1/usage` batch answer).
    pub fn find_all(document: &Value) -> Result<Vec<Receipt>, ValidationError> {
        let parse = |value: &Value| {
            serde_json::from_value::<Receipt>(value.clone())
                .map_err(|_| ValidationError::new("receipt", "is not a receipt of this format"))
        };
        if document.get("signature").is_some() {
            return Ok(vec![parse(document)?]);
        }
        let mut found = Vec::new();
        if let Some(receipt) = document.get("receipt").filter(|value| !value.is_null()) {
            found.push(parse(receipt)?);
        }
        for event in document.get("events").and_then(Value::as_array).into_iter().flatten() {
            if let Some(receipt) = event.get("receipt").filter(|value| !value.is_null()) {
                found.push(parse(receipt)?);
            }
        }
        if found.is_empty() {
            return Err(ValidationError::new("receipt", "the document holds no receipt"));
        }
        Ok(found)
    }
}

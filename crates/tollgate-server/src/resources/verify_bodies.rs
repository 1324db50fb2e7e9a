//! The body of a valid verify, kept per token record. It is a function of the record the verify
//! cache answered with (and of the permission and secret that matched), so a token verified again
//! and again is serialized once, not on every request: serializing it was an eighth of a cached
//! verify's instructions.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::response::Response;
use tollgate::{Permission, TokenContext, TokenId, TokenRecord};

use super::verify_view::{VerifyResult, json_response};

/// How many tokens' bodies are kept. When full, the map starts again empty: a flood of distinct
/// tokens costs a serialization each, as without the map, never memory.
const CAPACITY: usize = 16_384;

/// Valid-verify bodies by token.
#[derive(Debug, Default)]
pub(crate) struct VerifyBodies {
    by_token: RwLock<HashMap<TokenId, Kept>>,
}

#[derive(Debug)]
struct Kept {
    /// The record the body was made from, compared by address: a token changed since (revoked,
    /// rotated, edited, its owner demoted) is a new record. Held, so the address cannot be reused
    /// while the body is kept.
    record: Arc<TokenRecord>,
    permission: Permission,
    via_previous_secret: bool,
    json: Bytes,
}

impl Kept {
    fn made_from(&self, context: &TokenContext) -> bool {
        Arc::ptr_eq(&self.record, &context.record)
            && self.permission == context.effective_permission
            && self.via_previous_secret == context.via_previous_secret
    }
}

impl VerifyBodies {
    /// The `200 application/json` answer of `VerifyResult::valid(context)`.
    pub(crate) fn valid_response(&self, context: &TokenContext) -> Response {
        json_response(self.valid_json(context))
    }

    fn valid_json(&self, context: &TokenContext) -> serde_json::Result<Bytes> {
        let by_token = self.by_token.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = by_token.get(&context.token_id)
            && kept.made_from(context)
        {
            return Ok(kept.json.clone());
        }
        drop(by_token);
        let json = Bytes::from(VerifyResult::valid(context).to_json()?);
        let mut by_token = self.by_token.write().unwrap_or_else(PoisonError::into_inner);
        if by_token.len() >= CAPACITY && !by_token.contains_key(&context.token_id) {
            by_token.clear();
        }
        let kept = Kept {
            record: Arc::clone(&context.record),
            permission: context.effective_permission,
            via_previous_secret: context.via_previous_secret,
            json: json.clone(),
        };
        by_token.insert(context.token_id, kept);
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::example_record;

    fn context_of(record: Arc<TokenRecord>) -> TokenContext {
        TokenContext {
            token_id: record.id,
            effective_permission: record.effective_permission(),
            record,
            via_previous_secret: false,
            rate_limit: None,
        }
    }

    fn serialized(context: &TokenContext) -> Bytes {
        Bytes::from(VerifyResult::valid(context).to_json().unwrap())
    }

    #[test]
    fn a_kept_body_is_the_serialization_of_the_same_record() {
        let bodies = VerifyBodies::default();
        let context = context_of(Arc::new(example_record()));
        let first = bodies.valid_json(&context).unwrap();
        assert_eq!(first, serialized(&context));
        let again = bodies.valid_json(&context).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr(), "the second verify reuses the body");
    }

    #[test]
    fn a_changed_record_permission_or_secret_is_serialized_anew() {
        let bodies = VerifyBodies::default();
        let record = example_record();
        let before = context_of(Arc::new(record.clone()));
        bodies.valid_json(&before).unwrap();

        let mut renamed = record.clone();
        renamed.name = tollgate::TokenName::parse("renamed").unwrap();
        let renamed = context_of(Arc::new(renamed));
        let body = bodies.valid_json(&renamed).unwrap();
        assert_eq!(body, serialized(&renamed));
        assert!(String::from_utf8_lossy(&body).contains("\"name\":\"renamed\""));

        let mut demoted = context_of(Arc::clone(&renamed.record));
        demoted.effective_permission = Permission::ReadOnly;
        assert_eq!(bodies.valid_json(&demoted).unwrap(), serialized(&demoted));

        let mut previous = context_of(Arc::clone(&renamed.record));
        previous.via_previous_secret = true;
        let body = bodies.valid_json(&previous).unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"via_previous_secret\":true"));
    }

    #[test]
    fn the_map_stays_within_its_capacity() {
        let bodies = VerifyBodies::default();
        for _ in 0..CAPACITY + 10 {
            bodies.valid_json(&context_of(Arc::new(example_record()))).unwrap();
        }
        assert!(bodies.by_token.read().unwrap().len() <= CAPACITY);
    }
}

//! Fuzzes the token format (`TokenPrefix::parse`, `TokenSecret::parse`) and the typed id parsers.
//!
//! Properties: no panic; a token that parses is exactly the bytes given and its hint shows no more
//! than 8 characters of the body; an id that parses displays as the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_types::{
    AgentId, AuditId, BudgetRequestId, HolderId, LeaseId, ProjectId, ProviderKeyId, ReservationId, ServiceAccountId,
    SessionId, TokenId, TokenPrefix, TokenSecret, TraceId, UserId,
};

fn id_round_trip<T: std::str::FromStr + std::fmt::Display>(text: &str) {
    if let Ok(id) = text.parse::<T>() {
        assert_eq!(id.to_string(), text, "an id that parses displays as its own text");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let default_prefix = TokenPrefix::default();
    check_token(&default_prefix, text);
    // The first line, when it is a valid prefix, is the prefix for the rest.
    if let Some((first, rest)) = text.split_once('\n') {
        if let Ok(prefix) = TokenPrefix::parse(first) {
            assert_eq!(prefix.as_str(), first);
            check_token(&prefix, rest);
        }
    }
    id_round_trip::<TokenId>(text);
    id_round_trip::<UserId>(text);
    id_round_trip::<ServiceAccountId>(text);
    id_round_trip::<ProjectId>(text);
    id_round_trip::<ReservationId>(text);
    id_round_trip::<HolderId>(text);
    id_round_trip::<SessionId>(text);
    id_round_trip::<AgentId>(text);
    id_round_trip::<ProviderKeyId>(text);
    id_round_trip::<LeaseId>(text);
    id_round_trip::<BudgetRequestId>(text);
    id_round_trip::<TraceId>(text);
    id_round_trip::<AuditId>(text);
});

fn check_token(prefix: &TokenPrefix, text: &str) {
    if let Ok(secret) = TokenSecret::parse(prefix, text) {
        assert_eq!(secret.expose(), text);
        assert_eq!(text.len(), prefix.token_len());
        let hint = secret.display_hint();
        assert!(hint.starts_with(prefix.as_str()));
        assert!(hint.chars().count() <= prefix.as_str().len() + 1 + 4 + 1 + 4);
        assert_eq!(format!("{secret:?}"), "TokenSecret(<redacted>)");
    }
}

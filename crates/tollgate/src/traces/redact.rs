//! Secrets cut out of captured payloads by pattern before they are stored: tollgate's own tokens
//! and credentials, common provider keys, bearer credentials and JWTs.

use std::sync::LazyLock;

use regex::Regex;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // tollgate tokens, agent credentials and refresh tokens: <prefix>_<43 base62 body><6 base62 checksum>.
        r"\b[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{49}\b",
        // OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-) keys.
        r"\bsk-[A-Za-z0-9_-]{16,}",
        // Google API keys.
        r"\bAIza[0-9A-Za-z_-]{35}",
        // AWS access key ids.
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        // GitHub tokens.
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",
        // Slack tokens.
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
        // JWTs.
        r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        // Whatever follows `Bearer ` (any case).
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
    ]
    .into_iter()
    .map(|pattern| Regex::new(pattern).expect("the redaction patterns compile"))
    .collect()
});

/// `text` with every secret-shaped substring replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    for pattern in PATTERNS.iter() {
        if pattern.is_match(&text) {
            text = pattern.replace_all(&text, REDACTED).into_owned();
        }
    }
    text
}

/// `text` cut to at most `budget` bytes on a character boundary; whether it was cut.
pub(super) fn cut(text: &str, budget: usize) -> (&str, bool) {
    if text.len() <= budget {
        return (text, false);
    }
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_shapes_are_redacted_and_the_rest_is_kept() {
        let token = format!("tg_{}", "A1b2".repeat(12) + "Z");
        let credential = format!("tga_{}", "x9Y8".repeat(12) + "q");
        let cases = [
            format!("Authorization: Bearer {token}"),
            format!("{{\"key\":\"{credential}\"}}"),
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123".to_owned(),
            "sk-ant-api03-abcdefghijklmnopqrstuv".to_owned(),
            "key=AIzaSyA1234567890abcdefghijklmnopqrstuv".to_owned(),
            "AKIAABCDEFGHIJKLMNOP".to_owned(),
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789".to_owned(),
            "xoxb-1234567890-abcdefghij".to_owned(),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".to_owned(),
            "authorization: bearer opaque-token-value".to_owned(),
        ];
        for case in cases {
            let redacted = redact(&case);
            assert!(redacted.contains(REDACTED), "{case} → {redacted}");
            for secret in [&token, &credential] {
                assert!(!redacted.contains(secret.as_str()));
            }
            assert!(!redacted.contains("abcdefghijklmnop"), "{case} → {redacted}");
        }
        let plain = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hello, tg_ is a prefix"}]}"#;
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn cuts_keep_whole_characters() {
        assert_eq!(cut("héllo", 10), ("héllo", false));
        assert_eq!(cut("héllo", 2), ("h", true));
        assert_eq!(cut("héllo", 3), ("hé", true));
        assert_eq!(cut("abc", 0), ("", true));
    }
}

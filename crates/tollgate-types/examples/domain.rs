//! The domain types from their docs alone: a token is generated, parsed back, hashed for storage,
//! found in a file by the leak scanner; durations, money and limits are parsed at the edge and
//! refused with the field at fault. Run: `cargo run -p tollgate-types --example domain`.

use tollgate_types::{
    KeyId, LimitKey, LimitSpec, LimitSubject, Metric, Microdollars, SecretScanner, TokenHasher, TokenId, TokenPrefix,
    TokenSecret, ValidationError, Window, parse_duration,
};

fn main() -> Result<(), ValidationError> {
    // A token: `<prefix>_<43 base62 body><6 base62 CRC32>`; only its HMAC is ever stored.
    let prefix = TokenPrefix::parse("acme")?;
    let secret = TokenSecret::generate(&prefix).map_err(|_| ValidationError::new("token", "no randomness"))?;
    let presented = secret.expose().to_owned();
    let parsed = TokenSecret::parse(&prefix, &presented).map_err(|_| ValidationError::new("token", "malformed"))?;
    let hasher = TokenHasher::new(KeyId(1), &[42u8; 32])?;
    assert_eq!(hasher.hash(&parsed), hasher.hash(&secret), "the same secret, the same stored hash");
    println!("token {} (debug output redacts it: {parsed:?})", secret.display_hint());

    // A typo is caught by the checksum before any lookup.
    let mut typo = presented.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ASCII");
    assert!(TokenSecret::parse(&prefix, &typo).is_err());

    // The leak scanner finds it in source text, with its line, and nothing else.
    let file =
        format!("[deploy]\nregion = \"eu\"\napi_key = \"{presented}\"\nnot_a_token = \"acme_{}\"\n", "x".repeat(49));
    let found = SecretScanner::new(vec![prefix]).scan(file.as_bytes());
    assert_eq!(found.len(), 1);
    println!("leak scanner: line {}, column {}", found[0].line, found[0].column);

    // Parsing happens once, at the edge; bad input names its field and never echoes the value.
    let grace = parse_duration("grace", "15m")?;
    let price = Microdollars::parse_dollars("price", "2.50")?;
    println!("grace {grace:?}, price {price} = {} microdollars", price.micros());
    let refused = parse_duration("grace", "soon").unwrap_err();
    println!("refused: {refused}");

    // A limit: at most 1,000 requests a day for one token.
    let key =
        LimitKey { subject: LimitSubject::Token(TokenId::generate()), metric: Metric::Requests, window: Window::Day };
    let limit = LimitSpec::new(key, 1_000, false)?;
    println!("limit {} = {}", limit.key(), limit.max());
    Ok(())
}

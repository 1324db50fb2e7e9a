//! Access JWTs: HS256 with a key id (`kid`) so signing keys can rotate, and a validation that pins
//! the algorithm and checks `exp`, `nbf`, `iss`, `aud`, `sub`, `sid` and the token type.
//!
//! Time checks use tollgate's [`Clock`](tollgate_types::Clock), not the library's wall clock, so
//! expiry is tested with a manual clock and agrees with every other expiry in tollgate.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tollgate_types::{Refusal, RefusalCode, SessionId, Timestamp, UserId, ValidationError};
use zeroize::Zeroizing;

use crate::{Error, KeyFile, Result};

/// The value of the `token_use` claim of an access token. Refresh tokens are not JWTs at all, so a
/// refresh token can never pass as an access token; the claim also keeps any future JWT type apart.
const ACCESS_TOKEN_USE: &str = "access";

/// A JWT longer than this is refused before parsing (a cheap bound on work per request).
const MAX_JWT_BYTES: usize = 4096;

struct JwtKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// HS256 signing keys: the current one signs, older ones (during rotation) still verify.
pub struct JwtKeys {
    current: JwtKey,
    previous: Vec<JwtKey>,
}

impl JwtKeys {
    /// The shortest accepted key (HS256 wants at least the hash size).
    pub const MIN_KEY_BYTES: usize = 32;

    /// Keys with `secret` (at least 32 bytes) as the current signing key, named `kid`
    /// (1–64 characters of `A-Z a-z 0-9 . _ -`).
    pub fn new(kid: &str, secret: &[u8]) -> Result<Self, ValidationError> {
        Ok(Self { current: Self::key(kid, secret)?, previous: Vec::new() })
    }

    /// Also accepts tokens signed with an older key (while its tokens can still be live).
    pub fn with_previous_key(mut self, kid: &str, secret: &[u8]) -> Result<Self, ValidationError> {
        let key = Self::key(kid, secret)?;
        if self.find(kid).is_some() {
            return Err(ValidationError::new("jwt_kid", "is used by another key"));
        }
        self.previous.push(key);
        Ok(self)
    }

    /// Keys from a key file (`tollgate-key v1 <id> <hex>`): its id becomes the `kid`.
    pub fn from_key_file(file: &KeyFile) -> Result<Self> {
        Ok(Self::new(&file.key_id.0.to_string(), file.key_bytes())?)
    }

    /// The `kid` of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    fn key(kid: &str, secret: &[u8]) -> Result<JwtKey, ValidationError> {
        let kid_ok = !kid.is_empty()
            && kid.len() <= 64
            && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !kid_ok {
            return Err(ValidationError::new("jwt_kid", "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"));
        }
        if secret.len() < Self::MIN_KEY_BYTES {
            return Err(ValidationError::new("jwt_key", "must be at least 32 bytes"));
        }
        Ok(JwtKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    fn find(&self, kid: &str) -> Option<&JwtKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|key| key.kid == kid)
    }
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("current_kid", &self.current.kid)
            .field("previous_kids", &self.previous.iter().map(|key| key.kid.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A signed access JWT. A bearer secret: redacted `Debug`, no `Display`, zeroized on drop.
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// The compact JWT, for the response that hands it out. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// What a valid access token says. Only its signature and times have been checked: whether the
/// session is still live and what the user may do now comes from the store (see
/// [`UserService::authenticate_access`](crate::UserService::authenticate_access)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessClaims {
    /// `sub`: the user.
    pub user_id: UserId,
    /// `sid`: the session.
    pub session_id: SessionId,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`.
    pub expires_at: Timestamp,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

/// The claims as they travel.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    token_use: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Issues and validates access JWTs.
pub struct JwtCodec {
    keys: JwtKeys,
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: Duration,
    validation: Validation,
}

impl fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCodec")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

fn refused(code: RefusalCode) -> Refusal {
    Refusal::new(code)
}

impl JwtCodec {
    /// A codec issuing tokens from `issuer` for `audience` that live for `ttl`, accepting clocks
    /// that differ by up to `leeway` on `exp` and `nbf`.
    pub fn new(keys: JwtKeys, issuer: &str, audience: &str, ttl: Duration, leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // exp and nbf are checked against tollgate's clock below; the library checks presence only.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Self { keys, issuer: issuer.to_owned(), audience: audience.to_owned(), ttl, leeway, validation }
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for `user` in `session`, valid from `now` for the codec's lifetime.
    pub fn issue(&self, user: UserId, session: SessionId, now: Timestamp) -> Result<(AccessToken, Timestamp)> {
        let expires_at = now.saturating_add(self.ttl);
        let claims = WireClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid: session.to_string(),
            token_use: ACCESS_TOKEN_USE.to_owned(),
            iat: now.unix_seconds(),
            nbf: now.unix_seconds(),
            exp: expires_at.unix_seconds(),
        };
        // No `jti` and no `typ`: nothing uses them (revocation is per session, via `sid`), and every
        // byte is decoded, hashed and parsed again on each request.
        let mut header = Header::new(Algorithm::HS256);
        header.typ = None;
        header.kid = Some(self.keys.current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.keys.current.encoding)
            .map_err(|_| Error::Config("cannot sign an access token".into()))?;
        Ok((AccessToken(Zeroizing::new(token)), Timestamp::from_unix_micros(claims.exp * 1_000_000)))
    }

    /// Checks signature, algorithm (HS256 only), `kid`, issuer, audience, token type, `nbf` and `exp`
    /// at `now`. Expired tokens are `expired`; every other failure is `malformed`, without detail
    /// (the detail would help only someone probing).
    pub fn validate(&self, token: &str, now: Timestamp) -> Result<AccessClaims, Refusal> {
        if token.len() > MAX_JWT_BYTES {
            return Err(refused(RefusalCode::Malformed));
        }
        // With one key there is nothing to choose, so the header is parsed once, by `decode`; during a
        // rotation the `kid` picks the key first. Either way the token's `kid` must name the key that
        // verified it, and `decode` refuses any algorithm but HS256 before using the key.
        let key = if self.keys.previous.is_empty() {
            &self.keys.current
        } else {
            let header = jsonwebtoken::decode_header(token).map_err(|_| refused(RefusalCode::Malformed))?;
            header.kid.as_deref().and_then(|kid| self.keys.find(kid)).ok_or(refused(RefusalCode::Malformed))?
        };
        let data = jsonwebtoken::decode::<WireClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| refused(RefusalCode::Malformed))?;
        if data.header.alg != Algorithm::HS256 || data.header.kid.as_deref() != Some(key.kid.as_str()) {
            return Err(refused(RefusalCode::Malformed));
        }
        let kid = key.kid.clone();
        let claims = data.claims;
        if claims.token_use != ACCESS_TOKEN_USE {
            return Err(refused(RefusalCode::Malformed));
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let now_seconds = now.unix_seconds();
        if claims.nbf > now_seconds.saturating_add(leeway) {
            return Err(refused(RefusalCode::Malformed));
        }
        if claims.exp.saturating_add(leeway) <= now_seconds {
            return Err(refused(RefusalCode::Expired));
        }
        let seconds = |value: i64| Timestamp::from_unix_micros(value.saturating_mul(1_000_000));
        Ok(AccessClaims {
            user_id: UserId::parse(&claims.sub).map_err(|_| refused(RefusalCode::Malformed))?,
            session_id: SessionId::parse(&claims.sid).map_err(|_| refused(RefusalCode::Malformed))?,
            issued_at: seconds(claims.iat),
            expires_at: seconds(claims.exp),
            kid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(keys: JwtKeys) -> JwtCodec {
        JwtCodec::new(keys, "tollgate", "tollgate-api", Duration::from_secs(900), Duration::ZERO)
    }

    const T: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

    #[test]
    fn issued_tokens_validate_until_they_expire() {
        let codec = codec(JwtKeys::new("k1", &[7; 32]).unwrap());
        let (user, session) = (UserId::generate(), SessionId::generate());
        let (token, expires_at) = codec.issue(user, session, T).unwrap();
        assert_eq!(expires_at, T.saturating_add(Duration::from_secs(900)));
        let claims = codec.validate(token.expose(), T).unwrap();
        assert_eq!((claims.user_id, claims.session_id, claims.kid.as_str()), (user, session, "k1"));
        assert_eq!(claims.expires_at, expires_at);
        let late = T.saturating_add(Duration::from_secs(900));
        assert_eq!(codec.validate(token.expose(), late).unwrap_err().code, RefusalCode::Expired);
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    }

    #[test]
    fn rotated_keys_keep_old_tokens_valid_and_unknown_kids_fail() {
        let old = codec(JwtKeys::new("k1", &[1; 32]).unwrap());
        let (token, _) = old.issue(UserId::generate(), SessionId::generate(), T).unwrap();
        let rotated = codec(JwtKeys::new("k2", &[2; 32]).unwrap().with_previous_key("k1", &[1; 32]).unwrap());
        assert_eq!(rotated.validate(token.expose(), T).unwrap().kid, "k1");
        let other = codec(JwtKeys::new("k2", &[2; 32]).unwrap());
        assert_eq!(other.validate(token.expose(), T).unwrap_err().code, RefusalCode::Malformed);
    }

    #[test]
    fn bad_keys_and_kids_are_refused() {
        assert_eq!(JwtKeys::new("k1", &[0; 16]).unwrap_err().field, "jwt_key");
        assert_eq!(JwtKeys::new("k 1", &[0; 32]).unwrap_err().field, "jwt_kid");
        assert!(JwtKeys::new("k1", &[0; 32]).unwrap().with_previous_key("k1", &[1; 32]).is_err());
        let debug = format!("{:?}", JwtKeys::new("k1", &[9; 32]).unwrap());
        assert!(debug.contains("k1") && !debug.contains("9, 9"));
    }
}

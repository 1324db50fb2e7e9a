//! Authentication: `Authorization: Bearer <credential>` → a verified credential → a [`Principal`].
//!
//! An API token verifies through `TokenManager::verify` (IP from the socket peer, or from
//! `X-Forwarded-For` when the peer is a trusted proxy). Authorization is not decided here: the
//! facade checks every operation against `authz.rs` with the principal built here.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use tollgate::{Permission, Principal, TokenContext, VerifyRequest};

use crate::error::ApiError;
use crate::state::{AppState, TrustedProxies};

/// The header naming the tool a gateway is about to call.
pub const TOOL_HEADER: &str = "x-tollgate-tool";

/// The longest credential read from a header; longer values are refused without further work.
const MAX_CREDENTIAL_LEN: usize = 4096;

/// The authenticated caller of a control-API route.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Who is acting, for the facade's authorization: a user (access JWT) or a token whose
    /// permission is capped by its owner's current role.
    pub(crate) principal: Principal,
    /// The verified API token, when the credential is one (an access JWT carries no scopes).
    pub(crate) token: Option<TokenContext>,
    /// The client address, for the audit log.
    pub(crate) ip: Option<IpAddr>,
}

impl Caller {
    /// Whether the caller is an admin or holds `scope`.
    pub(crate) fn is_admin_or_has(&self, scope: &str) -> bool {
        self.principal.level() == Permission::Admin
            || self.token.as_ref().is_some_and(|token| token.record.scopes.iter().any(|held| held.as_str() == scope))
    }

    /// The facade's caller for audited mutations: the principal and the client address.
    pub(crate) fn audited(&self) -> tollgate::Caller {
        tollgate::Caller::new(self.principal.clone()).with_ip(self.ip)
    }
}

/// Whether a bearer credential is an access JWT rather than an API token: API tokens start with
/// the configured prefix and `_` (base62 after it, never a dot); a JWT is three dot-separated parts.
/// Decided without any crypto or storage, so the wrong path is never tried.
pub(crate) fn is_access_jwt(credential: &str, token_prefix: &str) -> bool {
    let is_token = credential.strip_prefix(token_prefix).is_some_and(|rest| rest.starts_with('_'));
    !is_token && credential.bytes().filter(|byte| *byte == b'.').count() == 2
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, &state.settings().trusted_proxies);
        Self::authenticate(state, bearer(&parts.headers)?, ip).await
    }
}

impl Caller {
    /// Authenticates a bearer credential (an access JWT or an API token) from `ip`, reading the
    /// user's or the token owner's current status and role.
    pub(crate) async fn authenticate(state: &AppState, credential: &str, ip: Option<IpAddr>) -> Result<Self, ApiError> {
        if is_access_jwt(credential, state.tokens().prefix().as_str()) {
            let access = state.users().authenticate_access(credential).await?;
            return Ok(Self { principal: access.principal, token: None, ip });
        }
        // Control-API calls name no tool: a token restricted to tools cannot administer tollgate.
        let request = VerifyRequest { ip, tool: None };
        let outcome = state.users().authenticate_token(credential, &request).await;
        observe_outcome(state, outcome.as_ref().map(|_| ()));
        let (token, principal) = outcome?;
        Ok(Self { principal, token: Some(token), ip })
    }
}

/// A caller that holds a stream open: the caller and its credential, kept (in memory, wiped on
/// drop) to authenticate it again while the stream lasts.
pub(crate) struct StreamCaller {
    /// The caller as authenticated when the stream opened.
    pub(crate) caller: Caller,
    /// The bearer credential.
    pub(crate) credential: zeroize::Zeroizing<String>,
}

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, &state.settings().trusted_proxies);
        let credential = zeroize::Zeroizing::new(bearer(&parts.headers)?.to_owned());
        let caller = Caller::authenticate(state, &credential, ip).await?;
        Ok(Self { caller, credential })
    }
}

/// The authenticated agent of an agent route: one of its agent credentials (`tga_…`), verified on
/// the token path. An API token or an access JWT is refused here (`malformed`), as a credential is
/// refused on every other route.
#[derive(Debug, Clone)]
pub(crate) struct AgentCaller {
    /// The verified credential and its agent.
    pub(crate) credential: tollgate::AgentCredentialContext,
    /// The client address, for the audit log.
    pub(crate) ip: Option<IpAddr>,
}

impl AgentCaller {
    /// The facade's caller: the agent as a principal, and the client address.
    pub(crate) fn audited(&self) -> tollgate::Caller {
        tollgate::Caller::new(self.credential.principal()).with_ip(self.ip)
    }
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let agents = state.agents().ok_or_else(ApiError::agents_not_configured)?;
        let ip = client_ip(parts, &state.settings().trusted_proxies);
        let credential = bearer(&parts.headers)?;
        let request = VerifyRequest { ip, tool: None };
        let outcome = agents.authenticate(credential, &request).await;
        observe_outcome(state, outcome.as_ref().map(|_| ()));
        Ok(Self { credential: outcome?, ip })
    }
}

/// The client's address (see [`client_ip`]), for routes that take no bearer credential (login).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(client_ip(parts, &state.settings().trusted_proxies)))
    }
}

/// Counts a verify outcome in the metrics (refusals by code; storage failures are not verdicts).
fn observe_outcome(state: &AppState, outcome: Result<(), &tollgate::Error>) {
    match outcome {
        Ok(()) => state.metrics().observe_verify(Ok(())),
        Err(tollgate::Error::Refused(refusal)) => state.metrics().observe_verify(Err(refusal.code)),
        Err(_) => {}
    }
}

/// Verifies a request's bearer credential (from [`bearer`]), counting the outcome in the metrics.
pub(crate) async fn verify_bearer(
    state: &AppState,
    credential: &str,
    request: &VerifyRequest,
) -> Result<TokenContext, ApiError> {
    let outcome = state.tokens().verify(credential, request).await;
    observe_outcome(state, outcome.as_ref().map(|_| ()));
    Ok(outcome?)
}

/// [`verify_bearer`] that also holds `reservation` against the token's tokens and cost limits.
pub(crate) async fn verify_bearer_reserving(
    state: &AppState,
    credential: &str,
    request: &VerifyRequest,
    reservation: &tollgate::Reservation,
) -> Result<(TokenContext, tollgate::QuotaReservation), ApiError> {
    let outcome = state.tokens().verify_and_reserve(credential, request, reservation).await;
    observe_outcome(state, outcome.as_ref().map(|_| ()));
    Ok(outcome?)
}

/// The credential of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::unauthorized("missing_credential", "send Authorization: Bearer <token>"));
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized("invalid_credential", "send exactly one Authorization header"));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("invalid_credential", "the Authorization header is not ASCII"))?;
    let (scheme, credential) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized("invalid_credential", "the Authorization scheme must be Bearer"));
    }
    let credential = credential.trim();
    if credential.is_empty() || credential.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::unauthorized("invalid_credential", "the bearer credential is empty or too long"));
    }
    Ok(credential)
}

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For` (read from the right, so a client cannot forge it).
pub(crate) fn client_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = peer_address(parts)?.ip();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut forwarded: Vec<IpAddr> = Vec::new();
    for value in parts.headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { return Some(peer) };
        for entry in text.split(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => forwarded.push(ip),
                // A garbled hop list cannot be trusted past this point.
                Err(_) => return Some(peer),
            }
        }
    }
    Some(forwarded.into_iter().rev().find(|ip| !trusted.contains(*ip)).unwrap_or(peer))
}

/// The socket peer, as `axum::serve(… into_make_service_with_connect_info::<SocketAddr>())` records
/// it (or `MockConnectInfo`, which tests layer on, exactly as axum's `ConnectInfo` extractor does).
pub(crate) fn peer_address(parts: &Parts) -> Option<SocketAddr> {
    if let Some(ConnectInfo(address)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(*address);
    }
    parts.extensions.get::<MockConnectInfo<SocketAddr>>().map(|MockConnectInfo(address)| *address)
}

/// The tool named by `X-Tollgate-Tool`, if any (at most 128 characters).
pub(crate) fn tool_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    // A parsed name: looking up by `&str` parses and checks the name on every request.
    const NAME: HeaderName = HeaderName::from_static(TOOL_HEADER);
    let Some(value) = headers.get(NAME) else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::invalid_field("X-Tollgate-Tool", "must be ASCII"))?.trim();
    check_tool(text).map_err(|reason| ApiError::invalid_field("X-Tollgate-Tool", reason))?;
    Ok(Some(text.to_owned()))
}

/// A tool name must be 1–128 characters; whether it is allowed is the token's business.
pub(crate) fn check_tool(tool: &str) -> Result<(), &'static str> {
    if tool.is_empty() {
        return Err("must not be empty");
    }
    if tool.chars().count() > 128 {
        return Err("must be at most 128 characters");
    }
    Ok(())
}

/// The scope a credential needs to verify other callers' tokens (`POST /v1/tokens/verify`).
pub const VERIFY_SCOPE: &str = "tokens:verify";

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, Request};

    use super::*;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let proxy = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(client_ip(&parts("10.0.0.1:1", Some("203.0.113.9")), &none), ip("10.0.0.1"));
        assert_eq!(client_ip(&parts("10.0.0.1:1", Some("203.0.113.9")), &proxy), ip("203.0.113.9"));
        // A client-supplied entry left of the real one is ignored.
        assert_eq!(client_ip(&parts("10.0.0.1:1", Some("1.1.1.1, 203.0.113.9, 10.0.0.2")), &proxy), ip("203.0.113.9"));
        assert_eq!(client_ip(&parts("192.0.2.1:1", Some("203.0.113.9")), &proxy), ip("192.0.2.1"));
        assert_eq!(client_ip(&parts("10.0.0.1:1", Some("garbage")), &proxy), ip("10.0.0.1"));
        assert_eq!(client_ip(&parts("10.0.0.1:1", None), &proxy), ip("10.0.0.1"));
    }

    #[test]
    fn tokens_and_jwts_are_told_apart_by_shape() {
        assert!(is_access_jwt("eyJh.eyJz.sig", "tg"));
        assert!(!is_access_jwt("tg_AbC123", "tg"));
        assert!(!is_access_jwt("tg_a.b.c", "tg"));
        assert!(!is_access_jwt("nodots", "tg"));
        assert!(!is_access_jwt("a.b", "tg"));
        assert!(is_access_jwt("tgx.b.c", "tg"));
    }

    #[test]
    fn the_verify_scope_is_a_valid_scope() {
        assert!(tollgate::Scope::parse(VERIFY_SCOPE).is_ok());
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert_eq!(bearer(&headers("Bearer tg_abc")).unwrap(), "tg_abc");
        assert_eq!(bearer(&headers("bearer  tg_abc ")).unwrap(), "tg_abc");
        assert_eq!(bearer(&HeaderMap::new()).unwrap_err().code(), "missing_credential");
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "tg_abc"] {
            assert_eq!(bearer(&headers(bad)).unwrap_err().code(), "invalid_credential", "{bad}");
        }
        let mut twice = headers("Bearer a");
        twice.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer(&twice).unwrap_err().code(), "invalid_credential");
    }
}

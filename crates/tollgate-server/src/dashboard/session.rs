//! The dashboard's sign-in: cookies that carry a login session, renewed server-side, and the CSRF
//! check every state-changing form passes.
//!
//! A login (the same `UserService::login` as `POST /v1/auth/login`, so lockout and throttling
//! apply) sets three cookies, all `HttpOnly`, `SameSite=Strict`, `Path=/dashboard`, and `Secure`
//! when the request came over HTTPS through a trusted proxy:
//! - `tg_access`: the short-lived access JWT;
//! - `tg_refresh`: the refresh token, exchanged server-side when the access JWT has expired;
//! - `tg_csrf`: a random value every form repeats in its hidden `csrf` field (double submit).
//!
//! Refresh tokens are single use and a reused one ends the session (theft detection), so a page and
//! its live feed renewing at the same moment must not both present it: renewals are serialized here
//! and the outcome of one is handed to a request that presents the same refresh token within
//! [`RENEWAL_REUSE`]. Across several nodes two simultaneous renewals of one session can still
//! collide; the loser is asked to sign in again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use ring::digest;
use tollgate::{Operation, Principal, SessionTokens, Timestamp};
use zeroize::Zeroizing;

use super::error::{HtmlError, to_login};
use crate::auth::{Caller, client_ip, peer_address};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) const ACCESS_COOKIE: &str = "tg_access";
pub(crate) const REFRESH_COOKIE: &str = "tg_refresh";
pub(crate) const CSRF_COOKIE: &str = "tg_csrf";
/// The hidden form field that repeats the CSRF cookie.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// The longest a browser keeps a dashboard session, whatever the refresh token's own lifetime.
const MAX_SESSION: Duration = Duration::from_secs(12 * 3600);
/// How long a renewal's outcome is handed to requests that present the refresh token it used up.
const RENEWAL_REUSE: Duration = Duration::from_secs(10);
/// The longest cookie value read (an access JWT is well under this).
const MAX_COOKIE: usize = 4096;

/// Renewals in flight or just done, by the SHA-256 of the refresh token they used up.
#[derive(Debug, Default)]
pub(crate) struct Renewals(tokio::sync::Mutex<HashMap<[u8; 32], Renewal>>);

struct Renewal {
    at: Instant,
    cookies: Vec<HeaderValue>,
    access: Zeroizing<String>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal").field("at", &self.at).finish_non_exhaustive()
    }
}

/// A signed-in user of the dashboard.
pub(crate) struct Session {
    /// The caller every facade operation is made as.
    pub(crate) caller: Caller,
    /// The access JWT it was authenticated with (a live feed authenticates with it again).
    pub(crate) credential: Zeroizing<String>,
    csrf: String,
    /// `Set-Cookie` values to send with the response (a renewal happened).
    pub(crate) set_cookies: Vec<HeaderValue>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("caller", &self.caller).finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    /// Whether the facade's matrix lets this user do `operation` (buttons it would refuse are hidden).
    pub(crate) fn can(&self, operation: Operation) -> bool {
        tollgate::authorize(&self.caller.principal, operation).is_ok()
    }

    /// The value of every form's hidden `csrf` field.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The signed-in username.
    pub(crate) fn username(&self) -> &str {
        match &self.caller.principal {
            Principal::User { username, .. } => username.as_str(),
            _ => "",
        }
    }
}

/// The dashboard's cookies of a request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty() && value.len() <= MAX_COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request reached us over HTTPS (through a trusted proxy that says so).
fn is_https(parts: &Parts, state: &AppState) -> bool {
    let from_proxy = peer_address(parts).is_some_and(|peer| state.settings().trusted_proxies.contains(peer.ip()));
    from_proxy && parts.headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()) == Some("https")
}

/// A `Set-Cookie` value for one of the dashboard's cookies (`max_age` zero deletes it).
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Strict{secure}", max_age.as_secs());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("tg_invalid=; Max-Age=0"))
}

/// The cookies a new or renewed session sets.
pub(crate) fn session_cookies(tokens: &SessionTokens, now: Timestamp, secure: bool) -> Vec<HeaderValue> {
    let refresh_left = tokens.refresh_expires_at.duration_since(now);
    vec![
        set_cookie(ACCESS_COOKIE, tokens.access_token.expose(), MAX_SESSION.min(refresh_left), secure),
        set_cookie(REFRESH_COOKIE, tokens.refresh_token.expose(), MAX_SESSION.min(refresh_left), secure),
    ]
}

/// The cookies that end a session in the browser.
pub(crate) fn cleared_cookies() -> Vec<HeaderValue> {
    [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE]
        .iter()
        .map(|name| set_cookie(name, "", Duration::ZERO, false))
        .collect()
}

/// A fresh CSRF value (32 random bytes, base64url).
pub(crate) fn new_csrf() -> Result<String, ApiError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether the request is same-origin as far as the browser says: a cross-site `Origin` or
/// `Sec-Fetch-Site` is refused before the CSRF field is even read.
fn same_origin(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").and_then(|value| value.to_str().ok()).is_some_and(|site| site == "cross-site") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host == host
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Session {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        let ip = client_ip(parts, &state.settings().trusted_proxies);
        let csrf = cookie(&parts.headers, CSRF_COOKIE).map(str::to_owned).ok_or_else(to_login)?;
        if let Some(access) = cookie(&parts.headers, ACCESS_COOKIE)
            && let Ok(context) = state.users().authenticate_access(access).await
        {
            let caller = Caller { principal: context.principal, token: None, ip };
            let credential = Zeroizing::new(access.to_owned());
            return Ok(Self { caller, credential, csrf, set_cookies: Vec::new() });
        }
        let refresh = cookie(&parts.headers, REFRESH_COOKIE).ok_or_else(to_login)?;
        let (access, set_cookies) = renew(state, refresh, ip, is_https(parts, state)).await?;
        let context = state.users().authenticate_access(&access).await.map_err(|_| to_login())?;
        let caller = Caller { principal: context.principal, token: None, ip };
        Ok(Self { caller, credential: access, csrf, set_cookies })
    }
}

/// Exchanges `refresh` for a new session once, however many requests present it at the same time.
async fn renew(
    state: &AppState,
    refresh: &str,
    ip: Option<IpAddr>,
    secure: bool,
) -> Result<(Zeroizing<String>, Vec<HeaderValue>), HtmlError> {
    let key: [u8; 32] =
        digest::digest(&digest::SHA256, refresh.as_bytes()).as_ref().try_into().map_err(|_| to_login())?;
    let mut renewals = state.dashboard_renewals().0.lock().await;
    renewals.retain(|_, renewal| renewal.at.elapsed() < RENEWAL_REUSE);
    if let Some(done) = renewals.get(&key) {
        return Ok((done.access.clone(), done.cookies.clone()));
    }
    let tokens = state.users().refresh(refresh, ip).await.map_err(|_| to_login())?;
    let cookies = session_cookies(&tokens, state.tokens().clock().now(), secure);
    let access = Zeroizing::new(tokens.access_token.expose().to_owned());
    renewals.insert(key, Renewal { at: Instant::now(), cookies: cookies.clone(), access: access.clone() });
    Ok((access, cookies))
}

/// A submitted form (`application/x-www-form-urlencoded`) whose `csrf` field matches the cookie and
/// whose origin is this site. Values are kept wiped-on-drop: forms carry passwords.
pub(crate) struct Form {
    fields: Vec<(String, Zeroizing<String>)>,
    /// Whether the request came over HTTPS (for cookies the handler sets).
    pub(crate) secure: bool,
    /// The client address.
    pub(crate) ip: Option<IpAddr>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Form").field("fields", &names).finish_non_exhaustive()
    }
}

impl Form {
    /// The trimmed value of `name`, `None` when absent or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim()).filter(|value| !value.is_empty())
    }

    /// The untrimmed value of `name` (passwords), `None` when absent or empty.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name`, or a 400 naming it.
    pub(crate) fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::invalid_field(name, "is required"))
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = HtmlError;

    async fn from_request(request: Request<Body>, state: &AppState) -> Result<Self, HtmlError> {
        let (parts, body) = request.into_parts();
        if !same_origin(&parts.headers) {
            return Err(ApiError::forbidden("the form was sent from another site").into());
        }
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ApiError::unsupported_media_type().into());
        }
        let bytes = crate::extract::read_body(body, state.settings().body_limit).await?;
        let fields: Vec<(String, Zeroizing<String>)> = form_urlencoded::parse(&bytes)
            .map(|(key, value)| (key.into_owned(), Zeroizing::new(value.into_owned())))
            .collect();
        let cookie = cookie(&parts.headers, CSRF_COOKIE).unwrap_or("");
        let sent = fields.iter().find(|(key, _)| key == CSRF_FIELD).map_or("", |(_, value)| value.as_str());
        if cookie.is_empty() || !constant_time_eq(cookie.as_bytes(), sent.as_bytes()) {
            return Err(ApiError::forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again",
            )
            .into());
        }
        let ip = client_ip(&parts, &state.settings().trusted_proxies);
        Ok(Self { fields, secure: is_https(&parts, state), ip })
    }
}

//! The one HTTP error: RFC 9457 `application/problem+json` with a stable machine `code`.
//!
//! Every handler, extractor and middleware refuses through [`ApiError`]. A 5xx is logged once,
//! here at the boundary, with its cause; the client sees only the code and a generic message.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate::{Refusal, RefusalCode, Timestamp, ValidationError};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An HTTP error response: status, stable code, human title and detail, and the field at fault
/// for bad input. Internal causes are kept for the log and never serialized.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

/// Boxed so that `Result<T, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    title: &'static str,
    detail: String,
    field: Option<String>,
    retry_after: Option<Duration>,
    refusal: Option<Refusal>,
    budget: Option<BudgetAmounts>,
    internal: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The amounts a budget refusal names (microdollars), as problem extension members.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct BudgetAmounts {
    #[serde(rename = "available_microdollars", skip_serializing_if = "Option::is_none")]
    available: Option<i64>,
    #[serde(rename = "needed_microdollars", skip_serializing_if = "Option::is_none")]
    needed: Option<i64>,
    #[serde(rename = "remaining_microdollars", skip_serializing_if = "Option::is_none")]
    remaining: Option<i64>,
}

/// The serialized body (RFC 9457 members plus tollgate's extension members).
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<Timestamp>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    budget: Option<BudgetAmounts>,
}

impl ApiError {
    fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, title: &'static str, detail: String) -> Self {
        Self(Box::new(Inner {
            status,
            code: code.into(),
            title,
            detail,
            field: None,
            retry_after: None,
            refusal: None,
            budget: None,
            internal: None,
        }))
    }

    /// 400 `invalid_field`: a value that does not parse or is out of range, naming the field.
    pub fn invalid_field(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        let mut error =
            Self::new(StatusCode::BAD_REQUEST, "invalid_field", "Invalid field", format!("{field}: {reason}"));
        error.0.field = Some(field);
        error
    }

    /// 400 `invalid_body`: the body is not JSON at all.
    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", "Invalid request body", detail.into())
    }

    /// 415 `unsupported_media_type`: a body sent without `Content-Type: application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "the body must be sent with Content-Type: application/json".to_owned(),
        )
    }

    /// 413 `body_too_large`.
    pub fn body_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Request body too large",
            "the request body exceeds the size limit".to_owned(),
        )
    }

    /// 401 `missing_credential` or `invalid_credential`: no usable `Authorization: Bearer` header.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, "Authentication required", detail.into())
    }

    /// A refused credential: 401 (malformed, unknown, revoked, expired), 403 (IP or tool not
    /// allowed) or 429 (rate limited, quota exceeded, with `Retry-After`).
    pub fn refused(refusal: Refusal) -> Self {
        let (status, title) = refusal_status(refusal.code);
        let mut error = Self::new(status, refusal.code.as_str(), title, refusal_detail(refusal.code).to_owned());
        // The facade measures retry-after on its own clock (for quotas: until the window resets).
        error.0.retry_after = refusal.retry_after.filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        error.0.refusal = Some(refusal);
        error
    }

    /// 403 `forbidden`: authenticated, but not allowed to do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail.into())
    }

    /// 404 `<entity>_not_found`, e.g. `token_not_found` (`rate_limit_not_found`: spaces become `_`).
    pub fn not_found(entity: &'static str) -> Self {
        let code = format!("{}_not_found", entity.replace(' ', "_"));
        let mut error = Self::new(StatusCode::NOT_FOUND, code, "Not found", format!("{entity} not found"));
        // An owner or project named in a request body: the field is what the client must fix.
        if matches!(entity, "owner" | "project") {
            error.0.field = Some(entity.to_owned());
        }
        error
    }

    /// 404 `route_not_found`: no such path.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", "Not found", "no such route".to_owned())
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this route does not accept this method".to_owned(),
        )
    }

    /// 503 for the agent and vault routes of a server started without a vault.
    pub fn agents_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agents_not_configured",
            "Agents not configured",
            "this server was started without a provider-key vault".to_owned(),
        )
    }

    /// 409 `conflict`: the change contradicts the stored state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail.into())
    }

    /// 503 `timeout`: the handler did not finish in time.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
            "the request took too long; it may or may not have taken effect".to_owned(),
        )
    }

    /// 503 `unavailable`: a dependency (the database) does not answer. The cause is logged.
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the service cannot reach its database".to_owned(),
        );
        error.0.internal = Some(Box::new(cause));
        error
    }

    /// 500 `internal`. The cause is logged, never shown.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed to handle the request".to_owned(),
        );
        error.0.internal = Some(cause.into());
        error
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable machine code.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The field at fault, for bad input.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The human title of the status (`Bad request`), for the dashboard's error pages.
    pub(crate) fn title(&self) -> &'static str {
        self.0.title
    }

    /// The human detail (never the rejected value), for the dashboard's error pages.
    pub(crate) fn detail(&self) -> &str {
        &self.0.detail
    }

    /// Whether this is a server failure, logged (with its cause) once where it is answered.
    pub(crate) fn log_if_server_error(&self) {
        if self.0.status.is_server_error() {
            match &self.0.internal {
                Some(cause) => {
                    tracing::error!(code = %self.0.code, error = %ErrorChain(cause.as_ref()), "request failed")
                }
                None => tracing::warn!(code = %self.0.code, "request failed"),
            }
        }
    }
}

impl From<tollgate::Error> for ApiError {
    fn from(error: tollgate::Error) -> Self {
        match error {
            tollgate::Error::Validation(validation) => validation.into(),
            tollgate::Error::Refused(refusal) => Self::refused(refusal),
            tollgate::Error::Forbidden(detail) => Self::forbidden(detail),
            tollgate::Error::NotFound { entity } => Self::not_found(entity),
            tollgate::Error::Conflict(detail) => Self::conflict(detail),
            tollgate::Error::BudgetExhausted { available, needed } => {
                let detail = format!(
                    "the agent's budget has {available} microdollars available and a lease needs at least {needed}: \
                     the agent is paused for budget until its allocation rises"
                );
                let mut error = Self::new(StatusCode::PAYMENT_REQUIRED, "budget_exhausted", "Budget exhausted", detail);
                error.0.budget =
                    Some(BudgetAmounts { available: Some(available), needed: Some(needed), remaining: None });
                error
            }
            tollgate::Error::LeaseExhausted { remaining } => {
                let detail = format!(
                    "the report would pass the lease's grant ({remaining} microdollars remain): nothing was recorded; refresh the lease"
                );
                let mut error = Self::new(StatusCode::CONFLICT, "lease_exhausted", "Lease exhausted", detail);
                error.0.budget = Some(BudgetAmounts { remaining: Some(remaining), ..BudgetAmounts::default() });
                error
            }
            tollgate::Error::LeaseClosed { state } => Self::new(
                StatusCode::CONFLICT,
                "lease_closed",
                "Lease closed",
                format!("the lease is {state} and accepts nothing: open a new one with a handshake"),
            ),
            tollgate::Error::TooManyStreams { limit } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "Too many event streams",
                format!("at most {limit} event streams may be open per principal: close one first"),
            ),
            tollgate::Error::Storage(cause @ tollgate::StoreError::Unavailable(_)) => Self::unavailable(cause),
            unavailable @ tollgate::Error::Unavailable(_) => Self::unavailable(unavailable),
            other => Self::internal(other),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::invalid_field(error.field, error.reason)
    }
}

/// The status and title for a refusal code.
fn refusal_status(code: RefusalCode) -> (StatusCode, &'static str) {
    match code {
        RefusalCode::IpNotAllowed | RefusalCode::ToolNotAllowed => (StatusCode::FORBIDDEN, "Token not allowed here"),
        RefusalCode::RateLimited | RefusalCode::QuotaExceeded => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        RefusalCode::InvalidCredentials => (StatusCode::UNAUTHORIZED, "Login refused"),
        RefusalCode::PasswordChangeRequired => (StatusCode::FORBIDDEN, "Password change required"),
        RefusalCode::AgentPaused | RefusalCode::AgentDisabled => (StatusCode::FORBIDDEN, "Agent not active"),
        _ => (StatusCode::UNAUTHORIZED, "Token refused"),
    }
}

fn refusal_detail(code: RefusalCode) -> &'static str {
    match code {
        RefusalCode::Malformed => "the token is not a well-formed tollgate token",
        RefusalCode::NotFound => "the token is not known",
        RefusalCode::Revoked => "the token has been revoked",
        RefusalCode::Expired => "the token has expired",
        RefusalCode::IpNotAllowed => "the token may not be used from this address",
        RefusalCode::ToolNotAllowed => "the token may not call this tool",
        RefusalCode::RateLimited => "the token's rate limit is exhausted; retry after the delay given",
        RefusalCode::QuotaExceeded => "a quota is exhausted until its window resets",
        // One message whatever the reason (unknown user, wrong password, locked, inactive).
        RefusalCode::InvalidCredentials => "the username or password is wrong, or the account cannot log in",
        RefusalCode::PasswordChangeRequired => "the password is right but must be changed before logging in",
        RefusalCode::AgentPaused => "the agent is paused: its credentials work again once it is resumed",
        RefusalCode::AgentDisabled => "the agent is disabled",
        _ => "the token was refused",
    }
}

/// Rounds a delay up to whole seconds, at least one (a `Retry-After: 0` invites a busy loop).
fn whole_seconds(delay: Duration) -> u64 {
    delay.as_secs().saturating_add(u64::from(delay.subsec_nanos() > 0)).max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_server_error();
        let this = *self.0;
        let retry_after_seconds = this.retry_after.map(whole_seconds);
        let problem = Problem {
            kind: format!("urn:tollgate:problem:{}", this.code),
            title: this.title,
            status: this.status.as_u16(),
            detail: &this.detail,
            code: &this.code,
            field: this.field.as_deref(),
            retry_after_seconds,
            limit: this.refusal.as_ref().and_then(|refusal| refusal.limit.as_deref()),
            resets_at: this.refusal.as_ref().and_then(|refusal| refusal.resets_at),
            budget: this.budget,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if this.status == StatusCode::UNAUTHORIZED {
            let challenge = if this.refusal.is_some() {
                r#"Bearer realm="tollgate", error="invalid_token""#
            } else {
                r#"Bearer realm="tollgate""#
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        (this.status, headers, body).into_response()
    }
}

/// Displays an error and its sources on one line, for the log.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::{Clock, SystemClock};

    fn status_of(code: RefusalCode) -> u16 {
        ApiError::refused(Refusal::new(code)).status().as_u16()
    }

    #[test]
    fn refusals_map_to_their_statuses() {
        let cases = [
            (RefusalCode::Malformed, 401),
            (RefusalCode::NotFound, 401),
            (RefusalCode::Revoked, 401),
            (RefusalCode::Expired, 401),
            (RefusalCode::IpNotAllowed, 403),
            (RefusalCode::ToolNotAllowed, 403),
            (RefusalCode::RateLimited, 429),
            (RefusalCode::QuotaExceeded, 429),
            (RefusalCode::AgentPaused, 403),
            (RefusalCode::AgentDisabled, 403),
        ];
        for (code, status) in cases {
            assert_eq!(status_of(code), status, "{code}");
            assert_eq!(ApiError::refused(Refusal::new(code)).code(), code.as_str());
        }
    }

    #[test]
    fn rate_limited_carries_retry_after_rounded_up() {
        let mut refusal = Refusal::new(RefusalCode::RateLimited);
        refusal.retry_after = Some(Duration::from_millis(1_200));
        let response = ApiError::refused(refusal).into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn quota_exceeded_retries_when_the_window_resets() {
        let mut refusal = Refusal::new(RefusalCode::QuotaExceeded);
        refusal.limit = Some("requests_per_day".to_owned());
        refusal.resets_at = Some(SystemClock.now().saturating_add(Duration::from_secs(3_600)));
        refusal.retry_after = Some(Duration::from_secs(3_600));
        let response = ApiError::refused(refusal).into_response();
        let seconds: u64 = response.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((3_590..=3_600).contains(&seconds), "{seconds}");
    }

    #[test]
    fn unauthorized_responses_challenge_for_a_bearer_token() {
        let response = ApiError::refused(Refusal::new(RefusalCode::Revoked)).into_response();
        assert!(response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
        let response = ApiError::unauthorized("missing_credential", "no token").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="tollgate""#);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let error = ApiError::internal("database is locked at /var/lib/secret.db");
        assert_eq!(error.status(), 500);
        assert!(!error.0.detail.contains("secret.db"));
    }

    #[test]
    fn facade_errors_map_to_statuses() {
        let cases: [(tollgate::Error, u16, &str); 4] = [
            (ValidationError::new("name", "must not be empty").into(), 400, "invalid_field"),
            (tollgate::Error::Forbidden("no".into()), 403, "forbidden"),
            (tollgate::Error::NotFound { entity: "token" }, 404, "token_not_found"),
            (tollgate::Error::Conflict("token is revoked".into()), 409, "conflict"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
        }
    }
}

//! Request extractors that refuse with problem+json naming the field: JSON bodies, query strings
//! and path ids. They replace axum's own (whose rejections are plain text and say "body" where
//! the client needs "expires_in_seconds").

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tollgate::ValidationError;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON request body. Requires `Content-Type: application/json` (or `+json`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = read_body(request.into_body(), state.settings().body_limit).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A JSON body that may be left out entirely (no body at all means `T::default()`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let has_content_type = request.headers().contains_key(header::CONTENT_TYPE);
        let json = is_json(&request);
        let bytes = read_body(request.into_body(), state.settings().body_limit).await?;
        if bytes.is_empty() && (!has_content_type || json) {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&bytes).map(Self)
    }
}

fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The whole body, refused with 413 past `limit` bytes: the one place request bodies are read
/// (JSON bodies and the dashboard's forms), so no per-request body-limit layer is needed.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if error.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            ApiError::body_too_large()
        } else {
            ApiError::invalid_body("the request body could not be read")
        }
    })
}

/// Parses a JSON object into `T`, naming the field at fault. Every request body is an object
/// (a batch is an object with an array inside), so `[…]` or `"…"` is refused up front rather than
/// matched positionally against struct fields.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::invalid_body("the body is empty; send a JSON object")),
        Some(_) => return Err(ApiError::invalid_body("the body must be a JSON object")),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => field_error(&path, &without_position(&inner), "body"),
            // serde_json refuses a number where an enum (e.g. a role) belongs as a syntax error;
            // the field is known, so name it.
            serde_json::error::Category::Syntax if path != "." && !path.is_empty() && is_expected_value(&inner) => {
                ApiError::invalid_field(path, "has the wrong type")
            }
            _ => ApiError::invalid_body(format!("the body is not valid JSON: {}", without_position(&inner))),
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::invalid_body(format!("the body is not valid JSON: {}", without_position(&error))))?;
    Ok(value)
}

/// Deserializes an already parsed JSON value into `T`, naming the field at fault (for bodies that
/// take one of two shapes, such as one usage event or a batch).
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        field_error(&path, &error.into_inner().to_string(), "body")
    })
}

fn is_expected_value(error: &serde_json::Error) -> bool {
    without_position(error) == "expected value"
}

/// serde_json appends " at line L column C"; the field name says more to an API client.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).map(str::to_owned).unwrap_or(text)
}

/// Builds the 400 for a value that did not deserialize: the field is the path when serde knows
/// it, else the field a "missing field `x`" message names. The reason never repeats what the
/// client sent (a secret pasted into the wrong field must not come back in an error body that
/// proxies log): serde's messages quote the rejected value or key, so they are reworded.
fn field_error(path: &str, message: &str, fallback: &str) -> ApiError {
    // serde_path_to_error ends the path of an unknown key with the key itself: report its parent.
    let path = if message.starts_with("unknown field ") {
        path.rsplit_once('.').map_or("", |(parent, _)| parent)
    } else {
        path
    };
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match named {
        Some(name) if path == "." || path.is_empty() => name.to_owned(),
        _ if path == "." || path.is_empty() => fallback.to_owned(),
        _ => path.to_owned(),
    };
    ApiError::invalid_field(field, without_echo(strip_field_prefix(message)))
}

/// serde's wording without the value or key it quotes: `unknown field `x`, expected one of …`,
/// `unknown variant `x`, expected …`, `invalid type: string "x", expected …`, `invalid value: …`.
/// What is expected comes from our own types, so it stays.
fn without_echo(message: &str) -> String {
    let expected = |rest: &str| rest.split_once(", expected ").map(|(_, expected)| expected.to_owned());
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match expected(rest) {
            Some(expected) => format!("names a field this request does not have (expected {expected})"),
            None => "names a field this request does not have".to_owned(),
        };
    }
    for (prefix, reason) in [
        ("unknown variant ", "is not one of the accepted values"),
        ("invalid type: ", "has the wrong type"),
        ("invalid value: ", "has an invalid value"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match expected(rest) {
                Some(expected) => format!("{reason} (expected {expected})"),
                None => reason.to_owned(),
            };
        }
    }
    message.to_owned()
}

/// Domain types report `field: reason`; the HTTP error names the field itself, so keep the reason.
fn strip_field_prefix(message: &str) -> &str {
    match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && head.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => rest,
        _ => message,
    }
}

/// A query string deserialized into `T` (use `#[serde(deny_unknown_fields)]` on `T`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Self).map_err(|error| {
            let path = error.path().to_string();
            field_error(&path, &error.into_inner().to_string(), "query")
        })
    }
}

/// The `{id}` path segment parsed into a typed id; a bad id is a 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathId<T>(pub(crate) T);

impl<S: Send + Sync, T: FromStr<Err = ValidationError> + Send> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(text) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_field("id", "is not a valid path segment"))?;
        text.parse::<T>().map(Self).map_err(|error| ApiError::invalid_field("id", error.reason))
    }
}

/// Two `{…}` path segments parsed into typed ids (`/v1/agents/{id}/credentials/{credential_id}`); a
/// bad one is a 400 naming its segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathIds<A, B>(pub(crate) A, pub(crate) B);

impl<S, A, B> FromRequestParts<S> for PathIds<A, B>
where
    S: Send + Sync,
    A: FromStr<Err = ValidationError> + Send,
    B: FromStr<Err = ValidationError> + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(texts) = axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_field("id", "is not a valid path segment"))?;
        let [(first_name, first), (second_name, second)] = <[(String, String); 2]>::try_from(texts)
            .map_err(|_| ApiError::invalid_field("id", "the route takes two path segments"))?;
        let first = first.parse::<A>().map_err(|error| ApiError::invalid_field(first_name, error.reason))?;
        let second = second.parse::<B>().map_err(|error| ApiError::invalid_field(second_name, error.reason))?;
        Ok(Self(first, second))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: tollgate::TokenName,
        count: Option<u32>,
        tags: Option<Vec<tollgate::Scope>>,
    }

    fn check(json: &str) -> (String, String) {
        let error = parse_json::<Body>(json.as_bytes()).unwrap_err();
        (error.code().to_owned(), error.field().unwrap_or("-").to_owned())
    }

    #[test]
    fn json_errors_name_the_field() {
        let cases = [
            (r#"{"name": ""}"#, "invalid_field", "name"),
            (r#"{}"#, "invalid_field", "name"),
            (r#"{"name": "x", "count": -1}"#, "invalid_field", "count"),
            (r#"{"name": "x", "count": 99999999999}"#, "invalid_field", "count"),
            (r#"{"name": "x", "colour": 1}"#, "invalid_field", "body"),
            (r#"{"name": "x", "tags": ["ok", "Not OK"]}"#, "invalid_field", "tags[1]"),
            (r#"{"name": "x""#, "invalid_body", "-"),
            (r#"{"name": "x"} trailing"#, "invalid_body", "-"),
            (r#"[1, 2]"#, "invalid_body", "-"),
            ("", "invalid_body", "-"),
            (r#"{"name": "x", "name": "y"}"#, "invalid_field", "name"),
            (r#"{"name": "x", "count": }"#, "invalid_field", "count"),
        ];
        for (json, code, field) in cases {
            assert_eq!(check(json), (code.to_owned(), field.to_owned()), "{json}");
        }
    }

    /// Whatever the client sent in the wrong place (a secret as a value or as a key) never comes back.
    #[test]
    fn errors_never_echo_what_was_sent() {
        let secret = "tg_S3cretS3cretS3cretS3cretS3cretS3cretS3cret0000aB1";
        for json in [
            format!(r#"{{"name": "x", "count": "{secret}"}}"#),
            format!(r#"{{"name": "x", "{secret}": 1}}"#),
            format!(r#"{{"name": "x", "tags": ["{secret}"]}}"#),
            format!(r#"{{"name": ["{secret}"]}}"#),
        ] {
            let error = parse_json::<Body>(json.as_bytes()).unwrap_err();
            let shown = format!("{error:?}");
            assert!(!shown.contains("S3cret"), "{shown}");
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Roles {
            role: tollgate::Role,
        }
        let error = parse_json::<Roles>(format!(r#"{{"role": "{secret}"}}"#).as_bytes()).unwrap_err();
        let shown = format!("{error:?}");
        assert!(!shown.contains("S3cret") && shown.contains("admin"), "{shown}");
    }

    #[test]
    fn reasons_drop_the_domain_field_prefix_and_position() {
        let error = parse_json::<Body>(br#"{"name": ""}"#).unwrap_err();
        assert_eq!(format!("{error:?}").matches("name: ").count(), 1, "{error:?}");
        assert!(!format!("{error:?}").contains("line 1"), "{error:?}");
    }
}

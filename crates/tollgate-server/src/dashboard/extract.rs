//! The API's query and path extractors, refusing as dashboard pages (HTML) instead of problem+json.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use serde::Deserialize;
use tollgate::PageRequest;

use super::error::HtmlError;
use crate::extract;
use crate::state::AppState;

/// A query value with blanks (an empty form field) as absent.
pub(crate) fn blank(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty()).map(str::to_owned)
}

/// The first page, or the page after `cursor`, of the default size.
pub(crate) fn page_after(state: &AppState, cursor: &Option<String>) -> PageRequest {
    let size = state.settings().default_page_size;
    match blank(cursor) {
        Some(cursor) => PageRequest::after(size, cursor),
        None => PageRequest::first(size),
    }
}

/// The filters a list page was asked for, encoded for its pager's links (blanks left out).
pub(crate) fn encoded(filters: &[(&str, &Option<String>)]) -> String {
    let present = filters.iter().filter_map(|(key, value)| Some((*key, (*value).clone()?)));
    form_urlencoded::Serializer::new(String::new()).extend_pairs(present).finish()
}

/// `?cursor=&done=`: a list without filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub(crate) cursor: Option<String>,
    #[serde(default)]
    pub(crate) done: Option<String>,
}

impl ListQuery {
    /// The page it asks for.
    pub(crate) fn page(&self, state: &AppState) -> PageRequest {
        page_after(state, &self.cursor)
    }
}

/// A query string deserialized into `T`; a bad one is an HTML 400 naming the field.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HtmlError> {
        Ok(Self(extract::Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// The `{id}` path segment parsed into a typed id.
#[derive(Debug)]
pub(crate) struct PathId<T>(pub(crate) T);

impl<S: Send + Sync, T: std::str::FromStr<Err = tollgate::ValidationError> + Send> FromRequestParts<S> for PathId<T> {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HtmlError> {
        Ok(Self(extract::PathId::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// Two `{…}` path segments parsed into typed ids.
#[derive(Debug)]
pub(crate) struct PathIds<A, B>(pub(crate) A, pub(crate) B);

impl<S, A, B> FromRequestParts<S> for PathIds<A, B>
where
    S: Send + Sync,
    A: std::str::FromStr<Err = tollgate::ValidationError> + Send,
    B: std::str::FromStr<Err = tollgate::ValidationError> + Send,
{
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HtmlError> {
        let extract::PathIds(first, second) = extract::PathIds::<A, B>::from_request_parts(parts, state).await?;
        Ok(Self(first, second))
    }
}

/// `/{id}/{action}`: a typed id and a word.
#[derive(Debug)]
pub(crate) struct IdAction<T>(pub(crate) T, pub(crate) String);

impl<S: Send + Sync, T: std::str::FromStr<Err = tollgate::ValidationError> + Send> FromRequestParts<S> for IdAction<T> {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HtmlError> {
        let axum::extract::Path((id, action)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| crate::error::ApiError::invalid_field("id", "is not a valid path segment"))?;
        let id = id.parse::<T>().map_err(|error| crate::error::ApiError::invalid_field("id", error.reason))?;
        Ok(Self(id, action))
    }
}

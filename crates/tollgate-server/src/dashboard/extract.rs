//! The API's query and path extractors, refusing as dashboard pages (HTML) instead of problem+json.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::HtmlError;
use crate::extract;

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

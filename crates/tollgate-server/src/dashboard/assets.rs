//! The dashboard's stylesheet and script, compiled into the binary and served under names that
//! carry their content hash (`dashboard-3f2a9c1d.css`), so browsers may cache them for a year.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::HtmlError;
use crate::error::ApiError;

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// The versioned file name.
    pub(crate) name: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let hash: String = digest.as_ref()[..4].iter().map(|byte| format!("{byte:02x}")).collect();
        Self { name: format!("{stem}-{hash}.{extension}"), content_type, body }
    }

    /// Its URL.
    pub(crate) fn href(&self) -> String {
        format!("/dashboard/assets/{}", self.name)
    }
}

pub(crate) static STYLESHEET: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("dashboard", "css", "text/css; charset=utf-8", include_str!("assets/dashboard.css")));
pub(crate) static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("dashboard", "js", "text/javascript; charset=utf-8", include_str!("assets/dashboard.js"))
});

/// `GET /dashboard/assets/{name}`: only the current versioned names exist.
pub(crate) async fn serve(Path(name): Path<String>) -> Result<Response, HtmlError> {
    let asset = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| ApiError::not_found("asset"))?;
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

//! `GET /openapi.json`: the OpenAPI 3.1 document of this API.

use axum::http::header;
use axum::response::IntoResponse;

use crate::routes::{Doc, Routes};

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/openapi.json",
        Doc::new("openapi", "operations", "The OpenAPI 3.1 document of this API").response_text(
            200,
            "OpenAPI 3.1 (JSON)",
            "application/json",
        ),
        openapi,
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document_bytes())
}

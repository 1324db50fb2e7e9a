//! What the fuzz targets in `fuzz/` need from the server (the `fuzzing` feature): the route table's
//! operations that take a JSON body, so the fuzzer covers every one the router registers.

use axum::http::Method;

/// Method and path template (`/v1/tokens/{id}`) of every operation whose documentation declares a
/// JSON request body, in route-table order.
#[doc(hidden)]
pub fn json_body_operations() -> Vec<(Method, &'static str)> {
    crate::resources::routes()
        .operations()
        .iter()
        .filter(|operation| operation.doc.body.is_some())
        .map(|operation| (operation.method.clone(), operation.path))
        .collect()
}

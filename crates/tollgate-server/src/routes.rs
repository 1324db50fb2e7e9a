//! The route table: each route is registered once, with its handler and its documentation, so the
//! router and the OpenAPI document cannot disagree about which paths exist.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};

use crate::openapi::{ApiSchema, Components, SchemaFn};
use crate::state::AppState;

/// How a route's documentation describes one response.
#[derive(Debug, Clone)]
pub(crate) struct ResponseDoc {
    pub(crate) status: u16,
    pub(crate) description: &'static str,
    pub(crate) media_type: &'static str,
    pub(crate) schema: Option<SchemaFn>,
    pub(crate) headers: &'static [&'static str],
}

/// A route's documentation: the OpenAPI operation, built with small methods.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) operation_id: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) description: Option<&'static str>,
    pub(crate) bearer: bool,
    pub(crate) path_params: Vec<(&'static str, &'static str)>,
    pub(crate) headers: Vec<(&'static str, &'static str, serde_json::Value)>,
    pub(crate) query: Option<SchemaFn>,
    pub(crate) body: Option<SchemaFn>,
    pub(crate) responses: Vec<ResponseDoc>,
}

impl Doc {
    /// An operation with a stable id (`createToken`), a tag (`tokens`) and a one-line summary.
    pub(crate) fn new(operation_id: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            operation_id,
            tag,
            summary,
            description: None,
            bearer: false,
            path_params: Vec::new(),
            headers: Vec::new(),
            query: None,
            body: None,
            responses: Vec::new(),
        }
    }

    /// Longer text (CommonMark).
    pub(crate) fn describe(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// Needs `Authorization: Bearer`: documents the scheme and the 401.
    pub(crate) fn bearer(mut self) -> Self {
        self.bearer = true;
        self.problems(&[401])
    }

    /// Describes a `{name}` path segment.
    pub(crate) fn path_param(mut self, name: &'static str, description: &'static str) -> Self {
        self.path_params.push((name, description));
        self
    }

    /// An optional request header whose values `schema` describes.
    pub(crate) fn header(mut self, name: &'static str, schema: serde_json::Value, description: &'static str) -> Self {
        self.headers.push((name, description, schema));
        self
    }

    /// Query parameters: the properties of `T`'s object schema.
    pub(crate) fn query<T: ApiSchema>(mut self) -> Self {
        self.query = Some(T::schema);
        self
    }

    /// A JSON request body.
    pub(crate) fn body<T: ApiSchema>(mut self) -> Self {
        self.body = Some(Components::reference::<T>);
        self
    }

    /// A JSON success response.
    pub(crate) fn response<T: ApiSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.responses.push(ResponseDoc {
            status,
            description,
            media_type: "application/json",
            schema: Some(Components::reference::<T>),
            headers: &[],
        });
        self
    }

    /// A response with headers worth naming (`Location`, `Retry-After`, `RateLimit-*`).
    pub(crate) fn response_headers(mut self, headers: &'static [&'static str]) -> Self {
        if let Some(last) = self.responses.last_mut() {
            last.headers = headers;
        }
        self
    }

    /// A response that is not JSON (`/metrics`).
    pub(crate) fn response_text(mut self, status: u16, description: &'static str, media_type: &'static str) -> Self {
        self.responses.push(ResponseDoc { status, description, media_type, schema: None, headers: &[] });
        self
    }

    /// Error responses (problem+json) this operation may answer.
    pub(crate) fn problems(mut self, statuses: &[u16]) -> Self {
        for &status in statuses {
            if self.responses.iter().any(|response| response.status == status) {
                continue;
            }
            self.responses.push(ResponseDoc {
                status,
                description: problem_description(status),
                media_type: crate::error::PROBLEM_JSON,
                schema: Some(Components::reference::<crate::openapi::ProblemSchema>),
                headers: if status == 429 { &["Retry-After"] } else { &[] },
            });
        }
        self
    }
}

fn problem_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid input; `field` names what was wrong",
        401 => "Missing, malformed, unknown, revoked or expired credential",
        403 => "Not allowed (permission, IP allow-list or allowed tools)",
        404 => "Not found",
        409 => "Conflicts with the current state",
        413 => "Request body too large",
        415 => "Body sent without Content-Type: application/json",
        429 => "Rate limited or over quota; see Retry-After",
        503 => "Unavailable or timed out",
        _ => "Error",
    }
}

/// One registered operation.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) doc: Doc,
}

/// Routes and their documentation, built together.
#[derive(Debug)]
pub(crate) struct Routes {
    router: Router<AppState>,
    operations: Vec<Operation>,
}

macro_rules! method {
    ($name:ident, $method:ident) => {
        pub(crate) fn $name<H, T>(self, path: &'static str, doc: Doc, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(Method::$method, path, doc, routing::$name(handler))
        }
    };
}

impl Routes {
    pub(crate) fn new() -> Self {
        Self { router: Router::new(), operations: Vec::new() }
    }

    method!(get, GET);
    method!(post, POST);
    method!(patch, PATCH);
    method!(delete, DELETE);
    method!(put, PUT);

    fn add(mut self, method: Method, path: &'static str, doc: Doc, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self.operations.push(Operation { method, path, doc });
        self
    }

    /// Adds another resource's routes.
    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self
    }

    pub(crate) fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub(crate) fn into_parts(self) -> (Router<AppState>, Vec<Operation>) {
        (self.router, self.operations)
    }
}

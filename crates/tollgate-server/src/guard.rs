//! A tower layer that guards another axum application's routes with tollgate tokens, in process
//! (no HTTP hop): it verifies `Authorization: Bearer` through `TokenManager::verify`, puts the
//! [`TokenContext`] in the request extensions, and refuses with the same problem+json and status
//! mapping as the control API.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tollgate_server::{GuardLayer, VerifiedToken};
//!
//! async fn hello(VerifiedToken(context): VerifiedToken) -> String {
//!     format!("hello, {}", context.record.owner_name)
//! }
//!
//! # fn build(tokens: tollgate::TokenManager) -> Router {
//! Router::new().route("/hello", get(hello)).route_layer(GuardLayer::new(tokens).tool("hello"))
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tollgate::{TokenContext, TokenManager, VerifyRequest};
use tower::{Layer, Service};

use crate::auth::{bearer, client_ip, tool_header};
use crate::error::ApiError;
use crate::state::TrustedProxies;

/// Which tool a guarded request calls, for tokens restricted to allowed tools.
#[derive(Debug, Clone)]
enum ToolSource {
    /// No tool: tokens restricted to tools are refused.
    None,
    /// The same tool for every route under the layer.
    Fixed(String),
    /// The `X-Tollgate-Tool` header the client sends.
    Header,
}

#[derive(Debug)]
struct GuardConfig {
    tokens: TokenManager,
    trusted_proxies: TrustedProxies,
    tool: ToolSource,
}

impl GuardConfig {
    async fn verify(&self, parts: &Parts) -> Result<TokenContext, ApiError> {
        let credential = bearer(&parts.headers)?;
        let tool = match &self.tool {
            ToolSource::None => None,
            ToolSource::Fixed(tool) => Some(tool.clone()),
            ToolSource::Header => tool_header(&parts.headers)?,
        };
        let request = VerifyRequest { ip: client_ip(parts, &self.trusted_proxies), tool };
        Ok(self.tokens.verify(credential, &request).await?)
    }
}

/// Guards the routes it wraps; see the module docs. Serve the application with
/// `into_make_service_with_connect_info::<SocketAddr>()` so IP allow-lists see the client address.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    config: Arc<GuardConfig>,
}

impl GuardLayer {
    /// A guard verifying with `tokens`, naming no tool and trusting no proxy.
    pub fn new(tokens: TokenManager) -> Self {
        Self {
            config: Arc::new(GuardConfig {
                tokens,
                trusted_proxies: TrustedProxies::default(),
                tool: ToolSource::None,
            }),
        }
    }

    /// Every guarded request calls `tool` (checked against each token's allowed tools).
    pub fn tool(self, tool: impl Into<String>) -> Self {
        self.map(|config| config.tool = ToolSource::Fixed(tool.into()))
    }

    /// The tool is whatever the client names in `X-Tollgate-Tool`.
    pub fn tool_from_header(self) -> Self {
        self.map(|config| config.tool = ToolSource::Header)
    }

    /// Believe `X-Forwarded-For` from these proxies.
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.map(|config| config.trusted_proxies = proxies)
    }

    fn map(self, change: impl FnOnce(&mut GuardConfig)) -> Self {
        let mut config = Arc::try_unwrap(self.config).unwrap_or_else(|shared| GuardConfig {
            tokens: shared.tokens.clone(),
            trusted_proxies: shared.trusted_proxies.clone(),
            tool: shared.tool.clone(),
        });
        change(&mut config);
        Self { config: Arc::new(config) }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { inner, config: Arc::clone(&self.config) }
    }
}

/// The service [`GuardLayer`] wraps around routes.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is not ready; call the instance that was (tower's documented pattern).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match config.verify(&parts).await {
                Ok(context) => {
                    parts.extensions.insert(context);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}

/// The verified token of a request that passed a [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub TokenContext);

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<TokenContext>()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::internal("VerifiedToken used on a route without a GuardLayer"))
    }
}

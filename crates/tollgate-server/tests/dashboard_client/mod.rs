//! A cookie jar over the fixture's router: the dashboard as a browser sees it, for the router tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::support::{Fixture, PASSWORD, Reply};

/// A browser's view of the dashboard: a cookie jar over the fixture's router.
pub struct Browser<'a> {
    pub fixture: &'a Fixture,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(fixture: &'a Fixture) -> Self {
        Self { fixture, cookies: BTreeMap::new() }
    }

    /// Signs `username` in (reading the sign-in form first for its CSRF cookie).
    pub async fn signed_in(fixture: &'a Fixture, username: &str) -> Self {
        Self::signed_in_with(fixture, username, PASSWORD).await
    }

    /// Signs `username` in with `password`.
    pub async fn signed_in_with(fixture: &'a Fixture, username: &str, password: &str) -> Self {
        let mut browser = Self::new(fixture);
        assert_eq!(browser.get("/dashboard/login").await.status, StatusCode::OK);
        let reply = browser.post("/dashboard/login", &[("login", username), ("password", password)]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(reply.headers[header::LOCATION], "/dashboard");
        browser
    }

    pub fn csrf(&self) -> String {
        self.cookies.get("tg_csrf").cloned().unwrap_or_default()
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn send(&mut self, request: Request<Body>) -> Reply {
        let reply = self.fixture.send(request).await;
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let request =
            Request::builder().uri(path).header(header::COOKIE, self.cookie_header()).body(Body::empty()).unwrap();
        self.send(request).await
    }

    /// Submits a form with the session's CSRF value added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, None).await
    }

    /// Submits exactly `fields`, with an `Origin` header when given.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, "dashboard.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, self.cookie_header());
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        self.send(builder.body(Body::from(body)).unwrap()).await
    }
}

//! The app's route templates, matched the way the router matches them, so the layer around the
//! whole router can name a request's route (for its span and metrics) before the router has run.
//!
//! The layer sits outside the router because a layer the router applies (`Router::layer`) clones
//! and boxes every route once more per request. The names come from the same matcher axum routes
//! with (`matchit`, the version axum pins) over the same templates, and a test walks every route
//! to show the two agree.

use crate::metrics::UNMATCHED;

/// Route templates by path.
#[derive(Debug, Default)]
pub(crate) struct RouteTemplates {
    matcher: matchit::Router<RouteId>,
    templates: Vec<Box<str>>,
}

/// A template's place in its [`RouteTemplates`] (from 0, in the order of
/// [`RouteTemplates::templates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteId(usize);

impl RouteId {
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

impl RouteTemplates {
    /// A table of `templates` (axum's syntax: `/v1/tokens/{id}`). A template registered twice
    /// (one path, several methods) is kept once.
    pub(crate) fn new<T: AsRef<str>>(templates: impl IntoIterator<Item = T>) -> Self {
        let mut table = Self::default();
        for template in templates {
            let template = template.as_ref();
            // The router has accepted every template with this very matcher, so the only refusal
            // expected is the same template again, registered for another method. Any other
            // (matchit's conflicts can depend on the order of insertion, which differs from the
            // router's) would leave a route named after another, so it stops the start.
            match table.matcher.insert(template, RouteId(table.templates.len())) {
                Ok(()) => table.templates.push(template.into()),
                Err(matchit::InsertError::Conflict { with }) if with == template => {}
                Err(error) => panic!("route template {template} cannot be named: {error}"),
            }
        }
        table
    }

    /// The route `path` matches, if any.
    pub(crate) fn route_of(&self, path: &str) -> Option<RouteId> {
        self.matcher.at(path).ok().map(|matched| *matched.value)
    }

    /// Every template, once each.
    pub(crate) fn templates(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|template| &**template)
    }

    /// The template of `route`, or the label of requests that matched none.
    pub(crate) fn name(&self, route: Option<RouteId>) -> &str {
        route.and_then(|RouteId(index)| self.templates.get(index)).map_or(UNMATCHED, |template| template)
    }
}

/// A nested router's template as axum registers it under `prefix` (`/dashboard` + `/` is
/// `/dashboard`).
pub(crate) fn nested(prefix: &str, template: &str) -> String {
    if template == "/" { prefix.to_owned() } else { format!("{prefix}{template}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_named_by_the_template_it_matches_and_static_segments_win() {
        let table = RouteTemplates::new(["/v1/tokens", "/v1/tokens/{id}", "/v1/tokens/cleanup", "/v1/tokens/{id}"]);
        let name = |path| table.name(table.route_of(path));
        assert_eq!(name("/v1/tokens/tok_1"), "/v1/tokens/{id}");
        assert_eq!(name("/v1/tokens/cleanup"), "/v1/tokens/cleanup");
        assert_eq!(name("/v1/tokens"), "/v1/tokens");
        assert_eq!(name("/v1/tokens/"), UNMATCHED);
        assert_eq!(name("/nowhere"), UNMATCHED);
        assert_eq!(table.templates.len(), 3, "a template registered twice is kept once");
    }

    #[test]
    #[should_panic(expected = "route template /v1/tokens/{other} cannot be named")]
    fn a_template_that_conflicts_with_another_stops_the_start() {
        RouteTemplates::new(["/v1/tokens/{id}", "/v1/tokens/{other}"]);
    }

    #[test]
    fn nested_templates_join_like_axum() {
        assert_eq!(nested("/dashboard", "/"), "/dashboard");
        assert_eq!(nested("/dashboard", "/tokens/{id}"), "/dashboard/tokens/{id}");
    }
}

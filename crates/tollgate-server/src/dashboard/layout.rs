//! The page shell every dashboard page shares (navigation by role, the signed-in user, sign-out),
//! the security headers of every answer, and the small pieces pages repeat: the CSRF field,
//! amounts, times and pagers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use tollgate::{Operation, Timestamp};

use super::assets::{SCRIPT, STYLESHEET};
use super::session::{CSRF_FIELD, Session};

/// No inline script or style, nothing from another origin, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Tokens,
    Users,
    ServiceAccounts,
    Projects,
    Limits,
    Usage,
    Agents,
    Budgets,
    ProviderKeys,
    Audit,
    Live,
    Account,
}

impl Section {
    const ALL: [Section; 12] = [
        Section::Overview,
        Section::Tokens,
        Section::Users,
        Section::ServiceAccounts,
        Section::Projects,
        Section::Limits,
        Section::Usage,
        Section::Agents,
        Section::Budgets,
        Section::ProviderKeys,
        Section::Audit,
        Section::Live,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Tokens => "Tokens",
            Section::Users => "Users",
            Section::ServiceAccounts => "Service accounts",
            Section::Projects => "Projects",
            Section::Limits => "Limits",
            Section::Usage => "Usage",
            Section::Agents => "Agents",
            Section::Budgets => "Budgets",
            Section::ProviderKeys => "Provider keys",
            Section::Audit => "Audit log",
            Section::Live => "Live",
            Section::Account => "Account",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Section::Overview => "/dashboard",
            Section::Tokens => "/dashboard/tokens",
            Section::Users => "/dashboard/users",
            Section::ServiceAccounts => "/dashboard/service-accounts",
            Section::Projects => "/dashboard/projects",
            Section::Limits => "/dashboard/limits",
            Section::Usage => "/dashboard/usage",
            Section::Agents => "/dashboard/agents",
            Section::Budgets => "/dashboard/budgets",
            Section::ProviderKeys => "/dashboard/provider-keys",
            Section::Audit => "/dashboard/audit",
            Section::Live => "/dashboard/live",
            Section::Account => "/dashboard/password",
        }
    }

    /// Whether the section shows anything to this user (the facade's matrix decides).
    fn visible(self, session: &Session) -> bool {
        match self {
            Section::Users => session.can(Operation::ReadUsers { user: None }),
            Section::ServiceAccounts => session.can(Operation::ReadServiceAccounts { account: None }),
            Section::Audit => session.can(Operation::ReadAudit),
            _ => true,
        }
    }
}

/// Security headers of every dashboard answer. The referrer policy is `same-origin`, not
/// `no-referrer`: under `no-referrer` a browser sends `Origin: null` with its form posts, which the
/// origin check must refuse (no URL of the dashboard carries a secret).
pub(crate) fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

fn document(title: &str, header: Markup, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tollgate" }
                link rel="stylesheet" href=(STYLESHEET.href());
                script src=(SCRIPT.href()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (header)
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// A page outside a session (sign-in, password change, errors).
pub(crate) fn bare_page(title: &str, main: Markup) -> Markup {
    document(title, html! { header.top { span.brand { "tollgate" } } }, main)
}

/// A 200 page of a signed-in user, with the renewed session's cookies if there are any.
pub(crate) fn page(session: &Session, current: Section, title: &str, main: Markup) -> Response {
    page_with_status(session, StatusCode::OK, current, title, main)
}

/// A page with `status` (a form re-shown with its error is 400).
pub(crate) fn page_with_status(
    session: &Session,
    status: StatusCode,
    current: Section,
    title: &str,
    main: Markup,
) -> Response {
    let header = html! {
        header.top {
            span.brand { "tollgate" }
            nav aria-label="Sections" {
                ul {
                    @for section in Section::ALL.into_iter().filter(|section| section.visible(session)) {
                        li {
                            a href=(section.href()) aria-current=[(section == current).then_some("page")] { (section.label()) }
                        }
                    }
                }
            }
            div.who {
                a href=(Section::Account.href()) { (session.username()) }
                form method="post" action="/dashboard/logout" {
                    (csrf_field(session))
                    button type="submit" { "Sign out" }
                }
            }
        }
    };
    let mut response = (status, document(title, header, main)).into_response();
    for cookie in &session.set_cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    secure_headers(&mut response);
    response
}

/// 303 to `location` after a form changed something, with the renewed session's cookies.
pub(crate) fn see_other(session: &Session, location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    for cookie in &session.set_cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    secure_headers(&mut response);
    response
}

/// The answer that shows a new secret (a token or an agent credential), once: sent with
/// `Cache-Control: no-store`, never put in a URL, never shown again.
pub(crate) fn shown_once(
    session: &Session,
    section: Section,
    heading: &str,
    secret: &str,
    back: &str,
    label: &str,
) -> Response {
    let body = html! {
        h1 { (heading) }
        div.secret role="alert" {
            p { strong { "Copy this secret now: it is shown once and cannot be shown again." } }
            p { code #secret { (secret) } }
            button type="button" data-copy="secret" { "Copy" }
        }
        p { a href=(back) { (label) } }
    };
    let mut response = page(session, section, heading, body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The hidden field every form carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    hidden_csrf(session.csrf())
}

/// The hidden CSRF field with `value` (the sign-in page has no session yet).
pub(crate) fn hidden_csrf(value: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(value); }
}

/// A notice above a page's content (`?done=…` after a form).
pub(crate) fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(text) = text { p.notice role="status" { (text) } } }
}

/// An amount of microdollars as dollars: cents from a dollar up, four decimals below.
pub(crate) fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    if micros >= 1_000_000 {
        format!("{sign}${}.{:02}", micros / 1_000_000, (micros % 1_000_000) / 10_000)
    } else {
        format!("{sign}${}.{:04}", micros / 1_000_000, (micros % 1_000_000) / 100)
    }
}

/// A time as `2030-01-01 10:00 UTC` in a `<time>` element.
pub(crate) fn time(at: Timestamp) -> Markup {
    let text = at.to_rfc3339();
    let shown = format!("{} UTC", text.get(..16).unwrap_or(&text).replace('T', " "));
    html! { time datetime=(text) { (shown) } }
}

/// An optional time, or a dash.
pub(crate) fn maybe_time(at: Option<Timestamp>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { "—" },
    }
}

/// A link to the next page when there is one; `query` is the current filter (already encoded).
pub(crate) fn pager(path: &str, query: &str, next_cursor: Option<&str>) -> Markup {
    html! {
        @if let Some(cursor) = next_cursor {
            @let mut encoded = form_urlencoded::Serializer::new(query.to_owned());
            @let href = format!("{path}?{}", encoded.append_pair("cursor", cursor).finish());
            p.pager { a href=(href) rel="next" { "Next page →" } }
        }
    }
}

/// A status word as a badge (`active`, `revoked`…), with a class per word for its colour.
pub(crate) fn badge(word: &str) -> Markup {
    html! { span class=(format!("badge badge-{word}")) { (word) } }
}

/// A table inside a scroll container (narrow screens scroll it sideways, not the page).
pub(crate) fn table(caption: &str, head: &[&str], rows: Markup) -> Markup {
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead { tr { @for cell in head { th scope="col" { (cell) } } } }
                tbody { (rows) }
            }
        }
    }
}

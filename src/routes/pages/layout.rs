//! What every page shares: the document around its content (head, a skip
//! link, the header with the navigation and who is signed in, the main
//! landmark, the footer), and the response that carries it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};

use super::request::SignedIn;

/// Escapes text for HTML element content and attribute values (for HTML
/// written without maud, e.g. TechEmpower's fortunes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who the header says is there.
#[derive(Clone, Copy)]
pub enum Account<'a> {
    SignedIn(&'a SignedIn),
    SignedOut,
    /// Not looked up (error pages): no account links.
    Unknown,
}

impl<'a> From<Option<&'a SignedIn>> for Account<'a> {
    fn from(visitor: Option<&'a SignedIn>) -> Self {
        visitor.map_or(Account::SignedOut, Account::SignedIn)
    }
}

/// A whole page: `title`, the header for `account` with the link to
/// `current` marked as the current page, and `content` as the main landmark.
pub fn document(title: &str, account: Account<'_>, current: &str, content: Markup) -> Markup {
    let links: &[(&str, &str)] = match account {
        Account::SignedIn(v) if v.is_teacher() => &[
            ("/dashboard", "Dashboard"),
            ("/cohort", "Cohort"),
            ("/quizzes", "Quizzes"),
        ],
        Account::SignedIn(_) => &[
            ("/dashboard", "Dashboard"),
            ("/quizzes", "Quizzes"),
            ("/attempts", "My attempts"),
        ],
        Account::SignedOut => &[
            ("/quizzes", "Quizzes"),
            ("/", "Sign in"),
            ("/register", "Register"),
        ],
        Account::Unknown => &[("/quizzes", "Quizzes"), ("/dashboard", "Dashboard")],
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · quizbench" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to main content" }
                header {
                    a.brand href="/" { "quizbench" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in links {
                                li {
                                    @if *href == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Account::SignedIn(v) = account {
                        form.account method="post" action="/logout" {
                            span { "Signed in as " strong { (v.session.username) } }
                            input type="hidden" name="csrf" value=(v.form_token());
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (content) }
                footer { "quizbench · a quiz app and a load-test target" }
            }
        }
    }
}

/// A signed-in visitor's page (200), headed by its title.
pub fn signed_in_page(visitor: &SignedIn, title: &str, current: &str, content: Markup) -> Response {
    let content = html! {
        h1 { (title) }
        (content)
    };
    let page = document(title, Account::SignedIn(visitor), current, content);
    html_response(StatusCode::OK, page)
}

/// An HTML response: `status`, never stored by caches (pages show who is
/// signed in).
pub fn html_response(status: StatusCode, page: Markup) -> Response {
    with_page((status, ()).into_response(), page)
}

/// `res` with `page` as its body, marked as HTML that caches never store.
pub fn with_page(mut res: Response, page: Markup) -> Response {
    *res.body_mut() = page.into_string().into();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A 303 See Other to `to` (after a form post, and for a page that needs
/// another first).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form's error message, announced when the page loads.
pub fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error #form-error role="alert" { (m) }
        }
    }
}

/// In place of a table of attempts, for a student who has made none.
pub fn no_attempts_yet() -> Markup {
    html! {
        div.card {
            p { "No attempts yet." }
            p { a href="/quizzes" { "Choose a quiz" } }
        }
    }
}

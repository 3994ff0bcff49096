//! Errors on pages, answered as pages of the site with the API error's
//! status and headers (`Retry-After`, the 5xx cause the request log
//! records): [`HtmlError`] for page handlers, the 404 of unknown paths a
//! browser asks for ([`wants_html`]), the 405 of page routes, and the 500
//! of a panic in a page handler. JSON stays JSON under `/api/` and for
//! every client that does not ask for HTML.

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{document, html_response, Account};
use crate::error::ApiError;

/// An error on a page: the API's error, answered as an HTML page.
#[derive(Debug)]
pub struct HtmlError(pub ApiError);

impl From<ApiError> for HtmlError {
    fn from(e: ApiError) -> Self {
        HtmlError(e)
    }
}

impl From<sqlx::Error> for HtmlError {
    fn from(e: sqlx::Error) -> Self {
        HtmlError(e.into())
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}

/// The page for `err`: its status and headers, the site's look, a title and
/// a sentence for people (a 4xx says what went wrong; a 5xx says nothing of
/// its cause).
pub fn error_page(err: ApiError) -> Response {
    let detail = (!err.status().is_server_error()).then(|| sentence(&err));
    let res = err.into_response();
    let page = render(res.status(), detail.as_deref());
    super::layout::with_page(res, page)
}

fn render(status: StatusCode, detail: Option<&str>) -> Markup {
    let (title, advice) = describe(status);
    document(
        title,
        Account::Unknown,
        "",
        html! {
            div.card {
                h1 { (title) }
                @if let Some(detail) = detail {
                    p { (detail) }
                }
                p { (advice) }
                p { a href="/" { "Go to the start page" } }
                p.muted { "Error " (status.as_u16()) }
            }
        },
    )
}

fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 | 413 | 422 => (
            "This request could not be used",
            "Go back, check the form and try again.",
        ),
        401 => ("Please sign in", "This page needs you to sign in first."),
        403 => (
            "You cannot open this page",
            "Your account does not have access to it.",
        ),
        404 => (
            "Page not found",
            "The address may be mistyped, or the page no longer exists.",
        ),
        405 => (
            "This page cannot do that",
            "Open the page with a link instead.",
        ),
        429 => ("Too many attempts", "Wait a little, then try again."),
        503 => (
            "Temporarily unavailable",
            "The site is busy or a service it needs is down. Try again in a moment.",
        ),
        _ if status.is_server_error() => (
            "Something went wrong",
            "The error has been logged. Try again in a moment.",
        ),
        _ => ("This request could not be completed", "Try again."),
    }
}

/// An error's message as a sentence for people: capitalized, with a full stop.
pub fn sentence(err: &ApiError) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    out.push('.');
    out
}

/// True when an unmatched request should get an HTML page: a browser asks
/// for HTML (`Accept: text/html`) outside `/api/`.
pub fn wants_html(uri: &Uri, headers: &HeaderMap) -> bool {
    !uri.path().starts_with("/api/")
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// A page route asked with another method.
pub async fn method_not_allowed() -> Response {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    html_response(status, render(status, None))
}

/// The 500 page of a panic in a page handler.
pub fn panic_page(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("page handler panicked");
    error_page(ApiError::Internal(anyhow::anyhow!("page handler panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    async fn text(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// A 500 page looks like the site, says nothing of its cause, and keeps
    /// the cause for the request log.
    #[tokio::test]
    async fn server_errors_are_pages_without_their_cause() {
        let res = error_page(ApiError::Internal(anyhow::anyhow!("secret_table broke")));
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(res.extensions().get::<crate::error::ErrorCause>().is_some());
        let body = text(res).await;
        assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
        assert!(body.contains("Something went wrong") && body.contains("/static/style.css"));
        assert!(!body.contains("secret_table"), "{body}");
    }

    #[tokio::test]
    async fn client_errors_say_what_went_wrong() {
        let res = error_page(ApiError::NotFound("quiz"));
        assert_eq!(res.status(), 404);
        let body = text(res).await;
        assert!(body.contains("Page not found") && body.contains("Quiz not found."));
        let res = error_page(ApiError::unavailable("database"));
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(method_not_allowed().await.status(), 405);
    }

    #[test]
    fn html_only_for_browsers_outside_the_api() {
        let browser: HeaderMap = [(header::ACCEPT, HeaderValue::from_static("text/html,*/*"))]
            .into_iter()
            .collect();
        let uri = |p: &str| p.parse::<Uri>().unwrap();
        assert!(wants_html(&uri("/nope"), &browser));
        assert!(!wants_html(&uri("/api/v1/nope"), &browser));
        assert!(!wants_html(&uri("/nope"), &HeaderMap::new()));
    }
}

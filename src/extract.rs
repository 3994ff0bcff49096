//! Extractors that fail in our JSON error format instead of axum's plain
//! text: JSON bodies, query strings, numeric ids and names in paths, HTML
//! form posts, and the current session. Handlers use these, never axum's own
//! `Json`, `Path` or `Query` (`clippy.toml` refuses them outside this module).
//!
//! Cross-site request forgery is refused here, by one rule for every write
//! a browser could be tricked into: a cookie-authenticated API write or any
//! HTML form post must come from our own site (`Sec-Fetch-Site`, else
//! `Origin`). A form posted by a signed-in browser must also carry the
//! session's form token ([`form_token`]), so a browser that sends neither
//! header is covered too.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::domain::validation;
use crate::error::ApiError;
use crate::sessions::Session;
use crate::state::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "qb_session";

/// `axum::Json` with our rejections: 415 without a JSON content type, 413
/// over the body limit, 400 for malformed JSON, 422 for the wrong shape.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    #[allow(clippy::disallowed_types)] // the wrapper itself
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if declared_too_large(&req) {
            return Err(ApiError::PayloadTooLarge);
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("malformed_json", format!("malformed JSON: {}", inner(&e)))
        }
        JsonRejection::JsonDataError(e) => ApiError::invalid(
            "invalid_body",
            format!("invalid request body: {}", inner(&e)),
        ),
        JsonRejection::BytesRejection(e) => unreadable_body(e.status()),
        _ => ApiError::bad_request("bad_request", "the request body could not be read"),
    }
}

/// A body that could not be read (axum's rejection `status`): over the
/// limit, or cut off.
fn unreadable_body(status: axum::http::StatusCode) -> ApiError {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request("unreadable_body", "the request body could not be read")
    }
}

/// serde's message without axum's prefix (it names no internals).
fn inner(e: &dyn std::error::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// A raw request body within the route's limit; 413 in our format beyond it.
pub struct AppBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for AppBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if declared_too_large(&req) {
            return Err(ApiError::PayloadTooLarge);
        }
        axum::body::Bytes::from_request(req, state)
            .await
            .map(AppBytes)
            .map_err(|e| unreadable_body(e.status()))
    }
}

/// The body limit of the route, as a request extension next to axum's
/// `DefaultBodyLimit` (whose value is private): the innermost layer wins, as
/// it does for `DefaultBodyLimit`. Lets the body extractors refuse a
/// declared `Content-Length` over the limit at once, instead of waiting for
/// a body that a slow client may never finish sending.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// axum's body limit and our record of it, as one layer.
pub fn body_limit(
    max: usize,
) -> tower::layer::util::Stack<axum::Extension<BodyLimit>, axum::extract::DefaultBodyLimit> {
    tower::layer::util::Stack::new(
        axum::Extension(BodyLimit(max)),
        axum::extract::DefaultBodyLimit::max(max),
    )
}

/// True when the request declares a body longer than its route's limit.
fn declared_too_large(req: &Request) -> bool {
    let Some(BodyLimit(limit)) = req.extensions().get::<BodyLimit>() else {
        return false;
    };
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > *limit as u64)
}

/// `axum::extract::Query` with our rejection (400 `invalid_query`).
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    #[allow(clippy::disallowed_types)] // the wrapper itself
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| AppQuery(v))
            .map_err(|_| {
                ApiError::bad_request("invalid_query", "the query string could not be read")
            })
    }
}

/// A positive numeric id from the last `{id}` path segment.
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::bad_request("invalid_id", "ids are positive integers");
        let NamePath(raw) = NamePath::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        validation::id(&raw).map(IdPath).ok_or_else(invalid)
    }
}

/// A `{name}` path segment, percent-decoded; our error format on failure.
pub struct NamePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = ApiError;

    #[allow(clippy::disallowed_types)] // the wrapper itself
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(name)| NamePath(name))
            .map_err(|_| ApiError::bad_request("invalid_path", "the path could not be decoded"))
    }
}

/// The session token a request carries: the cookie first, then a bearer token.
pub fn token_of(headers: &HeaderMap) -> Option<(String, bool)> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=') {
                if name == COOKIE && !v.is_empty() {
                    return Some((v.to_string(), true));
                }
            }
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| (token.trim().to_string(), false))
}

/// The authenticated caller. Cookie-authenticated writes must come from our
/// own site (Sec-Fetch-Site or Origin), or they are refused as cross-site.
pub struct CurrentUser {
    pub session: Session,
    pub token: String,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, via_cookie) = token_of(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let session = state
            .sessions
            .lookup(&token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if via_cookie && !is_safe_method(&parts.method) && is_cross_site(&parts.headers) {
            return Err(ApiError::Forbidden(
                "cross-site request refused for cookie authentication",
            ));
        }
        Ok(CurrentUser { session, token })
    }
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// True when a browser tells us the request comes from another site.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://").map(|(_, h)| h.as_bytes()));
        return origin_host.is_none() || origin_host != host;
    }
    // Non-browser clients send neither header.
    false
}

/// An HTML form post (`application/x-www-form-urlencoded`) from our own
/// site: its fields in order, repeated names kept (a group of checkboxes).
/// Refused with 403 when a browser says it comes from another site, 400
/// when it is not a form, 413 over the route's body limit.
#[derive(Debug, Default)]
pub struct FormPost(pub Vec<(String, String)>);

impl FormPost {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every value of field `name`, in order.
    pub fn all<'a: 'n, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormPost {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if is_cross_site(req.headers()) {
            return Err(ApiError::Forbidden("cross-site form post refused"));
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::bad_request(
                "not_a_form",
                "expected an HTML form post (application/x-www-form-urlencoded)",
            ));
        }
        let AppBytes(body) = AppBytes::from_request(req, state).await?;
        Ok(FormPost(
            form_urlencoded::parse(&body).into_owned().collect(),
        ))
    }
}

/// The form token of a session: a hidden field of every form a signed-in
/// page shows, derived from the session token (which only that browser
/// holds, in an HttpOnly cookie), so nothing is stored and another site
/// cannot know it. Reveals nothing of the session token (SHA-256).
pub fn form_token(session_token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"quizbench form token\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Refuses (403) a form whose `csrf` field is not the session's form token.
pub fn check_form_token(session_token: &str, form: &FormPost) -> Result<(), ApiError> {
    let expected = form_token(session_token);
    let given = form.get("csrf").unwrap_or_default();
    // Compared in constant time: the mismatch's position tells nothing.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this form has expired or was not made by this site: reload the page and try again",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)], method: Method) -> Parts {
        let mut b = Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn token_from_cookie_or_bearer() {
        let p = parts(&[("cookie", "a=b; qb_session=tok; c=d")], Method::GET);
        assert_eq!(token_of(&p.headers), Some(("tok".into(), true)));
        let p = parts(&[("authorization", "Bearer abc")], Method::GET);
        assert_eq!(token_of(&p.headers), Some(("abc".into(), false)));
        let p = parts(&[("authorization", "Basic abc")], Method::GET);
        assert_eq!(token_of(&p.headers), None);
        assert_eq!(token_of(&parts(&[], Method::GET).headers), None);
    }

    #[test]
    fn cross_site_detection() {
        let same = parts(&[("sec-fetch-site", "same-origin")], Method::POST);
        assert!(!is_cross_site(&same.headers));
        let cross = parts(&[("sec-fetch-site", "cross-site")], Method::POST);
        assert!(is_cross_site(&cross.headers));
        let origin_ok = parts(
            &[("origin", "http://h:8000"), ("host", "h:8000")],
            Method::POST,
        );
        assert!(!is_cross_site(&origin_ok.headers));
        let origin_bad = parts(
            &[("origin", "http://evil"), ("host", "h:8000")],
            Method::POST,
        );
        assert!(is_cross_site(&origin_bad.headers));
        assert!(!is_cross_site(&parts(&[], Method::POST).headers));
    }

    async fn form(headers: &[(&str, &str)], body: &str) -> Result<FormPost, ApiError> {
        let mut b = Request::builder().method(Method::POST).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        FormPost::from_request(
            b.body(axum::body::Body::from(body.to_string())).unwrap(),
            &(),
        )
        .await
    }

    #[tokio::test]
    async fn form_posts_keep_repeated_fields_and_refuse_other_sites() {
        let ct = ("content-type", "application/x-www-form-urlencoded");
        let f = form(
            &[ct, ("origin", "http://h"), ("host", "h")],
            "q=1&q=3&t=a+b%21",
        )
        .await
        .unwrap();
        assert_eq!(f.all("q").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(f.get("t"), Some("a b!"));
        assert_eq!(f.get("none"), None);
        let cross = form(&[ct, ("sec-fetch-site", "cross-site")], "q=1").await;
        assert_eq!(cross.unwrap_err().status(), 403);
        let json = form(&[("content-type", "application/json")], "{}").await;
        assert_eq!(json.unwrap_err().status(), 400);
    }

    #[test]
    fn form_tokens_are_bound_to_the_session() {
        let token = crate::sessions::new_token();
        let t = form_token(&token);
        assert_eq!(t, form_token(&token));
        assert_ne!(t, form_token(&crate::sessions::new_token()));
        assert!(!t.contains(&token));
        let with = |v: &str| FormPost(vec![("csrf".into(), v.into())]);
        assert!(check_form_token(&token, &with(&t)).is_ok());
        assert_eq!(
            check_form_token(&token, &with("forged"))
                .unwrap_err()
                .status(),
            403
        );
        assert!(check_form_token(&token, &FormPost::default()).is_err());
    }
}

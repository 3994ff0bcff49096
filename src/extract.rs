//! Extractors that fail in our JSON error format instead of axum's plain
//! text: JSON bodies, query strings, numeric ids and names in paths, and the
//! current session. Handlers use these, never axum's own `Json`, `Path` or
//! `Query` (`clippy.toml` refuses them outside this module).

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

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
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
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        }
        _ => ApiError::bad_request("bad_request", "the request body could not be read"),
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
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("unreadable_body", "the request body could not be read")
                }
            })
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

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
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

    #[allow(clippy::disallowed_types)] // the wrapper itself
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("invalid_id", "ids are positive integers"))?;
        validation::id(&raw)
            .map(IdPath)
            .ok_or_else(|| ApiError::bad_request("invalid_id", "ids are positive integers"))
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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, via_cookie) = token_of(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let session = state
            .sessions
            .lookup(&token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if via_cookie && !is_safe_method(&parts.method) && is_cross_site(parts) {
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
fn is_cross_site(parts: &Parts) -> bool {
    if let Some(site) = parts.headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts.headers.get(header::HOST).map(|h| h.as_bytes());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://").map(|(_, h)| h.as_bytes()));
        return origin_host.is_none() || origin_host != host;
    }
    // Non-browser clients send neither header.
    false
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
        assert!(!is_cross_site(&same));
        let cross = parts(&[("sec-fetch-site", "cross-site")], Method::POST);
        assert!(is_cross_site(&cross));
        let origin_ok = parts(
            &[("origin", "http://h:8000"), ("host", "h:8000")],
            Method::POST,
        );
        assert!(!is_cross_site(&origin_ok));
        let origin_bad = parts(
            &[("origin", "http://evil"), ("host", "h:8000")],
            Method::POST,
        );
        assert!(is_cross_site(&origin_bad));
        assert!(!is_cross_site(&parts(&[], Method::POST)));
    }
}

//! HTTP routes, one module per resource, each with its own `router()`.

pub mod attempts;
pub mod auth;
pub mod files;
pub mod grade;
pub mod ops;
pub mod pages;
pub mod progress;
pub mod quizzes;
pub mod students;
pub mod techempower;
pub mod user;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A pre-serialized JSON body as a response (built directly: one header
/// insert, where the `IntoResponse` tuple inserts the content type twice).
pub fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut res = Response::new(axum::body::Body::from(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Serializes `value` as a JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => crate::error::ApiError::Internal(e.into()).into_response(),
    }
}

//! The one error type of the HTTP API and its mapping to responses.
//!
//! Every handler returns `Result<_, ApiError>`. The body is always
//! `{"error":{"code":"...","message":"..."}}`; 5xx causes are logged by the
//! request middleware (from a response extension), never sent to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (syntax, bad id, bad header).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed but invalid content (validation failures).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many attempts, retry later")]
    TooManyRequests { retry_after: Duration },
    /// A dependency or capacity limit: retry later.
    #[error("{what} unavailable, retry later")]
    Unavailable {
        what: &'static str,
        retry_after: Duration,
    },
    #[error("the request took too long")]
    Timeout,
    /// Anything unexpected; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

// Its schema in the OpenAPI document; `error_body` writes it. (The doc
// comment below is the schema's description.)
/// The JSON error envelope every 4xx/5xx carries.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_answers`.
    code: String,
    message: String,
}

/// The cause of a 5xx, attached to the response so the middleware logs it.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub std::sync::Arc<String>);

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(what: &'static str) -> Self {
        ApiError::Unavailable {
            what,
            retry_after: Duration::from_secs(1),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests { retry_after }
            | ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            ApiError::Timeout => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Writes the JSON error envelope; `message` is JSON-escaped.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

/// A complete JSON error response outside of handlers (shedding, timeouts,
/// panics, rejections produced by middleware).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut res = (status, error_body(code, message)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Never send internal detail.
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let mut res = error_response(status, self.code(), &message);
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status.is_server_error() {
            let cause = match &self {
                ApiError::Internal(e) => format!("{e:#}"),
                other => other.to_string(),
            };
            res.extensions_mut()
                .insert(ErrorCause(std::sync::Arc::new(cause)));
        }
        res
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::unavailable("database")
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                // statement_timeout
                ApiError::Timeout
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| database_unavailable(&c)) => {
                ApiError::unavailable("database")
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

/// SQLSTATEs that mean "the database cannot serve now", a 503: admin
/// shutdown, crash shutdown, cannot connect now (57P01-03), and class 53,
/// insufficient resources: too many connections (53300: more pools than
/// `max_connections`, document 004's prefork), out of memory or disk.
fn database_unavailable(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("53")
}

impl From<crate::redis_pool::RedisPoolError> for ApiError {
    fn from(_: crate::redis_pool::RedisPoolError) -> Self {
        ApiError::unavailable("session store")
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(_: redis::RedisError) -> Self {
        ApiError::unavailable("session store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 500's body says "internal error" and nothing of its cause (here a
    /// SQL statement and a driver message), which only the log gets.
    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let cause = anyhow::anyhow!("relation \"secret_table\" does not exist")
            .context("SELECT password_hash FROM secret_table");
        let res = ApiError::Internal(cause).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let logged = res.extensions().get::<ErrorCause>().unwrap().0.clone();
        assert!(logged.contains("SELECT password_hash") && logged.contains("does not exist"));
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for leak in ["SELECT", "secret_table", "password_hash", "does not exist"] {
            assert!(!body.contains(leak), "the body leaks {leak:?}: {body}");
        }
        assert_eq!(v["error"]["code"], "internal");
        assert_eq!(v["error"]["message"], "internal error");
    }

    #[test]
    fn refused_connections_and_shutdowns_are_unavailable() {
        // 53300 (too many connections) was a 500 before.
        for code in ["53300", "53200", "57P01", "57P03"] {
            assert!(database_unavailable(code), "{code}");
        }
        for code in ["23505", "57014", "42P01"] {
            assert!(!database_unavailable(code), "{code}");
        }
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let res = ApiError::unavailable("database").into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn body_is_escaped_json() {
        let body = error_body("bad", "a \"quoted\" thing");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["message"], "a \"quoted\" thing");
        assert_eq!(v["error"]["code"], "bad");
    }
}

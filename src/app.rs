//! The router: every route module merged, and the middleware applied once.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate as _, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::error::{error_response, ApiError};
use crate::metrics::route_index;
use crate::routes;
use crate::server::ClientConn;
use crate::state::AppState;

/// Largest JSON body accepted by any route but file uploads.
pub const JSON_BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let cfg = state.cfg.clone();
    let api = Router::new()
        .merge(routes::auth::router())
        .merge(routes::user::router())
        .merge(routes::quizzes::router())
        .merge(routes::attempts::router())
        .merge(routes::progress::router())
        .merge(routes::students::router())
        .merge(routes::grade::router())
        .merge(routes::files::router(cfg.file_max_bytes))
        .layer(middleware::from_fn(no_store));
    let mut app = Router::new()
        .merge(api)
        .merge(routes::pages::router())
        .merge(routes::ops::router())
        .merge(crate::openapi::router())
        .merge(routes::techempower::router())
        .merge(test_hooks())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(crate::extract::body_limit(JSON_BODY_LIMIT))
        .layer(middleware::from_fn(tag_route))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state);
    let c = cfg.compression;
    if c.enabled() {
        let level = CompressionLevel::Precise(c.level);
        app = app.layer(
            CompressionLayer::new()
                .gzip(c.gzip)
                .br(c.br)
                .zstd(c.zstd)
                .no_deflate()
                .quality(level)
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(c.min_bytes))),
        );
    }
    app
}

/// Routes for the fault suite (tests/faults), present only when the
/// environment has `QUIZBENCH_TEST_HOOKS=1`: `GET /__test/panic` panics in
/// its handler (the panic must become a JSON 500 and the worker must keep
/// serving). Never set it in production.
fn test_hooks() -> Router<AppState> {
    if std::env::var("QUIZBENCH_TEST_HOOKS").as_deref() != Ok("1") {
        return Router::new();
    }
    Router::new().route(
        "/__test/panic",
        axum::routing::get(|| async {
            if true {
                panic!("test hook: /__test/panic");
            }
            StatusCode::NO_CONTENT
        }),
    )
}

/// Tells the connection which route template the request matched, for the
/// per-route metrics.
async fn tag_route(req: Request, next: Next) -> Response {
    if let Some(conn) = req.extensions().get::<ClientConn>() {
        conn.set_route(route_index(
            req.extensions().get::<MatchedPath>().map(|m| m.as_str()),
        ));
    }
    next.run(req).await
}

/// API responses are per user: never stored by shared caches.
async fn no_store(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

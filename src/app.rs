//! The router: the route list of [`routes::all`], the test hooks and the
//! fallbacks, with the middleware applied once; and the shortcut the server
//! tries before it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate as _, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::cache::Key;
use crate::error::{error_response, ApiError};
use crate::routes;
use crate::state::AppState;

/// Largest JSON body accepted by any route but file uploads.
pub const JSON_BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let cfg = state.cfg.clone();
    let routes = routes::all(cfg.file_max_bytes, cfg.app_cpu_cost).into_router();
    let mut app = routes
        .merge(test_hooks())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(crate::extract::body_limit(JSON_BODY_LIMIT))
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

/// What the server may answer before the router (see `server::Shortcut`):
/// `GET /api/v1/quizzes` and `GET /api/v1/quizzes/{id}` while the `local`
/// cache holds a current copy, unless the response might be compressed
/// (compression on and the client sent `Accept-Encoding`), which only the
/// router's layer does.
pub fn shortcut(state: &AppState) -> Option<crate::server::Shortcut> {
    if state.cfg.cache_mode != crate::config::CacheMode::Local {
        return None;
    }
    let compressing = state.cfg.compression.enabled();
    let state = state.clone();
    Some(std::sync::Arc::new(move |req| {
        if req.method() != axum::http::Method::GET
            || (compressing && req.headers().contains_key(header::ACCEPT_ENCODING))
        {
            return None;
        }
        let key = match req.uri().path() {
            "/api/v1/quizzes" => Key::QuizList,
            path => {
                // Digits only, so the segment reads the same before and
                // after the router's percent-decoding.
                let id = path.strip_prefix("/api/v1/quizzes/")?;
                Key::Quiz(crate::domain::validation::id(id)?)
            }
        };
        routes::quizzes::cached(&state, key)
    }))
}

/// Routes for the fault and process suites, present only when the
/// environment has `QUIZBENCH_TEST_HOOKS=1` (never set it in production):
/// - `GET /__test/panic` panics in its handler (the panic must become a JSON
///   500 and the worker must keep serving);
/// - `GET /__test/spin?ms=N` keeps a CPU-pool thread busy for N ms (at most
///   10 s), a CPU-bound request whose length does not depend on the machine.
fn test_hooks() -> Router<AppState> {
    if std::env::var("QUIZBENCH_TEST_HOOKS").as_deref() != Ok("1") {
        return Router::new();
    }
    Router::new()
        .route(
            "/__test/panic",
            axum::routing::get(|| async {
                if true {
                    panic!("test hook: /__test/panic");
                }
                StatusCode::NO_CONTENT
            }),
        )
        .route("/__test/spin", axum::routing::get(spin))
}

async fn spin(
    axum::extract::State(state): axum::extract::State<AppState>,
    crate::extract::AppQuery(q): crate::extract::AppQuery<std::collections::HashMap<String, u64>>,
) -> Result<StatusCode, ApiError> {
    let until = std::time::Instant::now()
        + std::time::Duration::from_millis(q.get("ms").copied().unwrap_or(0).min(10_000));
    state
        .cpu
        .run(move || {
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An unknown path: the site's 404 page for a browser outside `/api/`,
/// the JSON error for everyone else.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if routes::pages::wants_html(&uri, &headers) {
        return routes::pages::error_page(ApiError::NotFound("page"));
    }
    ApiError::NotFound("route").into_response()
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

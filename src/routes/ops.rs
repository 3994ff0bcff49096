//! Operational endpoints: liveness, readiness, Prometheus metrics and the
//! runtime view (which worker, pid and thread served this request).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use super::RouteList;
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default()
        .api(documented!(healthz))
        .api(documented!(readyz))
        .api(documented!(metrics))
        .api(documented!(runtime))
}

/// Liveness: no I/O, answers as long as the event loop runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive")))]
async fn healthz() -> Response {
    crate::server::alive()
}

/// Readiness: not ready while draining or when Postgres does not answer;
/// Redis is reported but does not fail readiness on its own (common content
/// can still be served from Postgres).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "Postgres unreachable or draining"),
    ))]
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.lifecycle.is_draining();
    let probe_timeout = state.cfg.db_acquire_timeout + Duration::from_millis(500);
    let postgres = matches!(
        tokio::time::timeout(probe_timeout, crate::db::server::ping(&state.db)).await,
        Ok(Ok(true))
    );
    let redis = redis_ok(&state).await;
    let ready = postgres && !draining;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "postgres": if postgres { "ok" } else { "unavailable" },
        "redis": if redis { "ok" } else { "unavailable" },
        "draining": draining,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    super::json(status, &body)
}

async fn redis_ok(state: &AppState) -> bool {
    let ping = async {
        let mut conn = state.redis.get().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(state.cfg.redis_timeout, ping).await,
        Ok(Some(_))
    )
}

/// Prometheus text for every worker of this server.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    state.publish_gauges();
    let text = state.metrics.render(&state.worker.model, super::labels());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Which process model, pid, worker and thread served this request.
#[utoipa::path(get, path = "/runtime", tag = "operations",
    responses((status = 200, description = "Process model of the serving worker")))]
async fn runtime(State(state): State<AppState>) -> Response {
    let w = &state.worker;
    let thread = std::thread::current();
    let body = serde_json::json!({
        "model": w.model,
        "pid": std::process::id(),
        "worker": w.index,
        "processes": w.processes,
        "threads": w.threads,
        "thread_per_core": w.thread_per_core,
        "listener": w.listener,
        "thread": thread.name().unwrap_or("unnamed"),
        "thread_id": format!("{:?}", thread.id()),
        "requests_served": state.slot.requests(),
        "in_flight": state.slot.in_flight(),
        "uptime_secs": w.started.elapsed().as_secs(),
        "cpu_offload": match state.cpu.mode() {
            crate::config::CpuOffload::Pool => "pool",
            crate::config::CpuOffload::Inline => "inline",
        },
        "cpu_pool_threads": state.cpu.threads(),
        "cache_mode": state.cache.mode().as_str(),
        "db_pool_max": state.cfg.db_pool_max,
        "redis_pool_max": state.cfg.redis_pool_max,
        "workers": state.metrics.workers_json(),
    });
    super::json(StatusCode::OK, &body)
}

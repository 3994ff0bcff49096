//! One request, before and around the router: shedding over the in-flight
//! limit, the liveness answer and the shortcut, the concurrency cap, the
//! request deadline, metrics, the access log, worker headers, and
//! `Connection: close` when the connection cannot carry another request.

use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tower::ServiceExt;

use super::connection::{Activity, ClientConn, WatchedBody, CLIENT};
use super::Shared;
use crate::error::error_response;

/// A 503 that asks the client to retry in a second.
fn retry_later(code: &'static str, message: &'static str) -> Response<Body> {
    let mut res = error_response(StatusCode::SERVICE_UNAVAILABLE, code, message);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// Awaits `fut` until `deadline`. Most requests finish on their first poll
/// (probes, cached content), so the timer is armed only when the first poll
/// returns pending: no timer-wheel insert and removal for those.
async fn run_with_deadline<F: std::future::Future>(
    fut: F,
    deadline: Instant,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = pin!(fut);
    let first =
        std::future::poll_fn(|cx| Poll::Ready(std::future::Future::poll(fut.as_mut(), cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout_at(deadline.into(), fut).await,
    }
}

const X_WORKER_ID: HeaderName = HeaderName::from_static("x-worker-id");
const X_WORKER_PID: HeaderName = HeaderName::from_static("x-worker-pid");

/// Paths that are never shed, capped or counted as load.
fn is_probe(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

pub(super) async fn handle(
    shared: &Shared,
    activity: &Arc<Activity>,
    req: Request<Incoming>,
) -> Response<Body> {
    activity.busy();
    let slot = shared.slot;
    let opts = &shared.opts;
    // Answers made without waiting (liveness, shortcut hits, sheds) only
    // build a response: they are recorded as 0 µs without reading the clock
    // (unless the access log wants their time), so the latency sum leaves
    // out their build time.
    let mut started = opts.access_log.then(Instant::now);
    let path = req.uri().path();
    let probe = is_probe(path);
    let liveness = path == "/healthz" && req.method() == Method::GET;
    let route = if liveness {
        shared.labels.liveness()
    } else {
        shared.labels.of_path(path)
    };
    let declares_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    activity.body_read.store(!declares_body, Relaxed);
    let method = req.method().clone();
    let logged_path = opts.access_log.then(|| path.to_string());
    let in_flight = slot.request_started();
    let mut res = if !probe && opts.max_in_flight > 0 && in_flight as usize > opts.max_in_flight {
        slot.shed();
        retry_later(
            "overloaded",
            "the server is at its in-flight request limit, retry later",
        )
    } else if liveness {
        // Liveness is answered here, before the router and its layers, as
        // nginx answers `return 200`: it shows the serving floor, and it
        // answers whatever the application's middleware is doing. Same body
        // as the routed handler (which still serves HEAD and documents it).
        super::alive()
    } else if let Some(res) = shared.shortcut.as_ref().and_then(|answer| answer(&req)) {
        res
    } else {
        let started = *started.get_or_insert_with(Instant::now);
        let _permit = match (&shared.concurrency, probe) {
            (Some(sem), false) => Some(sem.acquire().await.expect("never closed")),
            _ => None,
        };
        let req = if declares_body {
            let activity = activity.clone();
            req.map(|inner| Body::new(WatchedBody { inner, activity }))
        } else {
            req.map(Body::new)
        };
        let client = ClientConn(activity.clone());
        let routed = run_with_deadline(
            shared.router.clone().oneshot(req),
            started + opts.request_timeout,
        );
        match CLIENT.scope(client, routed).await {
            Ok(Ok(res)) => res,
            Ok(Err(never)) => match never {},
            Err(_) => {
                slot.timeout();
                retry_later(
                    "timeout",
                    "the request took longer than the request timeout",
                )
            }
        }
    };
    let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
    // Answered before the body was read (a refusal): the connection cannot
    // carry another request; say so, so that the client does not reuse it.
    let unread = !activity.body_read.load(Relaxed);
    activity.linger.store(unread, Relaxed);
    slot.record(route, res.status().as_u16(), elapsed);
    slot.request_finished();
    if let Some(cause) = res.extensions().get::<crate::error::ErrorCause>() {
        tracing::error!(%method, route = shared.labels.name(route), status = res.status().as_u16(), cause = %cause.0, "request failed");
    }
    if let Some(path) = logged_path {
        tracing::info!(%method, path, status = res.status().as_u16(), micros = elapsed.as_micros() as u64, "request");
    }
    let headers = res.headers_mut();
    if let Some((id, pid)) = &opts.worker_headers {
        headers.insert(X_WORKER_ID, id.clone());
        headers.insert(X_WORKER_PID, pid.clone());
    }
    if unread || shared.lifecycle.is_draining() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    activity.idle();
    res
}

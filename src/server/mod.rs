//! Our own accept loop: hyper's HTTP/1 connection builder driving the axum
//! router, with the timeouts and limits a load-test target needs.
//!
//! axum's `serve` installs no timer (so no protection against clients that
//! trickle headers) and its graceful shutdown waits for idle keep-alive
//! connections forever. Here every connection has:
//! - a header-read deadline (from the first byte of a request to its
//!   complete head) and a keep-alive idle timeout, enforced by a watchdog
//!   that watches the socket's activity;
//! - a per-process connection cap (accepting pauses at the cap, so the rest
//!   wait in the kernel backlog) and an optional concurrency cap (requests in
//!   flight per worker, the sync-worker emulation: accepting also pauses);
//! - a shedding limit on requests in flight (503 + Retry-After at once) and
//!   a request deadline;
//! - a drain: on shutdown, accepting stops, in-flight requests finish, each
//!   connection's next response carries `Connection: close`, idle
//!   keep-alive connections are left to their idle timeout (closing them
//!   under a client that is writing would reset its request), and whatever
//!   is still open at the drain deadline is closed.

mod connection;
mod lifecycle;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use connection::serve_connection;
pub use connection::ClientConn;
pub use lifecycle::{Lifecycle, Phase};

use crate::metrics::{RouteLabels, Slot};

/// Answers a request before the router when it can without I/O (a current
/// cached copy); `None` sends it through the router. Such answers skip the
/// router and the concurrency cap, like `/healthz`, but are counted, shed
/// and timed like every request.
pub type Shortcut = Arc<dyn Fn(&Request<Incoming>) -> Option<Response<Body>> + Send + Sync>;

/// Connection and request limits of one worker.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub request_timeout: Duration,
    pub graceful_timeout: Duration,
    pub max_connections: usize,
    /// Requests in flight beyond which new ones are shed with 503 (0 = off).
    pub max_in_flight: usize,
    /// Requests handled at once; the rest wait (0 = off).
    pub concurrency_cap: usize,
    /// `X-Worker-Id` / `X-Worker-Pid` values, when enabled.
    pub worker_headers: Option<(HeaderValue, HeaderValue)>,
    pub access_log: bool,
}

impl ServeOptions {
    pub fn from_config(cfg: &crate::config::Config, worker_index: usize) -> Self {
        ServeOptions {
            header_read_timeout: cfg.header_read_timeout,
            keepalive_timeout: cfg.keepalive_timeout,
            request_timeout: cfg.request_timeout,
            graceful_timeout: cfg.graceful_timeout,
            max_connections: cfg.max_connections,
            max_in_flight: cfg.max_in_flight,
            concurrency_cap: cfg.concurrency_cap,
            worker_headers: cfg.worker_headers.then(|| {
                (
                    HeaderValue::from(worker_index as u64),
                    HeaderValue::from(std::process::id()),
                )
            }),
            access_log: cfg.access_log,
        }
    }
}

/// What a worker serves: the router (and the shortcut answered before
/// it), how, and where requests are counted (`slot`, under `labels`).
pub struct Site {
    pub router: Router,
    pub shortcut: Option<Shortcut>,
    pub opts: ServeOptions,
    pub slot: &'static Slot,
    pub labels: &'static RouteLabels,
    pub lifecycle: Lifecycle,
}

/// What one worker's `serve` shares with all its connections: the site,
/// and the permits of its concurrency cap.
struct Shared {
    site: Site,
    concurrency: Option<Semaphore>,
}

impl std::ops::Deref for Shared {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

/// Serves `site` on `listeners` until its lifecycle starts draining, then
/// drains for at most the graceful timeout. Returns true when every
/// connection finished before the deadline.
pub async fn serve(listeners: Vec<TcpListener>, site: Site) -> bool {
    let graceful = site.opts.graceful_timeout;
    let lifecycle = site.lifecycle.clone();
    let cap = site.opts.concurrency_cap;
    let shared = Arc::new(Shared {
        concurrency: (cap > 0).then(|| Semaphore::new(cap)),
        site,
    });
    // Every connection task holds a clone of `done_tx`; when all are gone,
    // `done_rx.recv()` returns None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let conn_cap = Arc::new(Semaphore::new(shared.opts.max_connections));
    let mut accept_loops = Vec::new();
    for listener in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            conn_cap.clone(),
            done_tx.clone(),
        )));
    }
    drop(done_tx);
    let mut phase = lifecycle.subscribe();
    let _ = phase.wait_for(|p| *p != Phase::Running).await;
    for task in accept_loops {
        let _ = task.await;
    }
    let finished = tokio::time::timeout(graceful, done_rx.recv()).await.is_ok();
    if !finished {
        lifecycle.close_all();
        // Connections drop their sockets as soon as they see Closing.
        let _ = tokio::time::timeout(Duration::from_secs(1), done_rx.recv()).await;
    }
    finished
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    conn_cap: Arc<Semaphore>,
    done: mpsc::Sender<()>,
) {
    let mut phase = shared.lifecycle.subscribe();
    loop {
        // Pause accepting at the connection cap and, with a concurrency
        // cap, while every request slot is busy: the kernel backlog queues.
        let permit = tokio::select! {
            p = conn_cap.clone().acquire_owned() => p.expect("never closed"),
            _ = phase.wait_for(|p| *p != Phase::Running) => break,
        };
        if let Some(sem) = &shared.concurrency {
            tokio::select! {
                p = sem.acquire() => drop(p),
                _ = phase.wait_for(|p| *p != Phase::Running) => break,
            }
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = phase.wait_for(|p| *p != Phase::Running) => break,
        };
        match accepted {
            Ok((stream, peer)) => spawn_connection(stream, peer, &shared, permit, &done),
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    sweep_backlog(&listener, &shared, &conn_cap, &done);
}

/// When the drain starts, connections the kernel has already queued on the
/// socket would be reset once it closes (when this worker drops it, if no
/// other process holds it): accept them now and serve them; their
/// responses carry `Connection: close`. Non-blocking accepts until the
/// queue is empty (or the connection cap is reached).
fn sweep_backlog(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    conn_cap: &Arc<Semaphore>,
    done: &mpsc::Sender<()>,
) {
    let socket = socket2::SockRef::from(listener);
    while let Ok(permit) = conn_cap.clone().try_acquire_owned() {
        let Ok((conn, peer)) = socket.accept() else {
            return; // WouldBlock: the queue is empty
        };
        let Some(peer) = peer.as_socket() else {
            continue;
        };
        let stream = std::net::TcpStream::from(conn);
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let Ok(stream) = TcpStream::from_std(stream) else {
            continue;
        };
        spawn_connection(stream, peer, shared, permit, done);
    }
}

/// Serves an accepted connection in its own task, which holds a place
/// under the connection cap (`permit`) and a clone of `done` until it ends.
fn spawn_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    shared: &Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
    done: &mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    let done = done.clone();
    tokio::spawn(async move {
        serve_connection(stream, peer, shared).await;
        drop(permit);
        drop(done);
    });
}

/// The liveness response: the server answers `GET /healthz` with it before
/// routing (see `request::handle`), and the routed handler (which also
/// serves HEAD and is documented) with the same body.
pub fn alive() -> Response<Body> {
    let mut res = Response::new(Body::from(&b"{\"status\":\"ok\"}"[..]));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tower::ServiceExt;

use crate::error::error_response;
use crate::metrics::{route_of_path, Slot, HEALTHZ_ROUTE};

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

/// Life-cycle of a worker, shared by its accept loops and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Stop accepting; finish what is in flight.
    Draining,
    /// Drain deadline reached: close everything.
    Closing,
}

/// Handle to start a drain and to observe it (readiness reads it).
#[derive(Clone)]
pub struct Lifecycle {
    tx: Arc<watch::Sender<Phase>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            tx: Arc::new(watch::channel(Phase::Running).0),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// Begins the drain (idempotent).
    pub fn drain(&self) {
        self.tx.send_if_modified(|p| {
            let changed = *p == Phase::Running;
            if changed {
                *p = Phase::Draining;
            }
            changed
        });
    }

    /// Resolves once a drain has started.
    pub async fn wait_draining(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Running).await;
    }

    fn close_all(&self) {
        self.tx.send_replace(Phase::Closing);
    }

    fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}

/// What one worker's `serve` shares with all its connections.
struct Shared {
    router: Router,
    shortcut: Option<Shortcut>,
    opts: ServeOptions,
    slot: &'static Slot,
    lifecycle: Lifecycle,
    concurrency: Option<Semaphore>,
}

/// Serves `router` on `listeners` until `lifecycle` starts draining, then
/// drains for at most the graceful timeout. Returns true when every
/// connection finished before the deadline.
pub async fn serve(
    listeners: Vec<TcpListener>,
    router: Router,
    shortcut: Option<Shortcut>,
    opts: ServeOptions,
    slot: &'static Slot,
    lifecycle: Lifecycle,
) -> bool {
    let graceful = opts.graceful_timeout;
    let shared = Arc::new(Shared {
        concurrency: (opts.concurrency_cap > 0).then(|| Semaphore::new(opts.concurrency_cap)),
        router,
        shortcut,
        opts,
        slot,
        lifecycle: lifecycle.clone(),
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
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, shared).await;
                    drop(permit);
                    drop(done);
                });
            }
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
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, shared).await;
            drop(permit);
            drop(done);
        });
    }
}

/// Where a connection is in its request cycle, for the watchdog.
const IDLE: u8 = 0;
const READING_HEAD: u8 = 1;
const BUSY: u8 = 2;

/// One connection's state shared with its requests: the watchdog's phase
/// and when it began, the peer address, and how the current request's body
/// was consumed.
///
/// Phase changes are stamped with the coarse monotonic clock (one tick of
/// the kernel's timer, a few ms): the watchdog's timeouts are seconds, and a
/// precise clock read costs ~0.1 µs here, three times per request.
pub struct Activity {
    phase: AtomicU8,
    /// Coarse-clock milliseconds when the current phase began.
    since_ms: AtomicU64,
    peer: SocketAddr,
    /// The current request's body has been read to its end (or it has none).
    body_read: AtomicBool,
    /// The last response was sent before its request body was read: the
    /// connection closes, with a lingering drain.
    linger: AtomicBool,
}

/// `CLOCK_MONOTONIC_COARSE` in milliseconds.
fn coarse_now_ms() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    // The clock exists on every Linux since 2.6.32; a failure reads as 0,
    // which only makes a timeout later, never earlier.
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
    })
}

impl Activity {
    fn new(peer: SocketAddr) -> Self {
        Activity {
            // A new connection is waiting for its first request head.
            phase: AtomicU8::new(READING_HEAD),
            since_ms: AtomicU64::new(coarse_now_ms()),
            peer,
            body_read: AtomicBool::new(true),
            linger: AtomicBool::new(false),
        }
    }

    fn on_read(&self) {
        if self.phase.load(Relaxed) == IDLE {
            self.since_ms.store(coarse_now_ms(), Relaxed);
            self.phase.store(READING_HEAD, Relaxed);
        }
    }

    fn on_write(&self) {
        if self.phase.load(Relaxed) == IDLE {
            self.since_ms.store(coarse_now_ms(), Relaxed);
        }
    }

    fn busy(&self) {
        self.phase.store(BUSY, Relaxed);
    }

    fn idle(&self) {
        self.since_ms.store(coarse_now_ms(), Relaxed);
        self.phase.store(IDLE, Relaxed);
    }

    /// When the current phase times out; busy connections are re-checked
    /// after the shorter of the two timeouts.
    fn deadline(&self, header: Duration, keepalive: Duration) -> (u8, Instant) {
        let phase = self.phase.load(Relaxed);
        let limit = match phase {
            IDLE => keepalive,
            READING_HEAD => header,
            _ => return (phase, Instant::now() + header.min(keepalive)),
        };
        let age =
            Duration::from_millis(coarse_now_ms().saturating_sub(self.since_ms.load(Relaxed)));
        (phase, Instant::now() + limit.saturating_sub(age))
    }
}

/// A TCP stream that reports reads and writes to the connection's watchdog.
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

/// How long, and how many bytes, a lingering close reads and discards.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

impl Drop for TrackedStream {
    /// A response sent before its request body was read (413, 415, 401 or
    /// 503 on an upload, ...) ends the connection with unread bytes in the
    /// socket; closing it then sends a reset, and a client still writing
    /// its body may lose the response. Instead, like nginx's lingering
    /// close: send FIN and keep reading (and discarding) for a bounded
    /// while on a duplicate of the socket.
    fn drop(&mut self) {
        if !self.activity.linger.load(Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(fd) = std::os::fd::AsFd::as_fd(&self.inner).try_clone_to_owned() else {
            return;
        };
        let socket = std::net::TcpStream::from(fd);
        let _ = socket.shutdown(std::net::Shutdown::Write);
        handle.spawn(async move {
            // The duplicate shares the original's non-blocking mode.
            let Ok(mut socket) = TcpStream::from_std(socket) else {
                return;
            };
            let mut buf = vec![0u8; 16 * 1024];
            let mut total = 0;
            let _ = tokio::time::timeout(LINGER_TIME, async {
                while total < LINGER_BYTES {
                    match tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            })
            .await;
        });
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        res
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        res
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that records on its connection when it has been read to
/// its end, so a response sent before that can close the connection.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl hyper::body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let res = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(res, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.activity.body_read.store(true, Relaxed);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection of the request being handled.
#[derive(Clone)]
pub struct ClientConn(Arc<Activity>);

tokio::task_local! {
    /// Set around each request's handling: a task-local instead of a request
    /// extension, which would allocate an extension map on every request.
    static CLIENT: ClientConn;
}

impl ClientConn {
    /// The connection of the request this task is handling (None outside one).
    pub fn current() -> Option<ClientConn> {
        CLIENT.try_with(ClientConn::clone).ok()
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    shared.slot.connection_opened();
    let activity = Arc::new(Activity::new(peer));
    let io = TokioIo::new(TrackedStream {
        inner: stream,
        activity: activity.clone(),
    });
    let svc = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            let activity = activity.clone();
            async move { Ok::<_, Infallible>(handle(&shared, &activity, req).await) }
        })
    };
    let opts = &shared.opts;
    // No hyper timer: the watchdog below enforces the header-read and
    // keep-alive timeouts (hyper's own header timer would cost a boxed
    // sleep per request).
    let mut builder = hyper::server::conn::http1::Builder::new();
    // writev(false): hyper copies the body after the head and sends one
    // buffer; measured faster than a vectored write for the small responses
    // that dominate (scripts/bench.sh).
    builder
        .keep_alive(true)
        .writev(false)
        .max_buf_size(64 * 1024);
    let mut conn = pin!(builder.serve_connection(io, svc));
    let mut phase = shared.lifecycle.subscribe();
    let mut closing_idle = false;
    loop {
        let (state, deadline) = activity.deadline(opts.header_read_timeout, opts.keepalive_timeout);
        tokio::select! {
            biased;
            _ = conn.as_mut() => break,
            _ = tokio::time::sleep_until(deadline.into()) => {
                let (now_state, now_deadline) =
                    activity.deadline(opts.header_read_timeout, opts.keepalive_timeout);
                if now_state != state || now_deadline > Instant::now() {
                    continue;
                }
                match state {
                    // Slow or silent client: drop the socket.
                    READING_HEAD => break,
                    IDLE if !closing_idle => {
                        closing_idle = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
            }
            _ = phase.wait_for(|p| *p == Phase::Closing) => break,
        }
    }
    shared.slot.connection_closed();
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

async fn handle(
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
        HEALTHZ_ROUTE
    } else {
        route_of_path(path)
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
        let mut res = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at its in-flight request limit, retry later",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        res
    } else if liveness {
        // Liveness is answered here, before the router and its layers, as
        // nginx answers `return 200`: it shows the serving floor, and it
        // answers whatever the application's middleware is doing. Same body
        // as the routed handler (which still serves HEAD and documents it).
        crate::routes::ops::alive()
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
                let mut res = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took longer than the request timeout",
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
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
        tracing::error!(%method, route = crate::metrics::ROUTES[route], status = res.status().as_u16(), cause = %cause.0, "request failed");
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

//! One client connection: hyper's HTTP/1 connection driven under a
//! watchdog (header-read deadline, keep-alive idle timeout, closing at the
//! drain deadline), a stream that reports its activity and lingers on close
//! when a request body was left unread, and the task-local [`ClientConn`]
//! that lets a handler see its peer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::request::handle;
use super::{Phase, Shared};

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
    pub(super) body_read: AtomicBool,
    /// The last response was sent before its request body was read: the
    /// connection closes, with a lingering drain.
    pub(super) linger: AtomicBool,
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

    pub(super) fn busy(&self) {
        self.phase.store(BUSY, Relaxed);
    }

    pub(super) fn idle(&self) {
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
pub(super) struct WatchedBody {
    pub(super) inner: Incoming,
    pub(super) activity: Arc<Activity>,
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
pub struct ClientConn(pub(super) Arc<Activity>);

tokio::task_local! {
    /// Set around each request's handling: a task-local instead of a request
    /// extension, which would allocate an extension map on every request.
    pub(super) static CLIENT: ClientConn;
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

pub(super) async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
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

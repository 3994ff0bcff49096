//! A trivial in-process HTTP/1.1 target for `quizload calibrate` (and
//! `quizload target`): it answers every request with a fixed `200 OK`
//! (`ok`, keep-alive) and does nothing else, so a run against it measures
//! the generator's own ceiling on this machine. It listens on loopback
//! addresses only, runs on its own threads and runtime (so its CPU time is
//! not charged to the generator's threads), and stops when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

/// A running trivial target.
#[derive(Debug)]
pub struct TrivialTarget {
    addr: SocketAddr,
    _server: ServerThread,
}

/// A server's accept loop on a thread of its own, in a runtime of its own;
/// dropping it stops the loop and joins the thread. (The trivial target
/// runs on one; so do the tests' servers.)
#[derive(Debug)]
pub struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(listener)` (the listener made non-blocking) in `rt` on
    /// a thread named `name`, until dropped.
    pub fn spawn<F, Fut>(
        name: &str,
        rt: tokio::runtime::Runtime,
        listener: std::net::TcpListener,
        serve: F,
    ) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        listener.set_nonblocking(true)?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = rx => {}
                        _ = serve(listener) => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Self {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TrivialTarget {
    /// Starts the target on 127.0.0.1 (a free port) with `threads` threads.
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        Self::start_on(([127, 0, 0, 1], 0).into(), threads)
    }

    /// Starts the target on `addr` (a loopback address) with `threads`
    /// threads.
    pub fn start_on(addr: SocketAddr, threads: usize) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("the trivial target listens on loopback addresses only");
        }
        let std_listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot bind the target to {addr}"))?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("quizload-target")
            .enable_all()
            .build()
            .context("cannot build the target's runtime")?;
        let server = ServerThread::spawn("quizload-target-main", rt, std_listener, accept_loop)?;
        Ok(Self {
            addr,
            _server: server,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves for `duration`, or until the process is killed, then stops.
    pub fn serve_for(self, duration: Option<Duration>) {
        match duration {
            Some(d) => std::thread::sleep(d),
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    }
}

/// Answers each complete request (head plus any Content-Length body).
async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(RESPONSE.len() * 16);
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        // answer every complete request in the buffer
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[start..end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let body = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| {
                            std::str::from_utf8(h.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        })
                        .unwrap_or(0);
                    if end - start < len + body {
                        break;
                    }
                    start += len + body;
                    out.extend_from_slice(RESPONSE);
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if start == end {
            start = 0;
            end = 0;
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
        match stream.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}

//! A trivial in-process HTTP/1.1 target for `quizload calibrate` (and
//! `quizload target`): it answers every request with a fixed `200 OK`
//! (`ok`, keep-alive) and does nothing else, so a run against it measures
//! the generator's own ceiling on this machine. It listens on loopback
//! addresses only, runs on its own threads and runtime (so its CPU time is
//! not charged to the generator's threads), and stops when dropped.

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
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("quizload-target")
            .enable_all()
            .build()
            .context("cannot build the target's runtime")?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("quizload-target-main".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    tokio::select! {
                        _ = rx => {}
                        _ = accept_loop(listener) => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Self {
            addr,
            stop: Some(tx),
            thread: Some(thread),
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

impl Drop for TrivialTarget {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

//! A small HTTP/1.1 test server with known behaviour, on 127.0.0.1:0, for
//! the engine tests. Each request is answered by a handler closure that
//! returns a [`Reply`]: a status and body after an optional delay, framed by
//! Content-Length or chunked, optionally closing or resetting the
//! connection, or never answering. It runs on its own thread and runtime and
//! stops when dropped. [`quizload`] runs the binary and makes scratch
//! folders; [`quizbench`] starts the real server with a database of its
//! own.

#![allow(dead_code)]

pub mod quizbench;
pub mod quizload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadtests::calibrate::target::ServerThread;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A parsed request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers.
#[derive(Debug, Clone)]
pub enum Framing {
    Length,
    Chunked,
    /// Content-Length plus `Connection: close`, then close.
    Close,
    /// Reset the connection (SO_LINGER 0) without answering.
    Reset,
    /// Never answer (until the client goes away).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Wait until this instant before answering (a server-wide stall).
    pub until: Option<Instant>,
    pub framing: Framing,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            until: None,
            framing: Framing::Length,
        }
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn framing(mut self, f: Framing) -> Self {
        self.framing = f;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// The running server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Requests seen, by `METHOD path`.
    pub hits: Arc<Mutex<HashMap<String, u64>>>,
    pub total: Arc<AtomicU64>,
    _server: ServerThread,
}

impl TestServer {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let total = Arc::new(AtomicU64::new(0));
        let (h2, t2) = (hits.clone(), total.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let accept = |listener: TcpListener| async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::spawn(serve(s, handler.clone(), h2.clone(), t2.clone()));
            }
        };
        Self {
            addr,
            hits,
            total,
            _server: ServerThread::spawn("test-server", rt, std_listener, accept).unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn hits(&self, key: &str) -> u64 {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

async fn serve(
    mut s: TcpStream,
    handler: Handler,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    total: Arc<AtomicU64>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 8192];
    loop {
        // one request: head, then Content-Length body
        let req = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = r.parse(&buf) {
                let hs: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let cl: usize = hs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= len + cl {
                    let req = Req {
                        method: r.method.unwrap().to_string(),
                        path: r.path.unwrap().to_string(),
                        headers: hs,
                        body: buf[len..len + cl].to_vec(),
                    };
                    buf.drain(..len + cl);
                    break req;
                }
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        total.fetch_add(1, Ordering::SeqCst);
        *hits
            .lock()
            .unwrap()
            .entry(format!("{} {}", req.method, req.path))
            .or_insert(0) += 1;
        let reply = handler(&req);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        if let Some(u) = reply.until {
            tokio::time::sleep_until(u.into()).await;
        }
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status).into_bytes();
        for (k, v) in &reply.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        match reply.framing {
            Framing::Hang => {
                // wait for the client to give up
                let _ = s.read(&mut tmp).await;
                return;
            }
            Framing::Reset => {
                let _ = s.set_zero_linger();
                return;
            }
            Framing::Chunked => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for piece in reply.body.chunks(3) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            Framing::Length | Framing::Close => {
                if matches!(reply.framing, Framing::Close) {
                    out.extend_from_slice(b"Connection: close\r\n");
                }
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", reply.body.len()).as_bytes(),
                );
                out.extend_from_slice(&reply.body);
            }
        }
        if s.write_all(&out).await.is_err() {
            return;
        }
        if matches!(reply.framing, Framing::Close) {
            let _ = s.shutdown().await;
            return;
        }
    }
}

/// A server-wide stall: once `after` requests have been seen, every request
/// arriving in the next `len` waits until the stall ends.
pub struct Stall {
    after: u64,
    len: Duration,
    seen: AtomicU64,
    end: Mutex<Option<Instant>>,
}

impl Stall {
    pub fn new(after: u64, len: Duration) -> Arc<Self> {
        Arc::new(Self {
            after,
            len,
            seen: AtomicU64::new(0),
            end: Mutex::new(None),
        })
    }

    /// When the current request must wait until, if at all.
    pub fn until(&self) -> Option<Instant> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let mut end = self.end.lock().unwrap();
        if n == self.after {
            *end = Some(Instant::now() + self.len);
        }
        match *end {
            Some(e) if Instant::now() < e => Some(e),
            _ => None,
        }
    }
}

//! One keep-alive HTTP/1.1 connection ([`Connection`]) and the parsing of
//! its responses.
//!
//! Responses are parsed in place with `httparse` from a buffer owned by the
//! connection and reused for every exchange, so the hot path allocates
//! nothing. Bodies framed by `Content-Length`, `chunked` transfer coding, or
//! the end of the connection are all handled; a `Connection: close` (or an
//! HTTP/1.0 response without keep-alive) marks the connection as finished
//! so the caller reconnects. It must not time out, reconnect or retry (the
//! caller does) nor record anything.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Initial size of a connection's read buffer.
const READ_BUF: usize = 16 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 256 * 1024;
/// Headers parsed per response.
const MAX_HEADERS: usize = 64;

/// What the caller wants kept from a response besides its status.
#[derive(Debug, Default)]
pub struct Capture {
    /// Keep the (de-chunked) body in [`Capture::body`].
    pub body_wanted: bool,
    /// The body, when wanted; cleared at the start of each exchange.
    pub body: Vec<u8>,
    /// Keep the value of the cookie with this name from `Set-Cookie`.
    pub cookie_name: Option<String>,
    /// The captured cookie value, if the response set it.
    pub cookie: Option<String>,
}

impl Capture {
    fn reset(&mut self) {
        self.body.clear();
        self.cookie = None;
    }
}

/// A response that was read completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    pub status: u16,
    /// False when the server closed or asked to close the connection.
    pub keep_alive: bool,
    /// Bytes of the response, head and body as they came on the wire.
    pub wire_bytes: u64,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// An I/O error or an unexpected end of the connection.
    /// `before_response` tells whether no response byte had arrived yet,
    /// which on a reused keep-alive connection means the server had closed
    /// it and the request can be retried on a fresh one.
    Io {
        error: io::Error,
        before_response: bool,
    },
    /// The response was not valid HTTP/1.x.
    Protocol(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Io { error, .. } => write!(f, "I/O error: {error}"),
            ExchangeError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by peer")
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One HTTP/1.1 connection with its reusable read buffer.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Responses read on this connection so far.
    pub served: u64,
}

impl Connection {
    /// Opens a TCP connection with `TCP_NODELAY`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::from_stream(stream))
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            served: 0,
        }
    }

    /// Reads more bytes into the buffer, compacting or growing it when it is
    /// full. Returns the number read (0 at end of stream).
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Writes `request` and reads one complete response.
    ///
    /// `head_request` must be true for HEAD requests (their responses have
    /// no body). Bytes a server sends beyond the response stay buffered.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
        capture: &mut Capture,
    ) -> Result<ResponseInfo, ExchangeError> {
        capture.reset();
        if let Err(error) = self.stream.write_all(request).await {
            return Err(ExchangeError::Io {
                error,
                before_response: true,
            });
        }
        let mut got_any = self.start < self.end;
        let mut wire: u64 = 0;
        // Read the head, skipping interim 1xx responses.
        let (status, mut keep_alive, framing) = loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        Some(head_info(&resp, len, head_request, capture)?)
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => {
                        return Err(ExchangeError::Protocol(format!("bad response head: {e}")))
                    }
                }
            };
            match parsed {
                Some((len, status, ka, framing)) => {
                    self.start += len;
                    wire += len as u64;
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    break (status, ka, framing);
                }
                None => {
                    if self.end - self.start > MAX_HEAD {
                        return Err(ExchangeError::Protocol("response head too large".into()));
                    }
                    match self.fill().await {
                        Ok(0) => {
                            return Err(ExchangeError::Io {
                                error: eof(),
                                before_response: !got_any,
                            })
                        }
                        Ok(_) => got_any = true,
                        Err(error) => {
                            return Err(ExchangeError::Io {
                                error,
                                before_response: !got_any,
                            })
                        }
                    }
                }
            }
        };
        let io_err = |error| ExchangeError::Io {
            error,
            before_response: false,
        };
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                self.skip_body(n, capture).await.map_err(io_err)?;
                wire += n;
            }
            Framing::Chunked => {
                wire += self.read_chunked(capture).await?;
            }
            Framing::UntilClose => {
                loop {
                    let avail = self.end - self.start;
                    if capture.body_wanted {
                        capture
                            .body
                            .extend_from_slice(&self.buf[self.start..self.end]);
                    }
                    wire += avail as u64;
                    self.start = self.end;
                    if self.fill().await.map_err(io_err)? == 0 {
                        break;
                    }
                }
                keep_alive = false;
            }
        }
        self.served += 1;
        Ok(ResponseInfo {
            status,
            keep_alive,
            wire_bytes: wire,
        })
    }

    /// Consumes `n` body bytes, keeping them if the body is wanted.
    async fn skip_body(&mut self, mut n: u64, capture: &mut Capture) -> io::Result<()> {
        loop {
            let avail = (self.end - self.start) as u64;
            let take = avail.min(n) as usize;
            if capture.body_wanted {
                capture
                    .body
                    .extend_from_slice(&self.buf[self.start..self.start + take]);
            }
            self.start += take;
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return Err(eof());
            }
        }
    }

    /// Reads a chunked body (and its trailers); returns the wire bytes.
    async fn read_chunked(&mut self, capture: &mut Capture) -> Result<u64, ExchangeError> {
        let io_err = |error| ExchangeError::Io {
            error,
            before_response: false,
        };
        let mut wire = 0u64;
        loop {
            // chunk-size line
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        wire += used as u64;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start > MAX_HEAD {
                            return Err(ExchangeError::Protocol("chunk size line too long".into()));
                        }
                        if self.fill().await.map_err(io_err)? == 0 {
                            return Err(io_err(eof()));
                        }
                    }
                    Err(_) => return Err(ExchangeError::Protocol("bad chunk size".into())),
                }
            };
            if size == 0 {
                // trailers: header lines until an empty line
                loop {
                    let line_end = self.buf[self.start..self.end]
                        .windows(2)
                        .position(|w| w == b"\r\n");
                    match line_end {
                        Some(0) => {
                            self.start += 2;
                            wire += 2;
                            return Ok(wire);
                        }
                        Some(p) => {
                            self.start += p + 2;
                            wire += p as u64 + 2;
                        }
                        None => {
                            if self.end - self.start > MAX_HEAD {
                                return Err(ExchangeError::Protocol("trailers too large".into()));
                            }
                            if self.fill().await.map_err(io_err)? == 0 {
                                return Err(io_err(eof()));
                            }
                        }
                    }
                }
            }
            self.skip_body(size, capture).await.map_err(io_err)?;
            wire += size;
            // CRLF after the chunk data
            while self.end - self.start < 2 {
                if self.fill().await.map_err(io_err)? == 0 {
                    return Err(io_err(eof()));
                }
            }
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(ExchangeError::Protocol("missing CRLF after chunk".into()));
            }
            self.start += 2;
            wire += 2;
        }
    }
}

/// Extracts status, keep-alive and framing from a parsed head, capturing the
/// wanted cookie. Returns `(head_len, status, keep_alive, framing)`.
fn head_info(
    resp: &httparse::Response<'_, '_>,
    len: usize,
    head_request: bool,
    capture: &mut Capture,
) -> Result<(usize, u16, bool, Framing), ExchangeError> {
    let status = resp
        .code
        .ok_or_else(|| ExchangeError::Protocol("no status".into()))?;
    let http10 = resp.version == Some(0);
    let mut keep_alive = !http10;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ExchangeError::Protocol("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != v) {
                return Err(ExchangeError::Protocol("conflicting Content-Length".into()));
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // chunked must be the final coding
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .map(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                .unwrap_or(false);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("set-cookie") {
            if let Some(want) = &capture.cookie_name {
                if let Some(v) = cookie_value(h.value, want) {
                    capture.cookie = Some(v);
                }
            }
        }
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((len, status, keep_alive, framing))
}

/// The value of cookie `name` in a `Set-Cookie` header value, if it is the
/// one being set.
fn cookie_value(header: &[u8], name: &str) -> Option<String> {
    let s = std::str::from_utf8(header).ok()?;
    let first = s.split(';').next()?.trim();
    let (k, v) = first.split_once('=')?;
    (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::http::RequestBuilder;
    use tokio::net::TcpListener;

    #[test]
    fn cookie_values() {
        assert_eq!(
            cookie_value(b"qb_session=abc123; Path=/; HttpOnly", "qb_session").as_deref(),
            Some("abc123")
        );
        assert_eq!(cookie_value(b"other=1", "qb_session"), None);
    }

    /// Serves `responses` (raw bytes, written in pieces of `piece` bytes) one
    /// per request read, then closes.
    async fn serve_raw(responses: Vec<Vec<u8>>, piece: usize) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                // read one request head
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                for c in r.chunks(piece) {
                    s.write_all(c).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    /// Content-Length, chunked (with extensions and trailers), 204 and
    /// close-delimited bodies parse, even when delivered a byte at a time.
    #[tokio::test]
    async fn parses_all_framings() {
        for piece in [1usize, 7, 4096] {
            let responses = vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
                b"HTTP/1.1 204 No Content\r\nSet-Cookie: qb_session=tok; HttpOnly\r\n\r\n".to_vec(),
                b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec(),
                b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec(),
            ];
            let addr = serve_raw(responses, piece).await;
            let mut c = Connection::connect(addr).await.unwrap();
            let mut cap = Capture {
                body_wanted: true,
                cookie_name: Some("qb_session".into()),
                ..Default::default()
            };
            let req = RequestBuilder::new("x", vec![]).build("GET", "/", &[], b"");
            let r = c.exchange(&req, false, &mut cap).await.unwrap();
            assert_eq!((r.status, r.keep_alive), (200, true));
            assert_eq!(cap.body, b"hello");
            let r = c.exchange(&req, false, &mut cap).await.unwrap();
            assert_eq!(r.status, 201);
            assert_eq!(cap.body, b"Wikipedia in \r\n\r\nchunks.");
            let r = c.exchange(&req, false, &mut cap).await.unwrap();
            assert_eq!(r.status, 204);
            assert_eq!(cap.cookie.as_deref(), Some("tok"));
            assert!(cap.body.is_empty());
            let r = c.exchange(&req, false, &mut cap).await.unwrap();
            assert_eq!(r.status, 500);
            let r = c.exchange(&req, false, &mut cap).await.unwrap();
            assert_eq!((r.status, r.keep_alive), (200, false));
            assert_eq!(cap.body, b"until close");
            assert_eq!(c.served, 5);
        }
    }

    /// `Connection: close` is reported; a closed connection before any
    /// response byte is flagged as such; garbage is a protocol error.
    #[tokio::test]
    async fn close_and_errors() {
        let addr = serve_raw(
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()],
            4096,
        )
        .await;
        let mut c = Connection::connect(addr).await.unwrap();
        let mut cap = Capture::default();
        let req = RequestBuilder::new("x", vec![]).build("GET", "/", &[], b"");
        let r = c.exchange(&req, false, &mut cap).await.unwrap();
        assert!(!r.keep_alive);
        assert!(cap.body.is_empty(), "body not kept unless wanted");
        match c.exchange(&req, false, &mut cap).await {
            Err(ExchangeError::Io {
                before_response: true,
                ..
            }) => {}
            other => panic!("expected early EOF, got {other:?}"),
        }

        let addr = serve_raw(vec![b"SMTP ready\r\n\r\n".to_vec()], 4096).await;
        let mut c = Connection::connect(addr).await.unwrap();
        assert!(matches!(
            c.exchange(&req, false, &mut cap).await,
            Err(ExchangeError::Protocol(_))
        ));

        let addr = serve_raw(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()],
            4096,
        )
        .await;
        let mut c = Connection::connect(addr).await.unwrap();
        assert!(matches!(
            c.exchange(&req, false, &mut cap).await,
            Err(ExchangeError::Io {
                before_response: false,
                ..
            })
        ));
    }

    /// A HEAD response with a Content-Length has no body to read.
    #[tokio::test]
    async fn head_has_no_body() {
        let addr = serve_raw(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            ],
            4096,
        )
        .await;
        let mut c = Connection::connect(addr).await.unwrap();
        let mut cap = Capture::default();
        let req = RequestBuilder::new("x", vec![]).build("HEAD", "/", &[], b"");
        assert_eq!(c.exchange(&req, true, &mut cap).await.unwrap().status, 200);
        let r = c.exchange(&req, false, &mut cap).await.unwrap();
        assert_eq!(r.wire_bytes, 39);
    }
}

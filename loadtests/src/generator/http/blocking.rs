//! A blocking HTTP/1.1 request for probes outside the measured load:
//! readiness (`/readyz`), a `/metrics` scrape, a login before an external
//! tool's run; the workspace's test harnesses send theirs through it too.
//! `ureq` speaks the protocol; each request gets its own connection (no
//! pool), so a probe never lands on a connection the server has closed. It
//! must never be used to send load: it allocates, blocks a thread and
//! measures nothing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// Largest body read back (a `/metrics` scrape of many workers is well
/// under it).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// A response read completely: its status and its body as text (invalid
/// UTF-8 replaced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A blocking GET (readiness, `/metrics`) within `timeout`.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<Response> {
    http_request(addr, "GET", path, &[], b"", timeout)
}

/// A blocking request with extra headers and a body (sent with its
/// `Content-Length` when not empty), within `timeout` from connect to the
/// body's end. Any status is a response; an error means no complete
/// response (refused, reset, closed early, timed out).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body)
        .with_context(|| format!("bad request {method} {path}"))?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("{method} http://{addr}{path}"))?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .with_context(|| format!("reading the body of {method} http://{addr}{path}"))?;
    Ok(Response {
        status: response.status().as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Answers one request with `parts`, written 100 ms apart.
    fn serve_once(parts: Vec<&'static [u8]>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the client sent a whole head");
                request.extend_from_slice(&buf[..n]);
            }
            for part in parts {
                s.write_all(part).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        (addr, server)
    }

    /// A chunk whose data holds `0\r\n\r\n` does not end the body: the
    /// body ends at the last chunk, however the bytes arrive.
    #[test]
    fn reads_a_chunked_body_to_its_last_chunk() {
        let (addr, server) = serve_once(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nab0\r\n\r\n\r\n",
            b"3\r\nxyz\r\n0\r\n\r\n",
        ]);
        let r = http_get(addr, "/", Duration::from_secs(5)).unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                body: "ab0\r\n\r\nxyz".into()
            }
        );
        server.join().unwrap();
    }

    /// Any status is a response; no response at all is an error.
    #[test]
    fn statuses_are_responses_and_silence_is_an_error() {
        let (addr, server) = serve_once(vec![b"HTTP/1.1 503 X\r\nContent-Length: 4\r\n\r\nbusy"]);
        let r = http_request(
            addr,
            "POST",
            "/x",
            &[("X-A", "1")],
            b"{}",
            Duration::from_secs(5),
        );
        assert_eq!(r.unwrap().status, 503);
        server.join().unwrap();
        let (addr, server) = serve_once(vec![]);
        assert!(http_get(addr, "/", Duration::from_secs(5)).is_err());
        server.join().unwrap();
    }
}

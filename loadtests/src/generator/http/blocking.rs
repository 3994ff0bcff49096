//! A minimal blocking HTTP/1.1 request, for probes outside the measured
//! load: readiness (`/readyz`), a `/metrics` scrape, a login before an
//! external tool's run. One connection per request, `Connection: close`.
//! It must never be used to send load: it allocates, blocks a thread and
//! measures nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::bail;

/// A minimal blocking HTTP/1.1 GET (for readiness and `/metrics`): status
/// and body. Not used for load.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], b"", timeout)
}

/// A minimal blocking HTTP/1.1 request with extra headers and a body (a
/// `Content-Length` is added when the body is not empty): status and body.
/// Not used for load (logins before an external tool's run, readiness).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    // Read until the response is complete (a server may ignore the
    // `Connection: close` and keep the connection open).
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = s.read(&mut tmp)?;
        buf.extend_from_slice(&tmp[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&buf)? {
            let status = resp.code.unwrap_or(0);
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let body = &buf[len..];
            if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                if body.windows(5).any(|w| w == b"0\r\n\r\n") || n == 0 {
                    return Ok((status, String::from_utf8_lossy(&dechunk(body)).into_owned()));
                }
            } else if let Some(cl) =
                header("content-length").and_then(|v| v.trim().parse::<usize>().ok())
            {
                if body.len() >= cl {
                    return Ok((status, String::from_utf8_lossy(&body[..cl]).into_owned()));
                }
            } else if n == 0 {
                return Ok((status, String::from_utf8_lossy(body).into_owned()));
            }
        }
        if n == 0 {
            bail!("connection closed before a complete response from {addr}{path}");
        }
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(b) {
        if size == 0 {
            break;
        }
        let start = used;
        let end = (start + size as usize).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}

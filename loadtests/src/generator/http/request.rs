//! Request serialisation: [`RequestBuilder`] writes a complete HTTP/1.1
//! request into a byte buffer once, so the hot path sends bytes as they
//! are. It does no I/O and allocates only when asked for a fresh vector.

/// Serialises HTTP/1.1 requests into a byte buffer.
///
/// Every request carries `Host`, `User-Agent: quizload`, `Accept: */*`, the
/// extra headers in order, and `Content-Length` when there is a body (or the
/// method is POST/PUT/PATCH).
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    host_header: String,
    headers: Vec<(String, String)>,
}

impl RequestBuilder {
    /// A builder for requests to `host_header` with `headers` on each.
    pub fn new(host_header: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        Self {
            host_header: host_header.into(),
            headers,
        }
    }

    /// Appends one complete request to `out` (which is not cleared).
    /// `extra` headers follow the builder's own.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) {
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host_header.as_bytes());
        out.extend_from_slice(b"\r\n");
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
                || extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has("user-agent") {
            out.extend_from_slice(b"User-Agent: quizload/0.1\r\n");
        }
        if !has("accept") {
            out.extend_from_slice(b"Accept: */*\r\n");
        }
        for (k, v) in &self.headers {
            header(out, k, v);
        }
        for (k, v) in extra {
            header(out, k, v);
        }
        let needs_length = !body.is_empty()
            || matches!(
                method.to_ascii_uppercase().as_str(),
                "POST" | "PUT" | "PATCH"
            );
        if needs_length && !has("content-length") {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// One request as a fresh byte vector.
    pub fn build(&self, method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + body.len());
        self.write(&mut out, method, path, extra, body);
        out
    }
}

fn header(out: &mut Vec<u8>, k: &str, v: &str) {
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(v.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n` without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_requests() {
        let b = RequestBuilder::new("h:1", vec![("X-A".into(), "1".into())]);
        let r = b.build("POST", "/p", &[("Cookie", "c=d")], b"{}");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: quizload/0.1\r\nAccept: */*\r\n\
             X-A: 1\r\nCookie: c=d\r\nContent-Length: 2\r\n\r\n{}"
        );
        let r = b.build("GET", "/", &[], b"");
        assert!(!String::from_utf8(r).unwrap().contains("Content-Length"));
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        push_decimal(&mut v, 1234567890);
        assert_eq!(v, b"01234567890");
    }
}

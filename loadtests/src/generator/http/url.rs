//! A parsed `http://` URL ([`HttpUrl`]): where to connect, and what goes on
//! the request line and in `Host`. It resolves host names but opens no
//! connection, and it rejects every scheme but plain `http`.

use std::net::SocketAddr;

use anyhow::{bail, Context};

/// A parsed `http://` URL: where to connect and what to put on the request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
    /// The `Host` header value (host, plus `:port` when not 80).
    pub host_header: String,
}

impl HttpUrl {
    /// Parses an `http://` URL. `https` is rejected: this client speaks
    /// plain HTTP/1.1 only.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let u = ::url::Url::parse(s).with_context(|| format!("invalid URL {s:?}"))?;
        if u.scheme() != "http" {
            bail!(
                "unsupported scheme {:?} in {s:?}: quizload speaks plain http:// only",
                u.scheme()
            );
        }
        let host = match u.host() {
            Some(::url::Host::Domain(d)) => d.to_string(),
            Some(::url::Host::Ipv4(ip)) => ip.to_string(),
            Some(::url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => bail!("URL {s:?} has no host"),
        };
        let port = u.port_or_known_default().unwrap_or(80);
        let mut path = u.path().to_string();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            host,
            port,
            path,
            host_header,
        })
    }

    /// Resolves the host to a socket address (the first one returned),
    /// blocking.
    pub fn resolve_blocking(&self) -> anyhow::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.host))?
            .next()
            .with_context(|| format!("{} resolved to no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/a/b?x=1").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.path, "/a/b?x=1");
        assert_eq!(u.host_header, "127.0.0.1:8080");
        let u = HttpUrl::parse("http://localhost").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.host_header.as_str()),
            (80, "/", "localhost")
        );
        assert!(HttpUrl::parse("https://x").is_err());
        assert!(HttpUrl::parse("not a url").is_err());
    }
}

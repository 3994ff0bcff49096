//! HTTP/1.1 on the wire, client side: the lean path every virtual user
//! sends its load through ([`HttpUrl`], [`RequestBuilder`], [`Connection`];
//! hand-written for its CPU cost per request, measured against hyper's
//! client in `docs/exceptions.md`) and a blocking request through `ureq`
//! for probes outside the measured load ([`blocking`]: readiness,
//! `/metrics`, a login before an external tool's run).
//!
//! Plain `http://` only: no TLS, no HTTP/2, no pipelining. This folder does
//! not time out, reconnect or retry (that is [`super::client`]'s business)
//! and records no statistics.

pub mod blocking;
mod connection;
mod request;
mod url;

pub use connection::{Capture, Connection, ExchangeError, ResponseInfo};
pub use request::RequestBuilder;
pub use url::HttpUrl;

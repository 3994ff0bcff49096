//! Before a run: one connect to the target ([`preflight`]), so that a
//! target where nothing listens (or that cannot be reached) ends the run at
//! once with an error naming the URL, instead of a run of failed connects.
//! Every error here names the tool, the step and the URL.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::bail;

use crate::tools::Tool;

/// The longest the preflight connect waits.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a failure happened, as errors say it: `TOOL: STEP URL`.
pub fn step(tool: Tool, step: &str, url: &str) -> String {
    format!("{}: {step} {url}", tool.name())
}

/// Opens (and closes) one TCP connection to `addr`, the address of `url`,
/// within `timeout` (at most [`PREFLIGHT_TIMEOUT`]), before `tool` loads
/// it. A refused or timed-out connect is an error naming the URL.
pub fn preflight(tool: Tool, url: &str, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let limit = timeout.min(PREFLIGHT_TIMEOUT);
    match TcpStream::connect_timeout(&addr, limit) {
        Ok(_) => Ok(()),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    " (nothing listens there: is the server running, on this port?)"
                }
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    " (no answer: a firewall, a wrong address, or a server too busy to accept)"
                }
                _ => "",
            };
            bail!("{} ({addr}): {e}{hint}", step(tool, "connect to", url))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_an_error_naming_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        preflight(Tool::Wrk, "http://x/", addr, Duration::from_secs(1)).unwrap();
        drop(listener);
        let url = format!("http://{addr}/health");
        let e = preflight(Tool::Quizload, &url, addr, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("quizload: connect to {url} ({addr}): ")),
            "{e}"
        );
        assert!(e.contains("nothing listens"), "{e}");
    }
}

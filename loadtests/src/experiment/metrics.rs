//! The server's `/metrics` as the experiment reads it: the sums of the
//! quizbench gauges and counters it reports ([`MetricsScrape`]: DB pool
//! size, requests per worker), summed from a Prometheus text scrape
//! ([`Scrape`]). It reads; the runner decides when to scrape.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::generator::http::blocking::http_get;
use crate::prometheus::Scrape;

/// Sums of the quizbench gauges and counters in a `/metrics` scrape that
/// the experiment reports: DB pool size (connections), and requests served
/// per worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsScrape {
    /// Sum of `quizbench_db_pool_size` over workers.
    pub db_connections: Option<f64>,
    /// `quizbench_worker_requests_total` by worker label.
    pub worker_requests: BTreeMap<String, f64>,
    /// `quizbench_worker_restarts_total` by reason (`crash`: the worker
    /// died, e.g. killed by the OOM killer).
    #[serde(default)]
    pub worker_restarts: BTreeMap<String, f64>,
}

impl MetricsScrape {
    /// Workers that died (restarts for `crash`) since `before`.
    pub fn deaths_since(&self, before: &MetricsScrape) -> f64 {
        let crashes = |m: &MetricsScrape| m.worker_restarts.get("crash").copied().unwrap_or(0.0);
        (crashes(self) - crashes(before)).max(0.0)
    }
}

/// The figures quizload reports from a Prometheus text scrape.
pub fn parse_metrics(text: &str) -> MetricsScrape {
    let scrape = Scrape::parse(text);
    MetricsScrape {
        db_connections: scrape.find_sum("quizbench_db_pool_size", &[]),
        worker_requests: scrape.sum_by("quizbench_worker_requests_total", "worker"),
        worker_restarts: scrape.sum_by("quizbench_worker_restarts_total", "reason"),
    }
}

/// Scrapes `/metrics` of a server; `None` when it has none.
pub fn scrape(addr: SocketAddr) -> Option<MetricsScrape> {
    match http_get(addr, "/metrics", Duration::from_secs(5)) {
        Ok(r) if r.status == 200 => Some(parse_metrics(&r.body)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics() {
        let text = "# HELP quizbench_db_pool_size x\n# TYPE quizbench_db_pool_size gauge\n\
            quizbench_db_pool_size{worker=\"0\"} 5\nquizbench_db_pool_size{worker=\"1\"} 7\n\
            quizbench_worker_requests_total{worker=\"0\"} 100\nquizbench_worker_requests_total{worker=\"1\"} 300\n\
            quizbench_worker_restarts_total{worker=\"0\",reason=\"crash\"} 2\n\
            quizbench_worker_restarts_total{worker=\"1\",reason=\"crash\"} 1\n\
            quizbench_other 1\n";
        let m = parse_metrics(text);
        assert_eq!(m.db_connections, Some(12.0));
        assert_eq!(m.worker_requests.get("1"), Some(&300.0));
        assert_eq!(m.worker_restarts.get("crash"), Some(&3.0));
        assert_eq!(m.deaths_since(&MetricsScrape::default()), 3.0);
        assert_eq!(parse_metrics("nothing here").db_connections, None);
    }
}

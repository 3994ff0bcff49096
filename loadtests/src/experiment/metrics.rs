//! The server's `/metrics` as the experiment reads it: the sums of the
//! quizbench gauges and counters it reports ([`MetricsScrape`]: DB pool
//! size, requests per worker), parsed from a Prometheus text scrape. It
//! reads; the runner decides when to scrape.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::generator::http::blocking::http_get;

/// Sums of the quizbench gauges and counters in a `/metrics` scrape that
/// the experiment reports: DB pool size (connections), and requests served
/// per worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsScrape {
    /// Sum of `quizbench_db_pool_size` over workers.
    pub db_connections: Option<f64>,
    /// `quizbench_worker_requests_total` by worker label.
    pub worker_requests: BTreeMap<String, f64>,
}

/// Parses the lines of a Prometheus text scrape that quizload uses.
pub fn parse_metrics(text: &str) -> MetricsScrape {
    let mut m = MetricsScrape::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        match name {
            "quizbench_db_pool_size" => *m.db_connections.get_or_insert(0.0) += v,
            "quizbench_worker_requests_total" => {
                let w = label("worker").unwrap_or_default();
                *m.worker_requests.entry(w).or_insert(0.0) += v;
            }
            _ => {}
        }
    }
    m
}

/// Scrapes `/metrics` of a server; `None` when it has none.
pub fn scrape(addr: SocketAddr) -> Option<MetricsScrape> {
    match http_get(addr, "/metrics", Duration::from_secs(5)) {
        Ok((200, body)) => Some(parse_metrics(&body)),
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
            quizbench_other 1\n";
        let m = parse_metrics(text);
        assert_eq!(m.db_connections, Some(12.0));
        assert_eq!(m.worker_requests.get("1"), Some(&300.0));
        assert_eq!(parse_metrics("nothing here").db_connections, None);
    }
}

//! Prometheus text exposition as quizload and the workspace's tests read
//! it: a scrape parsed by `prometheus-parse` ([`Scrape`]) and summed by
//! series name and label values (quizbench reports one series per worker,
//! so most questions are sums). It reads text; fetching `/metrics` is its
//! callers' business.

use std::collections::BTreeMap;

/// The samples of one `/metrics` scrape. Histograms are kept whole by the
/// parser; their `_sum` and `_count` series are plain samples.
#[derive(Clone, Debug)]
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    /// Parses a scrape's text; lines that are not samples, help or type
    /// comments are skipped.
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Self(prometheus_parse::Scrape::parse(lines).expect("reading from a str cannot fail"))
    }

    /// The scalar samples of `name` whose labels include every `(label,
    /// value)` of `labels`, with their labels.
    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a prometheus_parse::Labels, f64)> + 'a {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(move |s| s.metric == name)
            .filter(move |s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some((&s.labels, v)),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
    }

    /// Sum of the series of `name` matching `labels`; `None` when there is
    /// none.
    pub fn find_sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name, labels)
            .map(|(_, v)| v)
            .reduce(|a, b| a + b)
    }

    /// Sum of the series of `name` matching `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find_sum(name, labels).unwrap_or(0.0)
    }

    /// Sum of every series of `name`, as a whole number (a counter).
    pub fn count(&self, name: &str) -> u64 {
        self.sum(name, &[]) as u64
    }

    /// Sums of the series of `name` by the value of `label` (series without
    /// it under `""`).
    pub fn sum_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (labels, v) in self.samples(name, &[]) {
            let key = labels.get(label).unwrap_or_default().to_string();
            *out.entry(key).or_insert(0.0) += v;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP quizbench_worker_restarts_total Restarts.\n\
        # TYPE quizbench_worker_restarts_total counter\n\
        quizbench_worker_restarts_total{reason=\"crash\"} 2\n\
        quizbench_worker_restarts_total{reason=\"hup\"} 1\n\
        # TYPE quizbench_http_requests_total counter\n\
        quizbench_http_requests_total{worker=\"0\",route=\"/a\",status=\"200\"} 5\n\
        quizbench_http_requests_total{worker=\"1\",route=\"/a\",status=\"200\"} 7\n\
        quizbench_http_requests_total{worker=\"1\",route=\"/a\",status=\"500\"} 1\n\
        # TYPE quizbench_http_request_duration_seconds histogram\n\
        quizbench_http_request_duration_seconds_bucket{worker=\"0\",route=\"/a\",le=\"0.1\"} 4\n\
        quizbench_http_request_duration_seconds_bucket{worker=\"0\",route=\"/a\",le=\"+Inf\"} 5\n\
        quizbench_http_request_duration_seconds_sum{worker=\"0\",route=\"/a\"} 0.25\n\
        quizbench_http_request_duration_seconds_count{worker=\"0\",route=\"/a\"} 5\n\
        quizbench_up 1\n";

    #[test]
    fn sums_series_by_name_and_labels() {
        let m = Scrape::parse(TEXT);
        assert_eq!(m.sum("quizbench_worker_restarts_total", &[]), 3.0);
        assert_eq!(
            m.sum("quizbench_worker_restarts_total", &[("reason", "crash")]),
            2.0
        );
        let ok = [("route", "/a"), ("status", "200")];
        assert_eq!(m.sum("quizbench_http_requests_total", &ok), 12.0);
        assert_eq!(m.count("quizbench_http_requests_total"), 13);
        assert_eq!(m.count("quizbench_http_request_duration_seconds_count"), 5);
        assert_eq!(m.sum("quizbench_up", &[]), 1.0);
        // a prefix of a name is another series
        assert_eq!(m.find_sum("quizbench_http_requests", &[]), None);
        assert_eq!(m.find_sum("quizbench_absent", &[]), None);
        let by_worker = m.sum_by("quizbench_http_requests_total", "worker");
        assert_eq!(by_worker.get("1"), Some(&8.0));
        assert_eq!(Scrape::parse("nothing here").find_sum("nothing", &[]), None);
    }
}

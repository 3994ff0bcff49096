//! Summaries derived from merged recorders: latency ([`LatencySummary`]:
//! count, mean, stdev, min, max, p50 … p99.9), failures by kind
//! ([`ErrorSummary`]), an endpoint's figures ([`EndpointSummary`]), the
//! per-second series ([`SecondSummary`]), and histograms as `[value, count]`
//! buckets. Pure functions of what was recorded; no I/O, no formatting.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{failed_statuses, new_histogram, EndpointRecorder, TimeSeries};

impl TimeSeries {
    /// The series as report rows, one per second.
    pub fn summarize(&self) -> Vec<SecondSummary> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| SecondSummary {
                second: i as u64,
                responses: b.responses,
                successes: b.successes,
                errors: b.errors,
                mean_ms: if b.responses == 0 {
                    0.0
                } else {
                    us_to_ms(b.latency_sum_us as f64 / b.responses as f64)
                },
                p50_ms: quantile_ms(&b.hist, 0.5),
                p99_ms: quantile_ms(&b.hist, 0.99),
                max_ms: us_to_ms(b.latency_max_us as f64),
            })
            .collect()
    }
}

/// One row of the per-second time series in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Seconds since the measured phase started.
    pub second: u64,
    /// HTTP responses completed in this second (any status); the req/s.
    pub responses: u64,
    pub successes: u64,
    /// Failed requests (bad status or no response) completed in this second.
    pub errors: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn us_to_ms(us: f64) -> f64 {
    us / 1000.0
}

fn quantile_ms<T: hdrhistogram::Counter>(h: &Histogram<T>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        us_to_ms(h.value_at_quantile(q) as f64)
    }
}

/// Summary of a latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a µs histogram; all zeros when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean: us_to_ms(h.mean()),
            stdev: us_to_ms(h.stdev()),
            min: us_to_ms(h.min_nz() as f64),
            p50: quantile_ms(h, 0.50),
            p90: quantile_ms(h, 0.90),
            p95: quantile_ms(h, 0.95),
            p99: quantile_ms(h, 0.99),
            p999: quantile_ms(h, 0.999),
            max: us_to_ms(h.max() as f64),
        }
    }
}

/// Failures of an endpoint or a run, by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// All failed requests: transport failures plus non-2xx/3xx responses.
    pub total: u64,
    pub connect: u64,
    pub timeout: u64,
    /// Resets, unexpected closes and other I/O errors.
    pub io: u64,
    /// Responses that were not valid HTTP/1.x.
    pub protocol: u64,
    /// Failed responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// The requests that got no connection or no response, by cause.
    #[serde(default)]
    pub connection: ConnectionErrors,
}

/// Requests that failed below HTTP, by cause: `refused` (nothing listens),
/// `reset` (the peer reset or closed the connection mid-exchange),
/// `timeout` (no complete response within the timeout), `dns` (the host
/// name did not resolve; quizload resolves once before a run, so only a
/// tool's run counts these), `other` (anything else: unreachable, TLS, an
/// error a tool does not break down).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionErrors {
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub dns: u64,
    pub other: u64,
}

impl ConnectionErrors {
    /// From a recorder's transport counts.
    pub fn from_counts(t: &super::TransportCounts) -> Self {
        Self {
            refused: t.refused,
            reset: t.reset,
            timeout: t.timeout,
            dns: 0,
            other: (t.connect - t.refused) + (t.io - t.reset),
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.dns + self.other
    }
}

/// A histogram as its non-empty buckets: `[value_us, count]` pairs, where
/// the value is the highest value equivalent to the bucket. Lossless at the
/// histogram's resolution, so results can be merged again later.
pub fn histogram_buckets(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    h.iter_recorded()
        .map(|v| {
            [
                h.highest_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            ]
        })
        .collect()
}

/// Rebuilds a histogram from [`histogram_buckets`] output.
pub fn histogram_from_buckets(buckets: &[[u64; 2]]) -> Histogram<u64> {
    let mut h = new_histogram();
    for [v, n] in buckets {
        h.saturating_record_n(*v, *n);
    }
    h
}

/// Report of one endpoint (or of all endpoints together).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    pub name: String,
    /// Requests that completed: responses of any status plus transport failures.
    pub requests: u64,
    /// HTTP responses received, whatever their status.
    pub responses: u64,
    /// Responses with a 2xx/3xx status.
    pub successes: u64,
    /// `successes / requests` in percent (100 when there were no requests).
    pub success_rate: f64,
    /// HTTP responses per second over the measured phase.
    pub rps: f64,
    /// Successful responses per second.
    pub success_rps: f64,
    pub errors: ErrorSummary,
    /// All responses by status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Response time, ms (from the intended send time in the open model).
    pub latency_ms: LatencySummary,
    /// Open model: time from the actual send to the complete response, ms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_time_ms: Option<LatencySummary>,
    pub bytes_received: u64,
    /// Raw latency histogram (µs) as `[value, count]` buckets.
    pub histogram_us: Vec<[u64; 2]>,
}

impl EndpointSummary {
    /// Summarises a recorder over a measured phase of `elapsed`.
    pub fn from_recorder(rec: &EndpointRecorder, elapsed: Duration) -> Self {
        let responses = rec.responses();
        let successes = rec.successes();
        let requests = responses + rec.transport.total();
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let status = failed_statuses(&rec.statuses);
        let errors = ErrorSummary {
            total: requests - successes,
            connect: rec.transport.connect,
            timeout: rec.transport.timeout,
            io: rec.transport.io,
            protocol: rec.transport.protocol,
            status,
            connection: ConnectionErrors::from_counts(&rec.transport),
        };
        Self {
            name: rec.name.clone(),
            requests,
            responses,
            successes,
            success_rate: if requests == 0 {
                100.0
            } else {
                successes as f64 * 100.0 / requests as f64
            },
            rps: per_sec(responses),
            success_rps: per_sec(successes),
            errors,
            status_codes: rec.statuses.clone(),
            latency_ms: LatencySummary::from_histogram(&rec.latency),
            service_time_ms: if rec.service.is_empty() {
                None
            } else {
                Some(LatencySummary::from_histogram(&rec.service))
            },
            bytes_received: rec.bytes_received,
            histogram_us: histogram_buckets(&rec.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::HIST_HIGH_US;

    /// Percentiles, mean, stdev, min and max of 1..=100 ms-scale values in
    /// the exact range (< 2048 µs) match the nearest-rank definition.
    #[test]
    fn summary_of_exact_values_matches_hand_computation() {
        let mut h = new_histogram();
        // 10, 20, ..., 1000 µs: 100 values.
        for i in 1..=100u64 {
            h.record(i * 10).unwrap();
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 100);
        assert_eq!(s.min, 0.010);
        assert_eq!(s.max, 1.000);
        // rank ceil(0.5*100)=50 -> 500 µs; 90 -> 900; 95 -> 950; 99 -> 990;
        // p99.9: rank ceil(99.9)=100 -> 1000 µs.
        assert_eq!(s.p50, 0.500);
        assert_eq!(s.p90, 0.900);
        assert_eq!(s.p95, 0.950);
        assert_eq!(s.p99, 0.990);
        assert_eq!(s.p999, 1.000);
        // mean = 10 * 50.5 = 505 µs; population stdev = 10 * sqrt((100^2-1)/12)
        assert!((s.mean - 0.505).abs() < 1e-9, "{}", s.mean);
        let sd = 10.0 * ((100.0f64 * 100.0 - 1.0) / 12.0).sqrt() / 1000.0;
        assert!((s.stdev - sd).abs() < 1e-9, "{} vs {}", s.stdev, sd);
    }

    /// Values above 2048 µs are reported at the top of their 3-digit bucket.
    #[test]
    fn large_values_are_within_resolution() {
        let mut h = new_histogram();
        h.record(20_000).unwrap();
        let s = LatencySummary::from_histogram(&h);
        assert!(s.p50 >= 20.0 && s.p50 <= 20.0 * 1.001, "{}", s.p50);
        // clamps instead of failing above one hour
        h.saturating_record(HIST_HIGH_US * 10);
        assert!(h.max() >= HIST_HIGH_US);
    }

    /// The `[value, count]` bucket form round-trips a histogram.
    #[test]
    fn histogram_buckets_round_trip() {
        let mut h = new_histogram();
        for v in [1u64, 5, 5, 2047, 20_000, 1_500_000] {
            h.record(v).unwrap();
        }
        let b = histogram_buckets(&h);
        assert_eq!(b[0], [1, 1]);
        assert_eq!(b[1], [5, 2]);
        let back = histogram_from_buckets(&b);
        assert_eq!(back.len(), h.len());
        for q in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q));
        }
    }

    /// An empty endpoint reports zeros and a 100 % success rate, not NaN.
    #[test]
    fn empty_endpoint_is_all_zero() {
        let rec = EndpointRecorder::new("GET /");
        let s = EndpointSummary::from_recorder(&rec, Duration::ZERO);
        assert_eq!(s.requests, 0);
        assert_eq!(s.rps, 0.0);
        assert_eq!(s.success_rate, 100.0);
        assert_eq!(s.latency_ms, LatencySummary::default());
    }
}

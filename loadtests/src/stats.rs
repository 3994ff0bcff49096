//! Outcome and latency statistics: what a run records and how it is summarised.
//!
//! This module owns the *recorders* that the engine's worker threads fill in
//! (one [`RunRecorder`] per thread, so the hot path never takes a lock or
//! sends on a channel), their exact merging at the end of a run, and the
//! *summaries* derived from the merged data (count, success rate, errors by
//! kind, req/s, avg, median, min, max, stdev, p90, p95, p99, p99.9, and a
//! per-second time series).
//!
//! Latencies are kept in HDR histograms with microsecond resolution and three
//! significant digits over 1 µs ..= 1 h (values are exact below 2.048 ms and
//! within 0.1 % above). Percentiles follow the nearest-rank definition used by
//! `hdrhistogram`: the p-quantile of N values is the value of rank
//! `ceil(p * N)` (at least 1), reported as the highest value equivalent to it
//! at the histogram's resolution.
//!
//! It must not do I/O or know about HTTP beyond a status code: it is pure and
//! unit-tested against hand-computed values.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest value the latency histograms track, in microseconds.
pub const HIST_LOW_US: u64 = 1;
/// Highest value the latency histograms track (one hour), in microseconds.
/// Larger values are clamped to it.
pub const HIST_HIGH_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by the latency histograms.
pub const HIST_SIGFIG: u8 = 3;
/// Significant digits of the small per-second histograms of the time series.
pub const SERIES_SIGFIG: u8 = 2;

/// A new, empty latency histogram (µs, 1 µs ..= 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

fn new_series_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, SERIES_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Converts a duration to whole microseconds for recording, at least 1 µs.
#[inline]
pub fn duration_us(d: Duration) -> u64 {
    (d.as_micros().min(u128::from(u64::MAX)) as u64).max(1)
}

/// Whether a status code counts as a success: 2xx and 3xx do, everything
/// else (1xx left unanswered, 4xx, 5xx) counts as a failure with its code.
#[inline]
pub fn is_success_status(status: u16) -> bool {
    (200..400).contains(&status)
}

/// A transport-level failure: the request got no HTTP response at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// The TCP connection could not be established (refused, unreachable,
    /// or the connect itself ran past the request timeout).
    Connect,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection was reset or closed mid-exchange, or another I/O error.
    Io,
    /// The peer answered something that is not valid HTTP/1.x.
    Protocol,
}

/// Counts of transport-level failures, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCounts {
    pub connect: u64,
    pub timeout: u64,
    pub io: u64,
    pub protocol: u64,
}

impl TransportCounts {
    /// Adds one failure of `kind`.
    #[inline]
    pub fn add(&mut self, kind: TransportError) {
        match kind {
            TransportError::Connect => self.connect += 1,
            TransportError::Timeout => self.timeout += 1,
            TransportError::Io => self.io += 1,
            TransportError::Protocol => self.protocol += 1,
        }
    }

    /// All transport failures together.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.io + self.protocol
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &TransportCounts) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.io += other.io;
        self.protocol += other.protocol;
    }
}

/// Everything recorded about one endpoint (a route template such as
/// `GET /api/v1/quizzes/{id}`) by one thread, or merged over threads.
#[derive(Clone, Debug)]
pub struct EndpointRecorder {
    /// The endpoint's name, e.g. `GET /api/v1/quizzes/{id}`.
    pub name: String,
    /// Response time of every request that got an HTTP response (any
    /// status), in µs. In the open model it runs from the request's intended
    /// send time (coordinated omission corrected).
    pub latency: Histogram<u64>,
    /// Open model only: time from the actual send to the complete response.
    pub service: Histogram<u64>,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response, by kind.
    pub transport: TransportCounts,
    /// Response bytes received (head and body).
    pub bytes_received: u64,
}

impl EndpointRecorder {
    /// An empty recorder for the endpoint `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            latency: new_histogram(),
            service: new_histogram(),
            statuses: BTreeMap::new(),
            transport: TransportCounts::default(),
            bytes_received: 0,
        }
    }

    /// Records a response with `status`, its latency and, in the open model,
    /// its service time (both in µs).
    #[inline]
    pub fn record_response(&mut self, status: u16, latency_us: u64, service_us: Option<u64>) {
        self.latency.saturating_record(latency_us.max(HIST_LOW_US));
        if let Some(s) = service_us {
            self.service.saturating_record(s.max(HIST_LOW_US));
        }
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    /// Records a request that got no response.
    #[inline]
    pub fn record_error(&mut self, kind: TransportError) {
        self.transport.add(kind);
    }

    /// Responses received, whatever their status.
    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Responses with a 2xx or 3xx status.
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| is_success_status(**code))
            .map(|(_, n)| n)
            .sum()
    }

    /// Merges another recorder of the same endpoint into this one; exact.
    pub fn merge(&mut self, other: &EndpointRecorder) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.service
            .add(&other.service)
            .expect("histograms share their bounds");
        for (code, n) in &other.statuses {
            *self.statuses.entry(*code).or_insert(0) += n;
        }
        self.transport.merge(&other.transport);
        self.bytes_received += other.bytes_received;
    }
}

/// One second of a run, as recorded by one thread or merged.
#[derive(Clone, Debug)]
pub struct SecondBucket {
    pub responses: u64,
    pub successes: u64,
    pub errors: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    /// Coarse (2 significant digits) latency histogram of the second.
    pub hist: Histogram<u32>,
}

impl SecondBucket {
    fn new() -> Self {
        Self {
            responses: 0,
            successes: 0,
            errors: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
            hist: new_series_histogram(),
        }
    }

    fn merge(&mut self, other: &SecondBucket) {
        self.responses += other.responses;
        self.successes += other.successes;
        self.errors += other.errors;
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.hist.add(&other.hist).expect("same bounds");
    }
}

/// Per-second time series of a run, indexed by whole seconds since the
/// measured phase started (by completion time).
#[derive(Clone, Debug, Default)]
pub struct TimeSeries {
    pub buckets: Vec<SecondBucket>,
}

impl TimeSeries {
    /// A series with room for `seconds` buckets, so that a run of known
    /// length does not grow it on the hot path.
    pub fn with_capacity(seconds: usize) -> Self {
        Self {
            buckets: Vec::with_capacity(seconds),
        }
    }

    #[inline]
    fn bucket(&mut self, second: usize) -> &mut SecondBucket {
        while self.buckets.len() <= second {
            self.buckets.push(SecondBucket::new());
        }
        &mut self.buckets[second]
    }

    /// Records a response completed during `second`.
    #[inline]
    pub fn record_response(&mut self, second: usize, success: bool, latency_us: u64) {
        let b = self.bucket(second);
        b.responses += 1;
        if success {
            b.successes += 1;
        } else {
            b.errors += 1;
        }
        b.latency_sum_us += latency_us;
        b.latency_max_us = b.latency_max_us.max(latency_us);
        b.hist.saturating_record(latency_us.max(HIST_LOW_US));
    }

    /// Records a request that failed without a response during `second`.
    #[inline]
    pub fn record_error(&mut self, second: usize) {
        self.bucket(second).errors += 1;
    }

    /// Adds another series second by second.
    pub fn merge(&mut self, other: &TimeSeries) {
        for (i, b) in other.buckets.iter().enumerate() {
            self.bucket(i).merge(b);
        }
    }

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
        let status: BTreeMap<u16, u64> = rec
            .statuses
            .iter()
            .filter(|(c, _)| !is_success_status(**c))
            .map(|(c, n)| (*c, *n))
            .collect();
        let errors = ErrorSummary {
            total: requests - successes,
            connect: rec.transport.connect,
            timeout: rec.transport.timeout,
            io: rec.transport.io,
            protocol: rec.transport.protocol,
            status,
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

/// Open-model bookkeeping of one thread (or merged): how well the send
/// schedule was kept.
#[derive(Clone, Debug)]
pub struct ScheduleRecorder {
    /// Requests the schedule asked for.
    pub intended: u64,
    /// Requests actually sent.
    pub sent: u64,
    /// Sent later than the lateness threshold after their intended time,
    /// because no connection was free (or the generator fell behind).
    pub late: u64,
    /// Not sent at all: by the time a connection was free they were later
    /// than the maximum lag.
    pub dropped: u64,
    /// Lag of every sent request: actual send time − intended time, µs.
    pub send_lag: Histogram<u64>,
    /// How late the generator woke up for requests it had to wait for, µs:
    /// pure generator lag (timer resolution, CPU starvation).
    pub wake_lag: Histogram<u64>,
}

impl Default for ScheduleRecorder {
    fn default() -> Self {
        Self {
            intended: 0,
            sent: 0,
            late: 0,
            dropped: 0,
            send_lag: new_histogram(),
            wake_lag: new_histogram(),
        }
    }
}

impl ScheduleRecorder {
    /// Adds another recorder's counts and histograms.
    pub fn merge(&mut self, other: &ScheduleRecorder) {
        self.intended += other.intended;
        self.sent += other.sent;
        self.late += other.late;
        self.dropped += other.dropped;
        self.send_lag.add(&other.send_lag).expect("same bounds");
        self.wake_lag.add(&other.wake_lag).expect("same bounds");
    }
}

/// Everything one worker thread records during a run. Merged exactly with
/// [`RunRecorder::merge`] once the threads have finished.
#[derive(Clone, Debug)]
pub struct RunRecorder {
    /// One recorder per endpoint, indexed like the scenario's endpoint list.
    pub endpoints: Vec<EndpointRecorder>,
    /// Whole-run time series (all endpoints together).
    pub series: TimeSeries,
    /// Open model only.
    pub schedule: ScheduleRecorder,
    /// TCP connections opened (including the initial ones).
    pub connects: u64,
    /// Time to establish each connection, µs.
    pub connect_time: Histogram<u64>,
    /// Requests retried once on a fresh connection because a reused
    /// keep-alive connection was found closed before any response byte.
    pub stale_retries: u64,
}

impl RunRecorder {
    /// An empty recorder for the given endpoints, sized for a run of about
    /// `expected_seconds` seconds.
    pub fn new(endpoint_names: &[String], expected_seconds: usize) -> Self {
        Self {
            endpoints: endpoint_names
                .iter()
                .map(|n| EndpointRecorder::new(n.clone()))
                .collect(),
            series: TimeSeries::with_capacity(expected_seconds + 2),
            schedule: ScheduleRecorder::default(),
            connects: 0,
            connect_time: new_histogram(),
            stale_retries: 0,
        }
    }

    /// Records a response on `endpoint` completed at `second`.
    #[inline]
    pub fn record_response(
        &mut self,
        endpoint: usize,
        second: usize,
        status: u16,
        latency_us: u64,
        service_us: Option<u64>,
        bytes: u64,
    ) {
        let ep = &mut self.endpoints[endpoint];
        ep.record_response(status, latency_us, service_us);
        ep.bytes_received += bytes;
        self.series
            .record_response(second, is_success_status(status), latency_us);
    }

    /// Records a request on `endpoint` that failed without a response.
    #[inline]
    pub fn record_error(&mut self, endpoint: usize, second: usize, kind: TransportError) {
        self.endpoints[endpoint].record_error(kind);
        self.series.record_error(second);
    }

    /// Records a newly opened connection and how long it took.
    #[inline]
    pub fn record_connect(&mut self, took: Duration) {
        self.connects += 1;
        self.connect_time.saturating_record(duration_us(took));
    }

    /// Merges another thread's recorder into this one. Both must have been
    /// created for the same endpoint list.
    pub fn merge(&mut self, other: &RunRecorder) {
        assert_eq!(
            self.endpoints.len(),
            other.endpoints.len(),
            "recorders of different scenarios"
        );
        for (a, b) in self.endpoints.iter_mut().zip(&other.endpoints) {
            a.merge(b);
        }
        self.series.merge(&other.series);
        self.schedule.merge(&other.schedule);
        self.connects += other.connects;
        self.connect_time
            .add(&other.connect_time)
            .expect("same bounds");
        self.stale_retries += other.stale_retries;
    }

    /// All endpoints merged into one recorder named `name`.
    pub fn total(&self, name: &str) -> EndpointRecorder {
        let mut all = EndpointRecorder::new(name);
        for e in &self.endpoints {
            all.merge(e);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

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

    /// Merging per-thread recorders gives exactly the counts and percentiles
    /// of recording everything in one.
    #[test]
    fn merged_recorders_equal_single_recorder() {
        let eps = names(&["GET /a", "GET /b"]);
        let mut t1 = RunRecorder::new(&eps, 3);
        let mut t2 = RunRecorder::new(&eps, 3);
        let mut one = RunRecorder::new(&eps, 3);
        // thread 1: 1..=50 ms-ish exact values on /a at second 0
        for v in 1..=50u64 {
            t1.record_response(0, 0, 200, v * 20, None, 100);
            one.record_response(0, 0, 200, v * 20, None, 100);
        }
        // thread 2: 51..=100 on /a at second 1, some failures on /b
        for v in 51..=100u64 {
            t2.record_response(0, 1, 200, v * 20, None, 100);
            one.record_response(0, 1, 200, v * 20, None, 100);
        }
        for (on_t2, kind) in [
            (true, TransportError::Connect),
            (false, TransportError::Timeout),
            (true, TransportError::Io),
        ] {
            let rec = if on_t2 { &mut t2 } else { &mut t1 };
            rec.record_error(1, 2, kind);
            one.record_error(1, 2, kind);
        }
        t1.record_response(1, 2, 500, 7, None, 10);
        one.record_response(1, 2, 500, 7, None, 10);
        t2.record_response(1, 2, 503, 9, None, 10);
        one.record_response(1, 2, 503, 9, None, 10);

        let mut merged = t1.clone();
        merged.merge(&t2);
        let elapsed = Duration::from_secs(2);
        for i in 0..2 {
            assert_eq!(
                EndpointSummary::from_recorder(&merged.endpoints[i], elapsed),
                EndpointSummary::from_recorder(&one.endpoints[i], elapsed)
            );
        }
        let a = EndpointSummary::from_recorder(&merged.endpoints[0], elapsed);
        assert_eq!(a.requests, 100);
        assert_eq!(a.successes, 100);
        assert_eq!(a.rps, 50.0);
        assert_eq!(a.latency_ms.p50, 1.0); // rank 50 -> 50*20 µs
        assert_eq!(a.latency_ms.p99, 1.98); // rank 99 -> 1980 µs
        assert_eq!(a.latency_ms.min, 0.02);
        assert_eq!(a.latency_ms.max, 2.0);
        assert_eq!(a.bytes_received, 10_000);

        let b = EndpointSummary::from_recorder(&merged.endpoints[1], elapsed);
        assert_eq!(b.requests, 5);
        assert_eq!(b.responses, 2);
        assert_eq!(b.successes, 0);
        assert_eq!(b.success_rate, 0.0);
        assert_eq!(b.errors.total, 5);
        assert_eq!((b.errors.connect, b.errors.timeout, b.errors.io), (1, 1, 1));
        assert_eq!(b.errors.status, BTreeMap::from([(500, 1), (503, 1)]));

        let series = merged.series.summarize();
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].responses, 50);
        assert_eq!(series[1].responses, 50);
        assert_eq!(series[2].responses, 2);
        assert_eq!(series[2].errors, 5);
        assert_eq!(series[0].max_ms, 1.0);
        // mean of 20..=1000 step 20 = 510 µs
        assert!((series[0].mean_ms - 0.51).abs() < 1e-12);

        let total = merged.total("all");
        assert_eq!(total.responses(), 102);
        assert_eq!(total.transport.total(), 3);
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

    #[test]
    fn success_statuses() {
        assert!(is_success_status(200));
        assert!(is_success_status(204));
        assert!(is_success_status(302));
        assert!(!is_success_status(101));
        assert!(!is_success_status(404));
        assert!(!is_success_status(500));
    }
}

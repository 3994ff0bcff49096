//! The recorders the engine's worker threads fill in: per endpoint
//! ([`EndpointRecorder`]), per second ([`TimeSeries`]), the open model's
//! schedule ([`ScheduleRecorder`]) and a whole thread's ([`RunRecorder`]),
//! with their exact merging. Recording is a few increments in memory the
//! thread owns; nothing here summarises, formats or does I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{
    duration_us, is_success_status, new_histogram, new_series_histogram, TransportCounts,
    TransportError, HIST_LOW_US,
};

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
    use crate::stats::EndpointSummary;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
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
}

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
//!
//! `record` holds the recorders, `summary` the summaries derived from them;
//! this file the histogram bounds and the failure kinds both share.

mod record;
mod summary;

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use record::{EndpointRecorder, RunRecorder, ScheduleRecorder, SecondBucket, TimeSeries};
pub use summary::{
    histogram_buckets, histogram_from_buckets, ConnectionErrors, EndpointSummary, ErrorSummary,
    LatencySummary, SecondSummary,
};

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

pub(crate) fn new_series_histogram() -> Histogram<u32> {
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

/// The counts of the failed status codes among `statuses` (code → count).
pub fn failed_statuses(
    statuses: &std::collections::BTreeMap<u16, u64>,
) -> std::collections::BTreeMap<u16, u64> {
    statuses
        .iter()
        .filter(|(c, _)| !is_success_status(**c))
        .map(|(c, n)| (*c, *n))
        .collect()
}

/// A transport-level failure: the request got no HTTP response at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// The TCP connection could not be established for another reason
    /// than a refusal (unreachable, or the connect ran past the timeout).
    Connect,
    /// The target refused the connection (nothing listens on the port).
    /// Counted as a connect failure too.
    Refused,
    /// No complete response within the request timeout.
    Timeout,
    /// Another I/O error mid-exchange.
    Io,
    /// The peer reset the connection or closed it before the response was
    /// complete. Counted as an I/O failure too.
    Reset,
    /// The peer answered something that is not valid HTTP/1.x.
    Protocol,
}

/// Counts of transport-level failures, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCounts {
    /// Connects that failed, refused ones included.
    pub connect: u64,
    pub timeout: u64,
    /// I/O failures mid-exchange, resets included.
    pub io: u64,
    pub protocol: u64,
    /// Of `connect`: refused.
    #[serde(default)]
    pub refused: u64,
    /// Of `io`: reset or closed by the peer.
    #[serde(default)]
    pub reset: u64,
}

impl TransportCounts {
    /// Adds one failure of `kind`.
    #[inline]
    pub fn add(&mut self, kind: TransportError) {
        match kind {
            TransportError::Connect => self.connect += 1,
            TransportError::Refused => {
                self.connect += 1;
                self.refused += 1;
            }
            TransportError::Timeout => self.timeout += 1,
            TransportError::Io => self.io += 1,
            TransportError::Reset => {
                self.io += 1;
                self.reset += 1;
            }
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
        self.refused += other.refused;
        self.reset += other.reset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

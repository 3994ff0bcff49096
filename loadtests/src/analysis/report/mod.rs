//! Run reports: the JSON document every subcommand can write (`--json`),
//! with the request rate under the top-level key `rps`, and the terminal
//! output (a hey/wrk-style summary, per-endpoint table, sweep table in
//! document 004's shape).
//!
//! It also judges the generator's honesty: from the engine's self-measurement
//! it decides whether the generator was saturated (its threads near fully
//! busy, its event loop or send schedule lagging) and says so in the report
//! and on the terminal, next to warnings about a busy machine, late or
//! dropped open-model requests and failed logins.
//!
//! This file holds the report of one run and the judgement; `text` renders
//! it for the terminal, `imported` holds an external tool's figures and
//! their run report, `sweep` the report of a sweep. Nothing here sends,
//! prints or writes.

mod imported;
mod sweep;
mod text;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use imported::ImportReport;
pub use sweep::{SweepReport, SweepRow};

use crate::generator::engine::{
    Model, RunConfig, RunOutcome, Stop, LAG_PROBE_PERIOD, LATE_THRESHOLD,
};
use crate::generator::schedule::{Arrival, Stage};
use crate::generator::sysmon::available_cpus;
use crate::stats::{
    histogram_buckets, EndpointSummary, ErrorSummary, LatencySummary, SecondSummary,
};

/// Generator threads busier than this fraction count as saturated.
pub const SATURATED_THREAD_UTILIZATION: f64 = 0.90;
/// Event-loop lag p99 above this (ms) counts as saturated.
pub const SATURATED_LOOP_LAG_MS: f64 = 10.0;
/// Open-model wake-up lag p99 above this (ms) counts as saturated.
pub const SATURATED_WAKE_LAG_MS: f64 = 10.0;
/// Event-loop or schedule lag counts as generator saturation only when the
/// generator's threads were at least this busy (otherwise it is the OS
/// keeping them off an oversubscribed CPU, reported as a warning).
pub const LAG_COUNTS_AS_SATURATION_ABOVE: f64 = 0.5;
/// Machine CPU busier than this fraction gets a warning.
pub const BUSY_MACHINE: f64 = 0.95;

/// The load settings, echoed into the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `closed` or `open`.
    pub model: String,
    pub concurrency: usize,
    pub threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    pub timeout_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<Stage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag_s: Option<f64>,
}

impl RunSettings {
    /// The settings of `cfg`.
    pub fn from_config(cfg: &RunConfig) -> Self {
        let (duration_s, requests) = match cfg.stop {
            Stop::Duration(d) => (Some(d.as_secs_f64()), None),
            Stop::Requests(n) => (None, Some(n)),
        };
        let mut s = Self {
            model: "closed".into(),
            concurrency: cfg.concurrency,
            threads: cfg.effective_threads(),
            duration_s,
            requests,
            timeout_s: cfg.timeout.as_secs_f64(),
            ramp_s: None,
            spawn_rate: None,
            rate: None,
            stages: None,
            arrival: None,
            max_lag_s: None,
        };
        match &cfg.model {
            Model::Closed { ramp, spawn_rate } => {
                s.ramp_s = (!ramp.is_zero()).then_some(ramp.as_secs_f64());
                s.spawn_rate = *spawn_rate;
            }
            Model::Open {
                stages,
                arrival,
                max_lag,
            } => {
                s.model = "open".into();
                if stages.len() == 1 {
                    s.rate = Some(stages[0].rate);
                } else {
                    s.stages = Some(stages.clone());
                }
                s.arrival = Some(*arrival);
                s.max_lag_s = Some(max_lag.as_secs_f64());
            }
        }
        s
    }
}

/// How well the open model's schedule was kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenModelReport {
    /// Requests the schedule asked for.
    pub intended: u64,
    pub sent: u64,
    /// Sent more than `late_threshold_ms` after their intended time.
    pub late: u64,
    /// Not sent: later than the maximum lag when a connection freed up.
    pub dropped: u64,
    pub late_threshold_ms: f64,
    /// Intended requests per second over the measured phase.
    pub intended_rate: f64,
    /// Actual send time minus intended time, ms.
    pub send_lag_ms: LatencySummary,
    /// How late the generator woke for requests it waited for, ms.
    pub wake_lag_ms: LatencySummary,
}

/// Connection statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// TCP connections opened during the measured phase.
    pub opened: u64,
    /// Requests retried on a fresh connection after a stale keep-alive one.
    pub stale_retries: u64,
    pub connect_ms: LatencySummary,
}

/// The setup phase (connects and logins before the clock started).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetupReport {
    pub elapsed_s: f64,
    pub connections_opened: u64,
    /// VUs whose setup (login) still failed when they gave up.
    pub failed_vus: u64,
    pub endpoints: Vec<EndpointSummary>,
}

/// The generator's measurement of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorReport {
    pub threads: usize,
    /// CPUs available to the process.
    pub cpus: usize,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    /// Average number of cores the worker threads kept busy.
    pub cpu_cores_used: f64,
    /// `cpu_cores_used / threads`.
    pub thread_utilization: f64,
    /// Event-loop lag probe (a 20 ms timer's lateness), ms.
    pub loop_lag_ms: LatencySummary,
    /// Fraction of the machine's CPUs that was busy (all processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_cpu_busy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rss_mb: Option<f64>,
    /// True when the generator itself may have limited the result.
    pub saturated: bool,
    /// Why it is considered saturated.
    pub saturation_reasons: Vec<String>,
}

/// The JSON report of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub version: String,
    /// The request rate: HTTP responses (any status) per second.
    pub rps: f64,
    /// Successful (2xx/3xx) responses per second.
    pub success_rps: f64,
    /// Requests completed: responses plus transport failures.
    pub requests: u64,
    pub responses: u64,
    pub successes: u64,
    /// Percent of requests that succeeded.
    pub success_rate: f64,
    pub errors: ErrorSummary,
    pub status_codes: std::collections::BTreeMap<u16, u64>,
    /// Response time over all endpoints, ms.
    pub latency_ms: LatencySummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_time_ms: Option<LatencySummary>,
    pub elapsed_s: f64,
    pub bytes_received: u64,
    /// What was targeted: a URL, or a scenario against a base URL.
    pub target: String,
    pub scenario: String,
    pub settings: RunSettings,
    pub started_at_unix: f64,
    pub endpoints: Vec<EndpointSummary>,
    pub timeseries: Vec<SecondSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_model: Option<OpenModelReport>,
    pub connections: ConnectionReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupReport>,
    pub generator: GeneratorReport,
    /// Warnings about the run (busy machine, late requests, failed logins).
    pub warnings: Vec<String>,
    /// Raw latency histogram over all endpoints (µs, `[value, count]`).
    pub histogram_us: Vec<[u64; 2]>,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Seconds since the Unix epoch (0 for a time before it).
fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(
        cfg: &RunConfig,
        outcome: &RunOutcome,
        target: &str,
        scenario: &str,
        started: SystemTime,
    ) -> Self {
        let elapsed = outcome.elapsed;
        let rec = &outcome.recorder;
        let total = rec.total("all");
        let all = EndpointSummary::from_recorder(&total, elapsed);
        let endpoints: Vec<EndpointSummary> = rec
            .endpoints
            .iter()
            .filter(|e| e.responses() + e.transport.total() > 0)
            .map(|e| EndpointSummary::from_recorder(e, elapsed))
            .collect();

        let open = matches!(cfg.model, Model::Open { .. });
        let open_model = open.then(|| {
            let s = &rec.schedule;
            OpenModelReport {
                intended: s.intended,
                sent: s.sent,
                late: s.late,
                dropped: s.dropped,
                late_threshold_ms: ms(LATE_THRESHOLD),
                intended_rate: if elapsed.is_zero() {
                    0.0
                } else {
                    s.intended as f64 / elapsed.as_secs_f64()
                },
                send_lag_ms: LatencySummary::from_histogram(&s.send_lag),
                wake_lag_ms: LatencySummary::from_histogram(&s.wake_lag),
            }
        });

        let threads = outcome.threads;
        let cpu = (outcome.cpu_user + outcome.cpu_system).as_secs_f64();
        let cores_used = if elapsed.is_zero() {
            0.0
        } else {
            cpu / elapsed.as_secs_f64()
        };
        let utilization = cores_used / threads.max(1) as f64;
        let loop_lag = LatencySummary::from_histogram(&outcome.loop_lag);
        let mut reasons = Vec::new();
        if utilization >= SATURATED_THREAD_UTILIZATION {
            reasons.push(format!(
                "generator threads were {:.0}% busy ({cores_used:.2} of {threads} cores)",
                utilization * 100.0
            ));
        }
        // Lag while the generator's own threads are busy is the generator's
        // doing; lag while they are mostly idle means the OS kept them off
        // an oversubscribed CPU, which is a warning about the machine.
        let busy_enough = utilization >= LAG_COUNTS_AS_SATURATION_ABOVE;
        let mut lag_notes = Vec::new();
        if loop_lag.p99 > SATURATED_LOOP_LAG_MS {
            lag_notes.push(format!(
                "event loops lagged (p99 {:.1} ms over a {} ms timer)",
                loop_lag.p99,
                LAG_PROBE_PERIOD.as_millis()
            ));
        }
        if let Some(o) = &open_model {
            if o.wake_lag_ms.p99 > SATURATED_WAKE_LAG_MS {
                lag_notes.push(format!(
                    "send schedule slipped (p99 wake-up lag {:.1} ms)",
                    o.wake_lag_ms.p99
                ));
            }
        }
        let mut warnings = Vec::new();
        if busy_enough {
            reasons.extend(lag_notes.iter().map(|n| format!("generator {n}")));
        } else if !lag_notes.is_empty() {
            warnings.push(format!(
                "the generator's threads were kept off the CPU: {} while they were only {:.0}% busy; the machine is oversubscribed and timings include scheduling delay",
                lag_notes.join(", "),
                utilization * 100.0
            ));
        }
        if let Some(b) = outcome.machine_busy {
            if b >= BUSY_MACHINE {
                warnings.push(format!(
                    "the machine's CPUs were {:.0}% busy: the generator and the target competed for CPU",
                    b * 100.0
                ));
            }
        }
        if let Some(o) = &open_model {
            if o.intended > 0 && (o.late + o.dropped) * 100 > o.intended {
                warnings.push(format!(
                    "{} of {} scheduled requests were late and {} dropped: all {} connections were busy (raise -c, or the target is overloaded)",
                    o.late, o.intended, o.dropped, cfg.concurrency
                ));
            }
        }
        if outcome.setup_failures > 0 {
            warnings.push(format!(
                "{} virtual users could not complete their setup (login) and ran without a session",
                outcome.setup_failures
            ));
        }
        let setup_total = outcome.setup.total("setup");
        let setup = (setup_total.responses() + setup_total.transport.total() > 0
            || outcome.setup.connects > 0)
            .then(|| SetupReport {
                elapsed_s: outcome.setup_elapsed.as_secs_f64(),
                connections_opened: outcome.setup.connects,
                failed_vus: outcome.setup_failures,
                endpoints: outcome
                    .setup
                    .endpoints
                    .iter()
                    .filter(|e| e.responses() + e.transport.total() > 0)
                    .map(|e| EndpointSummary::from_recorder(e, outcome.setup_elapsed))
                    .collect(),
            });

        Self {
            tool: "quizload".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            rps: all.rps,
            success_rps: all.success_rps,
            requests: all.requests,
            responses: all.responses,
            successes: all.successes,
            success_rate: all.success_rate,
            errors: all.errors,
            status_codes: all.status_codes,
            latency_ms: all.latency_ms,
            service_time_ms: all.service_time_ms,
            elapsed_s: elapsed.as_secs_f64(),
            bytes_received: all.bytes_received,
            target: target.to_string(),
            scenario: scenario.to_string(),
            settings: RunSettings::from_config(cfg),
            started_at_unix: unix_seconds(started),
            endpoints,
            timeseries: rec.series.summarize(),
            open_model,
            connections: ConnectionReport {
                opened: rec.connects,
                stale_retries: rec.stale_retries,
                connect_ms: LatencySummary::from_histogram(&rec.connect_time),
            },
            setup,
            generator: GeneratorReport {
                threads,
                cpus: available_cpus(),
                cpu_user_s: outcome.cpu_user.as_secs_f64(),
                cpu_system_s: outcome.cpu_system.as_secs_f64(),
                cpu_cores_used: cores_used,
                thread_utilization: utilization,
                loop_lag_ms: loop_lag,
                machine_cpu_busy: outcome.machine_busy,
                max_rss_mb: outcome.max_rss_bytes.map(|b| b as f64 / 1_048_576.0),
                saturated: !reasons.is_empty(),
                saturation_reasons: reasons,
            },
            warnings,
            histogram_us: histogram_buckets(&total.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, RunRecorder};
    use std::time::Duration;

    fn outcome(cpu: Duration, lag_ms: u64) -> (RunConfig, RunOutcome) {
        let cfg = RunConfig {
            addr: "127.0.0.1:9".parse().unwrap(),
            threads: 2,
            concurrency: 10,
            stop: Stop::Duration(Duration::from_secs(10)),
            model: Model::Closed {
                ramp: Duration::ZERO,
                spawn_rate: None,
            },
            timeout: Duration::from_secs(1),
            seed: 1,
            progress: crate::generator::engine::Progress::Off,
            settle: None,
        };
        let eps = vec!["GET /".to_string()];
        let mut rec = RunRecorder::new(&eps, 10);
        for i in 0..1000u64 {
            rec.record_response(0, (i / 100) as usize, 200, 1000 + i, None, 10);
        }
        let mut lag = new_histogram();
        for _ in 0..500 {
            lag.record(lag_ms * 1000).unwrap();
        }
        let out = RunOutcome {
            recorder: rec,
            setup: RunRecorder::new(&eps, 1),
            setup_elapsed: Duration::ZERO,
            elapsed: Duration::from_secs(10),
            threads: 2,
            cpu_user: cpu / 2,
            cpu_system: cpu / 2,
            loop_lag: lag,
            machine_busy: Some(0.99),
            max_rss_bytes: Some(1 << 20),
            setup_failures: 0,
        };
        (cfg, out)
    }

    /// Busy generator threads are saturation; lag of mostly idle threads is
    /// a warning about the machine; a calm run is neither.
    #[test]
    fn saturation_judgement() {
        let (cfg, out) = outcome(Duration::from_secs(19), 1);
        let r = RunReport::new(&cfg, &out, "t", "url", SystemTime::now());
        assert!(r.generator.saturated);
        assert!(r.generator.saturation_reasons[0].contains("95% busy"));
        assert_eq!(r.rps, 100.0);
        assert_eq!(r.requests, 1000);
        assert_eq!(r.timeseries.len(), 10);
        assert!(r.warnings.iter().any(|w| w.contains("99% busy")));

        let (cfg, out) = outcome(Duration::from_secs(2), 30);
        let r = RunReport::new(&cfg, &out, "t", "url", SystemTime::now());
        assert!(!r.generator.saturated);
        assert!(r.warnings.iter().any(|w| w.contains("kept off the CPU")));

        let (cfg, out) = outcome(Duration::from_secs(12), 30);
        let r = RunReport::new(&cfg, &out, "t", "url", SystemTime::now());
        assert!(r.generator.saturated);
        assert!(r.generator.saturation_reasons[0].contains("event loops lagged"));

        let (cfg, out) = outcome(Duration::from_secs(2), 1);
        let r = RunReport::new(&cfg, &out, "t", "url", SystemTime::now());
        assert!(!r.generator.saturated);
        let text = r.render();
        assert!(text.contains("Requests/sec:  100.00"), "{text}");
        assert!(text.contains("generator not saturated"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rps"], 100.0);
    }
}

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

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::generator::engine::{Model, RunConfig, RunOutcome, Stop, LATE_THRESHOLD};
use crate::generator::schedule::{Arrival, Stage};
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

impl RunReport {
    /// The report of a run made by an external tool (`--tool wrk|hey|locust`):
    /// the tool's figures in the same shape, with what the tool cannot tell
    /// left empty (no raw histogram, time series or connection figures) and
    /// said in `warnings`. The generator's own CPU and lag were not measured.
    pub fn from_tool(
        cfg: &RunConfig,
        imported: &crate::adapters::ImportReport,
        target: &str,
        scenario: &str,
        started: SystemTime,
        elapsed: std::time::Duration,
    ) -> Self {
        let all = &imported.all;
        Self {
            tool: imported.tool.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            rps: imported.rps,
            success_rps: all.success_rps,
            requests: all.requests,
            responses: all.responses,
            successes: all.successes,
            success_rate: all.success_rate,
            errors: all.errors.clone(),
            status_codes: all.status_codes.clone(),
            latency_ms: all.latency_ms.clone(),
            service_time_ms: None,
            elapsed_s: elapsed.as_secs_f64(),
            bytes_received: 0,
            target: target.to_string(),
            scenario: scenario.to_string(),
            settings: RunSettings::from_config(cfg),
            started_at_unix: started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            endpoints: imported.endpoints.clone(),
            timeseries: vec![],
            open_model: None,
            connections: ConnectionReport {
                opened: 0,
                stale_retries: 0,
                connect_ms: LatencySummary::default(),
            },
            setup: None,
            generator: GeneratorReport {
                threads: cfg.effective_threads(),
                cpus: crate::generator::sysmon::available_cpus(),
                cpu_user_s: 0.0,
                cpu_system_s: 0.0,
                cpu_cores_used: 0.0,
                thread_utilization: 0.0,
                loop_lag_ms: LatencySummary::default(),
                machine_cpu_busy: None,
                max_rss_mb: None,
                saturated: false,
                saturation_reasons: vec![],
            },
            warnings: vec![format!(
                "measured by {} ({}): {}; its own CPU use and lag were not measured, and there is no raw histogram",
                imported.tool, imported.source, imported.caveat
            )],
            histogram_us: vec![],
        }
    }

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
                crate::generator::engine::LAG_PROBE_PERIOD.as_millis()
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
            started_at_unix: started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
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
                cpus: crate::generator::sysmon::available_cpus(),
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

    /// A hey/wrk-style human summary.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let s = &self.settings;
        let load = match s.model.as_str() {
            "open" => match (s.rate, &s.stages) {
                (Some(r), _) => format!(
                    "open model, {r} req/s {}, {} connections",
                    arrival_name(s.arrival),
                    s.concurrency
                ),
                _ => format!(
                    "open model, staged rate {}, {} connections",
                    arrival_name(s.arrival),
                    s.concurrency
                ),
            },
            _ => format!("closed model, {} virtual users", s.concurrency),
        };
        let _ = writeln!(o, "\nSummary:");
        let _ = writeln!(o, "  Target:        {}  [{}]", self.target, self.scenario);
        let _ = writeln!(o, "  Load:          {load}, {} threads", s.threads);
        let _ = writeln!(o, "  Total:         {:.4} secs", self.elapsed_s);
        let _ = writeln!(
            o,
            "  Requests:      {} ({} ok, {} failed; {:.2}% success)",
            self.requests, self.successes, self.errors.total, self.success_rate
        );
        let _ = writeln!(o, "  Requests/sec:  {:.2}", self.rps);
        let _ = writeln!(
            o,
            "  Transfer/sec:  {}",
            human_bytes(if self.elapsed_s > 0.0 {
                self.bytes_received as f64 / self.elapsed_s
            } else {
                0.0
            })
        );
        let l = &self.latency_ms;
        let title = if s.model == "open" {
            "Latency from intended send time (ms, coordinated-omission corrected):"
        } else {
            "Latency (ms):"
        };
        let _ = writeln!(o, "\n{title}");
        write_latency(&mut o, l);
        if let Some(st) = &self.service_time_ms {
            let _ = writeln!(o, "Service time from actual send (ms):");
            write_latency(&mut o, st);
        }
        if !self.status_codes.is_empty() {
            let _ = writeln!(o, "\nStatus code distribution:");
            for (code, n) in &self.status_codes {
                let _ = writeln!(o, "  [{code}]\t{n} responses");
            }
        }
        let e = &self.errors;
        if e.connect + e.timeout + e.io + e.protocol > 0 {
            let _ = writeln!(o, "\nErrors without a response:");
            for (name, n) in [
                ("connect", e.connect),
                ("timeout", e.timeout),
                ("reset/io", e.io),
                ("protocol", e.protocol),
            ] {
                if n > 0 {
                    let _ = writeln!(o, "  {name:<10}{n}");
                }
            }
        }
        if self.endpoints.len() > 1 || self.scenario != "url" {
            let _ = writeln!(o, "\nPer endpoint:");
            o.push_str(&endpoint_table(&self.endpoints));
        }
        if let Some(setup) = &self.setup {
            if !setup.endpoints.is_empty() {
                let _ = writeln!(
                    o,
                    "\nSetup (before the clock, {:.2} s, {} connections):",
                    setup.elapsed_s, setup.connections_opened
                );
                o.push_str(&endpoint_table(&setup.endpoints));
            }
        }
        if let Some(m) = &self.open_model {
            let _ = writeln!(
                o,
                "\nSchedule: {} intended, {} sent, {} late (> {} ms), {} dropped; send lag p50 {:.2} ms, p99 {:.2} ms; wake-up lag p99 {:.2} ms",
                m.intended,
                m.sent,
                m.late,
                m.late_threshold_ms,
                m.dropped,
                m.send_lag_ms.p50,
                m.send_lag_ms.p99,
                m.wake_lag_ms.p99
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            o,
            "\nGenerator: {} threads on {} CPUs, {:.2} cores used ({:.0}% of its threads), loop lag p99 {:.2} ms{}{}",
            g.threads,
            g.cpus,
            g.cpu_cores_used,
            g.thread_utilization * 100.0,
            g.loop_lag_ms.p99,
            g.machine_cpu_busy
                .map(|b| format!(", machine {:.0}% busy", b * 100.0))
                .unwrap_or_default(),
            g.max_rss_mb
                .map(|m| format!(", {m:.0} MB RSS"))
                .unwrap_or_default(),
        );
        if g.saturated {
            let _ = writeln!(
                o,
                "  GENERATOR SATURATED: {}; the figures may measure the generator, not the target.",
                g.saturation_reasons.join("; ")
            );
        } else {
            let _ = writeln!(o, "  generator not saturated");
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        o
    }
}

fn arrival_name(a: Option<Arrival>) -> &'static str {
    match a {
        Some(Arrival::Poisson) => "Poisson",
        _ => "uniform",
    }
}

fn write_latency(o: &mut String, l: &LatencySummary) {
    let _ = writeln!(
        o,
        "  avg {:.3}  stdev {:.3}  min {:.3}  max {:.3}",
        l.mean, l.stdev, l.min, l.max
    );
    let _ = writeln!(
        o,
        "  p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}",
        l.p50, l.p90, l.p95, l.p99, l.p999
    );
}

fn human_bytes(b: f64) -> String {
    if b >= 1_048_576.0 {
        format!("{:.2} MB", b / 1_048_576.0)
    } else if b >= 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// A plain-text table of endpoints (Locust's columns plus percentiles).
pub fn endpoint_table(eps: &[EndpointSummary]) -> String {
    let mut rows = vec![[
        "Endpoint", "Requests", "Fails", "req/s", "avg ms", "p50", "p95", "p99", "max",
    ]
    .map(String::from)
    .to_vec()];
    for e in eps {
        rows.push(vec![
            e.name.clone(),
            e.requests.to_string(),
            format!("{} ({:.1}%)", e.errors.total, 100.0 - e.success_rate),
            format!("{:.1}", e.rps),
            format!("{:.2}", e.latency_ms.mean),
            format!("{:.2}", e.latency_ms.p50),
            format!("{:.2}", e.latency_ms.p95),
            format!("{:.2}", e.latency_ms.p99),
            format!("{:.2}", e.latency_ms.max),
        ]);
    }
    text_table(&rows)
}

/// Aligns rows of cells into columns (first column left-aligned).
pub fn text_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    for r in rows {
        o.push_str("  ");
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                o.push_str(cell);
                o.push_str(&" ".repeat(pad));
            } else {
                o.push_str("  ");
                o.push_str(&" ".repeat(pad));
                o.push_str(cell);
            }
        }
        o.push('\n');
    }
    o
}

/// A Markdown table (header row, separator, rows).
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let _ = writeln!(
        o,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
    o
}

/// One row of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Concurrency (closed sweep) or target rate (open sweep).
    pub level: f64,
    pub rps: f64,
    pub success_rate: f64,
    pub latency_ms: LatencySummary,
    pub generator_saturated: bool,
    /// The full report of the row.
    pub report: RunReport,
}

/// The JSON report of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub tool: String,
    pub version: String,
    /// `concurrency` or `rate`.
    pub over: String,
    /// The highest request rate of any row (each row has its own `rps`).
    pub rps: f64,
    /// The level at which `rps` was reached.
    pub peak_level: f64,
    pub target: String,
    pub scenario: String,
    pub rows: Vec<SweepRow>,
}

impl SweepReport {
    /// The sweep table: document 004's columns for a concurrency sweep,
    /// with the schedule's late/dropped counts for a rate sweep.
    pub fn table_rows(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let closed = self.over == "concurrency";
        let header = if closed {
            vec![
                "Concurrent Connections",
                "Requests/Second",
                "Avg Response Time",
                "p99",
                "Success Rate",
            ]
        } else {
            vec![
                "Target Rate",
                "Requests/Second",
                "Avg Response Time",
                "p99",
                "Success Rate",
                "Late",
                "Dropped",
            ]
        };
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut v = vec![
                    if closed {
                        format!("{}", r.level as u64)
                    } else {
                        format!("{}", r.level)
                    },
                    format!("{:.0}", r.rps),
                    format!("{:.1}ms", r.latency_ms.mean),
                    format!("{:.1}ms", r.latency_ms.p99),
                    format!("{:.1}%", r.success_rate),
                ];
                if !closed {
                    let (late, dropped) = r
                        .report
                        .open_model
                        .as_ref()
                        .map(|m| (m.late, m.dropped))
                        .unwrap_or((0, 0));
                    v.push(late.to_string());
                    v.push(dropped.to_string());
                }
                if r.generator_saturated {
                    v[1].push_str(" (generator saturated)");
                }
                v
            })
            .collect();
        (header, rows)
    }

    /// The sweep as a Markdown table.
    pub fn render(&self) -> String {
        let (header, rows) = self.table_rows();
        markdown_table(&header, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::engine::RunOutcome;
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
            endpoints: eps.clone(),
            recorder: rec,
            setup: RunRecorder::new(&eps, 1),
            setup_elapsed: Duration::ZERO,
            elapsed: Duration::from_secs(10),
            threads: 2,
            concurrency: 10,
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

    #[test]
    fn tables_align() {
        let t = text_table(&[
            vec!["a".into(), "1".into()],
            vec!["long".into(), "22".into()],
        ]);
        assert_eq!(t, "  a      1\n  long  22\n");
        let m = markdown_table(&["A", "B"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(m, "| A | B |\n|---|---|\n| 1 | 2 |\n");
    }
}

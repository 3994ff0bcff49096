//! An external tool's figures in quizload's shape ([`ImportReport`]: wrk,
//! hey or Locust, run by quizload or read from a file), their terminal
//! table, and the run report made from them ([`RunReport::from_tool`]).
//! The tools' importers (a layer above) fill it in; this module only holds and
//! presents what they produced.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{unix_seconds, ConnectionReport, GeneratorReport, RunReport, RunSettings};
use crate::analysis::tables::endpoint_table;
use crate::generator::engine::RunConfig;
use crate::generator::sysmon::available_cpus;
use crate::stats::{EndpointSummary, LatencySummary};

/// Figures of one run by an external tool (or read from its report), in
/// quizload's per-endpoint shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub tool: String,
    /// The file read, or the command line run.
    pub source: String,
    /// The request rate the tool reported (all endpoints).
    pub rps: f64,
    /// All requests together (wrk, hey: the one endpoint; Locust: its
    /// `Aggregated` row).
    pub all: EndpointSummary,
    pub endpoints: Vec<EndpointSummary>,
    /// What the tool's figures cannot tell.
    pub caveat: String,
}

impl ImportReport {
    /// The tool, source and rate, the per-endpoint table and the caveat:
    /// what `quizload import` and `quizload run --tool` print.
    pub fn render(&self) -> String {
        format!(
            "{} ({}), {:.2} req/s:\n{}  note: {}\n",
            self.tool,
            self.source,
            self.rps,
            endpoint_table(&self.endpoints),
            self.caveat
        )
    }

    /// One line of totals over all requests.
    pub fn totals_line(&self) -> String {
        let all = &self.all;
        format!(
            "  all: {} requests, {:.2}% success, {:.2} req/s, mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms\n",
            all.requests,
            all.success_rate,
            self.rps,
            all.latency_ms.mean,
            all.latency_ms.p50,
            all.latency_ms.p99
        )
    }
}

impl RunReport {
    /// The report of a run made by an external tool (`--tool wrk|hey|locust`):
    /// the tool's figures in the same shape, with what the tool cannot tell
    /// left empty (no raw histogram, time series or connection figures) and
    /// said in `warnings`. The generator's own CPU and lag were not measured.
    pub fn from_tool(
        cfg: &RunConfig,
        imported: &ImportReport,
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
            started_at_unix: unix_seconds(started),
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
                cpus: available_cpus(),
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
}

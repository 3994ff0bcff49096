//! An experiment's summary ([`ExperimentSummary`], `summary.json`): each
//! cell's estimates over its trials ([`Estimate`]: mean and 95 %
//! t-interval), the server's cost, each component's CPU share and where
//! components shared CPUs, OOM kills and worker deaths, per-endpoint means,
//! a verdict per configuration against the baseline in each cell (with a
//! caveat where too many requests failed), and the document's claims tested
//! ([`summarize`], [`super::claims`]). Pure: it reads run records and
//! writes nothing; the runner adds the machine and the method.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::calibrate::Calibration;
use super::claims::{test_claims, ClaimRecord};
use super::figures::{beside_ours, DefaultCell, FigureRecord};
use super::placement::{online_cpus, Machine};
use super::run::{Method, RunRecord, StartFailure};
use super::spec::{ExperimentSpec, Metric};
use crate::analysis::inference::{compare, mean, sample_variance, student_t_quantile, Comparison};
use crate::stats::EndpointSummary;

/// Mean and 95 % t-interval half-width of a metric over trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    /// Half-width of the 95 % confidence interval (0 with one trial).
    pub ci95: f64,
    pub values: Vec<f64>,
}

impl Estimate {
    pub(super) fn of(values: Vec<f64>) -> Self {
        let m = mean(&values);
        let ci95 = if values.len() >= 2 {
            let sd = sample_variance(&values).sqrt();
            student_t_quantile(0.975, (values.len() - 1) as f64) * sd / (values.len() as f64).sqrt()
        } else {
            0.0
        };
        Self {
            mean: if values.is_empty() { 0.0 } else { m },
            ci95,
            values,
        }
    }
}

/// Aggregate of one cell over its trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub config: String,
    pub label: String,
    pub scenario: String,
    pub level: f64,
    pub trials: usize,
    pub rps: Estimate,
    pub success_rate: Estimate,
    pub mean_ms: Estimate,
    pub p50_ms: Estimate,
    pub p95_ms: Estimate,
    pub p99_ms: Estimate,
    pub min_ms: Estimate,
    pub max_ms: Estimate,
    pub server_cpu_cores: Option<Estimate>,
    pub server_rss_mb: Option<Estimate>,
    pub db_connections: Option<Estimate>,
    /// Share of requests per worker, summed over trials.
    pub worker_share: BTreeMap<String, f64>,
    /// Per-endpoint means over trials: name → (requests, fails, p50, mean, min, max, rps).
    pub endpoints: Vec<EndpointCell>,
    pub generator_saturated_runs: usize,
    /// Cores each component kept busy (`server`, `generator`, `postgres`,
    /// `redis`), over trials.
    #[serde(default)]
    pub cpu_share: BTreeMap<String, Estimate>,
    /// Where the server shared CPUs with another component in any trial.
    #[serde(default)]
    pub overlaps: Vec<String>,
    /// OOM kills in the server's cgroup, summed over trials.
    pub oom_kills: Option<u64>,
    /// Server workers that died, summed over trials.
    pub worker_deaths: Option<f64>,
    /// Bytes received per response (status line, headers and body as
    /// they came over the wire: compressed when the server compressed).
    pub bytes_per_response: Option<Estimate>,
    /// Server CPU time per response, ms (all server processes' CPU during
    /// the run over its responses).
    pub server_cpu_ms_per_response: Option<Estimate>,
    /// The plan of the experiment's `explain` statement in this cell's
    /// database state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// One endpoint of a cell, averaged over trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointCell {
    pub name: String,
    pub requests: f64,
    pub failures: f64,
    pub p50_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub rps: f64,
}

/// A verdict between a configuration and the baseline in one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub scenario: String,
    pub level: f64,
    pub config: String,
    pub baseline: String,
    pub metric: String,
    pub comparison: Comparison,
    pub text: String,
}

/// `summary.json` of a results folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub tool: String,
    pub version: String,
    /// The tool that sent the cells' load: `quizload`, or `wrk`, `hey`,
    /// `locust` with `--tool`.
    #[serde(default = "default_load_tool")]
    pub load_tool: String,
    /// The highest mean request rate of any cell (each cell has its own).
    pub rps: f64,
    pub experiment: ExperimentSpec,
    pub started_at_unix: f64,
    pub finished_at_unix: f64,
    /// `started` (the runner started the server) or the target URL.
    pub server: String,
    pub cpus: usize,
    pub cells: Vec<CellSummary>,
    pub verdicts: Vec<VerdictRecord>,
    /// The document's claims, each tested.
    #[serde(default)]
    pub claims: Vec<ClaimRecord>,
    pub runs: usize,
    /// CPU model, kernel, PostgreSQL and Redis versions.
    pub machine: Option<Machine>,
    /// How the envelopes were applied.
    pub method: Option<Method>,
    /// The CPUs the generator's threads could use at the end.
    pub generator_cpus: Option<String>,
    /// The server builds of the runs (more than one only with
    /// `--mix-builds`).
    #[serde(default)]
    pub builds: Vec<String>,
    /// Configurations whose server did not start, per trial.
    #[serde(default)]
    pub start_failures: Vec<StartFailure>,
    /// The knob calibrated before the trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// The document's figures not used by the calibration, against ours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<FigureRecord>,
    /// When the runs were measured, and by which command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
    /// The document's table (`[[figures]]`), against ours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<FigureRecord>,
}

fn default_load_tool() -> String {
    "quizload".into()
}

/// When an experiment's runs were measured, and by which command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The first run's start and the last run's end, unix seconds (a
    /// resumed run spans its invocations).
    pub from_unix: f64,
    pub to_unix: f64,
    /// The command line that wrote this summary (a resumed run's: the last
    /// invocation's).
    pub command: Option<String>,
}

impl Measured {
    fn of(records: &[RunRecord]) -> Option<Measured> {
        let starts = records.iter().map(|r| r.report.started_at_unix);
        let ends = records
            .iter()
            .map(|r| r.report.started_at_unix + r.report.elapsed_s);
        Some(Measured {
            from_unix: starts.reduce(f64::min)?,
            to_unix: ends.reduce(f64::max)?,
            command: None,
        })
    }
}

pub(super) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Latencies of failed requests (a 401 in 2 ms, a refused connection) are
/// not the latencies the claim is about: a verdict between cells where more
/// than 1% of requests failed says so instead of standing alone.
fn failure_caveat(base_success: f64, cand_success: f64) -> Option<String> {
    (base_success.min(cand_success) < 99.0).then(|| {
        format!(
            " — NOT COMPARABLE: only {cand_success:.1}% (baseline {base_success:.1}%) of requests succeeded"
        )
    })
}

/// Aggregates run records into cells and verdicts.
pub fn summarize(
    spec: &ExperimentSpec,
    records: &[RunRecord],
    started: f64,
    server: String,
) -> ExperimentSummary {
    let mut cells = Vec::new();
    let label_of = |name: &str| {
        spec.configs
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.label().to_string())
            .unwrap_or_else(|| name.to_string())
    };
    let mut keys: Vec<(String, String, f64)> = records
        .iter()
        .map(|r| (r.config.clone(), r.scenario.clone(), r.level))
        .collect();
    keys.sort_by(|a, b| {
        (config_index(spec, &a.0), &a.1, a.2)
            .partial_cmp(&(config_index(spec, &b.0), &b.1, b.2))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    keys.dedup();
    for (config, scenario, level) in keys {
        let rs: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.config == config && r.scenario == scenario && r.level == level)
            .collect();
        let est = |f: &dyn Fn(&RunRecord) -> f64| Estimate::of(rs.iter().map(|r| f(r)).collect());
        let opt_est = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
            let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| Estimate::of(v))
        };
        let mut worker_share: BTreeMap<String, f64> = BTreeMap::new();
        for r in &rs {
            if let Some(u) = &r.server {
                for (w, n) in &u.worker_requests {
                    *worker_share.entry(w.clone()).or_insert(0.0) += n;
                }
            }
        }
        let total: f64 = worker_share.values().sum();
        if total > 0.0 {
            for v in worker_share.values_mut() {
                *v /= total;
            }
        }
        let mut endpoints: BTreeMap<String, Vec<&EndpointSummary>> = BTreeMap::new();
        for r in &rs {
            for e in &r.report.endpoints {
                endpoints.entry(e.name.clone()).or_default().push(e);
            }
        }
        let n = rs.len().max(1) as f64;
        let endpoints = endpoints
            .into_iter()
            .map(|(name, es)| EndpointCell {
                name,
                requests: es.iter().map(|e| e.requests as f64).sum::<f64>() / n,
                failures: es.iter().map(|e| e.errors.total as f64).sum::<f64>() / n,
                p50_ms: es.iter().map(|e| e.latency_ms.p50).sum::<f64>() / es.len() as f64,
                mean_ms: es.iter().map(|e| e.latency_ms.mean).sum::<f64>() / es.len() as f64,
                min_ms: es
                    .iter()
                    .map(|e| e.latency_ms.min)
                    .fold(f64::INFINITY, f64::min),
                max_ms: es.iter().map(|e| e.latency_ms.max).fold(0.0, f64::max),
                rps: es.iter().map(|e| e.rps).sum::<f64>() / n,
            })
            .collect();
        let mut cpu_share: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut overlaps: Vec<String> = Vec::new();
        for r in &rs {
            if let Some(p) = &r.placement {
                for (k, v) in &p.cpu_cores {
                    cpu_share.entry(k.clone()).or_default().push(*v);
                }
                for o in &p.overlaps {
                    if !overlaps.contains(o) {
                        overlaps.push(o.clone());
                    }
                }
            }
        }
        let sum_opt = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
            let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>())
        };
        let oom_kills = sum_opt(&|r| {
            r.server
                .as_ref()
                .and_then(|s| s.memory_events.oom_kills)
                .map(|n| n as f64)
        })
        .map(|n| n as u64);
        let worker_deaths = sum_opt(&|r| r.server.as_ref().and_then(|s| s.worker_deaths));
        cells.push(CellSummary {
            cpu_share: cpu_share
                .into_iter()
                .map(|(k, v)| (k, Estimate::of(v)))
                .collect(),
            overlaps,
            oom_kills,
            worker_deaths,
            label: label_of(&config),
            config,
            scenario,
            level,
            trials: rs.len(),
            rps: est(&|r| r.report.rps),
            success_rate: est(&|r| r.report.success_rate),
            mean_ms: est(&|r| r.report.latency_ms.mean),
            p50_ms: est(&|r| r.report.latency_ms.p50),
            p95_ms: est(&|r| r.report.latency_ms.p95),
            p99_ms: est(&|r| r.report.latency_ms.p99),
            min_ms: est(&|r| r.report.latency_ms.min),
            max_ms: est(&|r| r.report.latency_ms.max),
            server_cpu_cores: opt_est(&|r| r.server.as_ref().map(|s| s.cpu_cores)),
            server_rss_mb: opt_est(&|r| r.server.as_ref().map(|s| s.rss_mb)),
            db_connections: opt_est(&|r| r.server.as_ref().and_then(|s| s.db_connections)),
            worker_share,
            endpoints,
            generator_saturated_runs: rs.iter().filter(|r| r.report.generator.saturated).count(),
            plan: rs.iter().find_map(|r| r.plan.clone()),
            bytes_per_response: opt_est(&|r| Metric::Bytes.of(&r.report, None)),
            server_cpu_ms_per_response: opt_est(&|r| {
                Metric::CpuMs.of(&r.report, r.server.as_ref())
            }),
        });
    }
    let mut verdicts = Vec::new();
    for cfg in spec.configs.iter().filter(|c| c.name != spec.baseline) {
        for cell in cells.iter().filter(|c| c.config == cfg.name) {
            let base: Vec<f64> = records
                .iter()
                .filter(|r| {
                    r.config == spec.baseline
                        && r.scenario == cell.scenario
                        && r.level == cell.level
                })
                .filter_map(|r| spec.metric.of(&r.report, r.server.as_ref()))
                .collect();
            if base.is_empty() {
                continue;
            }
            let cand: Vec<f64> = records
                .iter()
                .filter(|r| {
                    r.config == cfg.name && r.scenario == cell.scenario && r.level == cell.level
                })
                .filter_map(|r| spec.metric.of(&r.report, r.server.as_ref()))
                .collect();
            let comparison = compare(&base, &cand);
            let base_success = cells
                .iter()
                .find(|c| {
                    c.config == spec.baseline
                        && c.scenario == cell.scenario
                        && c.level == cell.level
                })
                .map_or(100.0, |c| c.success_rate.mean);
            let mut text = format!(
                "{} @ {} {}",
                comparison.describe(cfg.label(), spec.metric.name()),
                cell.level,
                if spec.open() { "req/s" } else { "concurrent" }
            );
            if let Some(note) = failure_caveat(base_success, cell.success_rate.mean) {
                text.push_str(&note);
            }
            verdicts.push(VerdictRecord {
                scenario: cell.scenario.clone(),
                level: cell.level,
                config: cfg.name.clone(),
                baseline: spec.baseline.clone(),
                metric: spec.metric.name().into(),
                comparison,
                text,
            });
        }
    }
    let claims = test_claims(spec, records);
    let first_scenario = spec.load.scenarios[0];
    let checks = spec
        .calibrate
        .as_ref()
        .map(|c| {
            let at = DefaultCell {
                config: &c.config,
                scenario: c.scenario.unwrap_or(first_scenario),
                level: c.level,
            };
            beside_ours(&c.checks, &at, &cells, records)
        })
        .unwrap_or_default();
    let baseline = DefaultCell {
        config: &spec.baseline,
        scenario: first_scenario,
        level: spec.levels().first().copied().unwrap_or_default(),
    };
    let figures = beside_ours(&spec.figures, &baseline, &cells, records);
    let rps = cells.iter().map(|c| c.rps.mean).fold(0.0, f64::max);
    ExperimentSummary {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        load_tool: default_load_tool(),
        rps,
        experiment: spec.clone(),
        started_at_unix: started,
        finished_at_unix: now_unix(),
        server,
        cpus: online_cpus(),
        runs: records.len(),
        cells,
        verdicts,
        claims,
        machine: None,
        method: None,
        generator_cpus: None,
        builds: {
            let mut b: Vec<String> = records
                .iter()
                .filter_map(|r| r.build.as_ref().map(|b| b.short()))
                .collect();
            b.sort();
            b.dedup();
            b
        },
        start_failures: Vec::new(),
        calibration: None,
        checks,
        figures,
        measured: Measured::of(records),
    }
}

fn config_index(spec: &ExperimentSpec, name: &str) -> usize {
    spec.configs
        .iter()
        .position(|c| c.name == name)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_over_failing_cells_carry_a_caveat() {
        assert_eq!(failure_caveat(100.0, 99.5), None);
        let note = failure_caveat(100.0, 0.0).unwrap();
        assert!(
            note.contains("NOT COMPARABLE") && note.contains("0.0%"),
            "{note}"
        );
        assert!(failure_caveat(50.0, 100.0).is_some());
    }

    #[test]
    fn estimates_have_a_t_interval() {
        let e = Estimate::of(vec![1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        // t(0.975, 2) * 1 / sqrt(3)
        assert!((e.ci95 - 4.302_653 / 3f64.sqrt()).abs() < 1e-4);
        assert_eq!(Estimate::of(vec![5.0]).ci95, 0.0);
    }
}

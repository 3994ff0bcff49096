//! The document's claims tested against the trials ([`test_claims`]): for
//! each `[[claims]]` entry of the experiment file and each cell it covers,
//! the candidate's trials against the baseline's on the claim's metric,
//! with its verdict ([`ClaimRecord`]: confirms, refutes, inconclusive).
//! Pure: the statistics are [`crate::analysis::verdicts`]'s.

use serde::{Deserialize, Serialize};

use super::run::RunRecord;
use super::spec::{ExperimentSpec, Metric};
use crate::analysis::verdicts::{test_claim, ClaimKind, ClaimTest};

/// `metric` of one run: of the whole run, or of its `endpoint` row (None
/// when the run cannot give it: no such row, or a metric endpoint rows do
/// not have).
pub(super) fn run_metric(metric: Metric, r: &RunRecord, endpoint: Option<&str>) -> Option<f64> {
    let Some(name) = endpoint else {
        return metric.of(&r.report, r.server.as_ref());
    };
    let e = r.report.endpoints.iter().find(|e| e.name == name)?;
    let l = &e.latency_ms;
    Some(match metric {
        Metric::Mean => l.mean,
        Metric::Min => l.min,
        Metric::P50 => l.p50,
        Metric::P95 => l.p95,
        Metric::P99 => l.p99,
        Metric::Max => l.max,
        Metric::Rps => e.rps,
        Metric::Success => e.success_rate,
        Metric::Bytes | Metric::CpuMs => return None, // whole runs only
    })
}

/// One claim tested in one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The claim in the document's words.
    pub claim: String,
    pub kind: ClaimKind,
    pub config: String,
    pub against: String,
    pub scenario: String,
    pub level: f64,
    pub metric: String,
    /// The endpoint row the claim is about (none: the whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub test: ClaimTest,
    /// One line for the report.
    pub text: String,
}

/// Every claim of `spec` in every cell it covers that has trials of both
/// configurations.
pub fn test_claims(spec: &ExperimentSpec, records: &[RunRecord]) -> Vec<ClaimRecord> {
    let mut out = Vec::new();
    for c in &spec.claims {
        let Ok(kind) = c.kind() else { continue };
        let against = c.against.clone().unwrap_or_else(|| spec.baseline.clone());
        let metric = c.metric.unwrap_or(spec.metric);
        let mut cells: Vec<(String, f64)> = records
            .iter()
            .filter(|r| r.config == c.config)
            .filter(|r| c.scenario.as_ref().is_none_or(|s| s == &r.scenario))
            .filter(|r| c.level.is_none_or(|l| l == r.level))
            .map(|r| (r.scenario.clone(), r.level))
            .collect();
        cells.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        cells.dedup();
        for (scenario, level) in cells {
            let values = |config: &str| -> Vec<f64> {
                records
                    .iter()
                    .filter(|r| r.config == config && r.scenario == scenario && r.level == level)
                    .filter_map(|r| run_metric(metric, r, c.endpoint.as_deref()))
                    .collect()
            };
            let (a, b) = (values(&against), values(&c.config));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let test = test_claim(&kind, &a, &b);
            let what = match &c.endpoint {
                Some(e) => format!("{} of {e}", metric.name()),
                None => metric.name().to_string(),
            };
            let text = format!(
                "**{}** — {} vs {}, {what} @ {} ({scenario}): claim: {}; ours {:+.1}%: {}",
                test.verdict.word(),
                c.config,
                against,
                level,
                kind.describe(),
                test.relative * 100.0,
                test.reason
            );
            out.push(ClaimRecord {
                claim: c.text.clone(),
                kind: kind.clone(),
                config: c.config.clone(),
                against: against.clone(),
                scenario,
                level,
                metric: metric.name().into(),
                endpoint: c.endpoint.clone(),
                test,
                text,
            });
        }
    }
    out
}

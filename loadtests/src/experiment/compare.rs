//! `quizload compare A B` ([`compare_folders`]): two results folders side
//! by side, cell by cell, with a verdict per shared (scenario, level), and
//! its text. It reads the folders and computes; it writes nothing.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::results::{load_runs, load_summary};
use super::spec::Metric;
use super::summary::{ExperimentSummary, VerdictRecord};
use crate::analysis::inference::compare;

/// Result of `quizload compare A B`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub tool: String,
    /// Highest mean request rate of any compared cell of B.
    pub rps: f64,
    /// Highest mean request rate of any compared cell of A.
    pub rps_a: f64,
    pub a: String,
    pub b: String,
    pub metric: String,
    pub verdicts: Vec<VerdictRecord>,
}

impl CompareReport {
    /// `B vs A (metric):` and one verdict per line, as the CLI prints it.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{} vs {} ({}):", self.b, self.a, self.metric);
        for v in &self.verdicts {
            let _ = writeln!(o, "  {}", v.text);
        }
        o
    }
}

/// Compares two results folders cell by cell: for each (scenario, level)
/// in both, A's configuration (its baseline, or its only one) against each
/// of B's with the same name (or B's only one).
pub fn compare_folders(
    a: &Path,
    b: &Path,
    metric: Option<Metric>,
) -> anyhow::Result<CompareReport> {
    let (sa, sb) = (load_summary(a)?, load_summary(b)?);
    let (ra, rb) = (load_runs(a)?, load_runs(b)?);
    let metric = metric.unwrap_or(sa.experiment.metric);
    let single = |s: &ExperimentSummary| {
        let mut n: Vec<&str> = s.cells.iter().map(|c| c.config.as_str()).collect();
        n.sort();
        n.dedup();
        (n.len() == 1).then(|| n[0].to_string())
    };
    let a_cfg = single(&sa).unwrap_or_else(|| sa.experiment.baseline.clone());
    let b_single = single(&sb);
    let mut verdicts = Vec::new();
    let (mut rps_a, mut rps_b) = (0.0f64, 0.0f64);
    for cb in &sb.cells {
        if b_single.is_none() && cb.config == a_cfg {
            continue;
        }
        let Some(ca) = sa
            .cells
            .iter()
            .find(|c| c.config == a_cfg && c.scenario == cb.scenario && c.level == cb.level)
        else {
            continue;
        };
        let va: Vec<f64> = ra
            .iter()
            .filter(|r| r.config == ca.config && r.scenario == ca.scenario && r.level == ca.level)
            .filter_map(|r| metric.of(&r.report, r.server.as_ref()))
            .collect();
        let vb: Vec<f64> = rb
            .iter()
            .filter(|r| r.config == cb.config && r.scenario == cb.scenario && r.level == cb.level)
            .filter_map(|r| metric.of(&r.report, r.server.as_ref()))
            .collect();
        rps_a = rps_a.max(ca.rps.mean);
        rps_b = rps_b.max(cb.rps.mean);
        let comparison = compare(&va, &vb);
        let label = format!(
            "{} ({}) vs {} ({})",
            cb.label,
            b.display(),
            ca.label,
            a.display()
        );
        verdicts.push(VerdictRecord {
            scenario: cb.scenario.clone(),
            level: cb.level,
            config: cb.config.clone(),
            baseline: ca.config.clone(),
            metric: metric.name().into(),
            text: format!(
                "{} @ {} [{}]",
                comparison.describe(&label, metric.name()),
                cb.level,
                cb.scenario
            ),
            comparison,
        });
    }
    if verdicts.is_empty() {
        bail!("the two folders have no (scenario, level) cell in common");
    }
    Ok(CompareReport {
        tool: "quizload".into(),
        rps: rps_b,
        rps_a,
        a: a.display().to_string(),
        b: b.display().to_string(),
        metric: metric.name().into(),
        verdicts,
    })
}

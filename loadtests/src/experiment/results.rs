//! An experiment's results folder: writing `summary.json`, the SVG charts
//! and `report.md` ([`write_results`]; the runner writes `runs/` as it
//! goes), and reading a folder back ([`load_summary`], [`load_runs`]) for
//! `quizload compare`. File I/O only: what goes in the files is decided by
//! the summary, the renderers and the charts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::render::report_markdown;
use super::run::RunRecord;
use super::summary::{CellSummary, ExperimentSummary};
use crate::analysis::charts::{line_chart, share_chart, Series};
use crate::output::write_json;

/// Writes `summary.json`, `report.md` and the SVG charts.
pub fn write_results(out: &Path, s: &ExperimentSummary) -> anyhow::Result<()> {
    write_json(&out.join("summary.json"), s)?;
    let spec = &s.experiment;
    let x_label = if spec.open() {
        "arrival rate (req/s)"
    } else {
        "concurrency"
    };
    let mut charts = Vec::new();
    for sc in spec.load.scenarios.iter().map(|k| k.name()) {
        let series = |f: &dyn Fn(&CellSummary) -> (f64, f64)| -> Vec<Series> {
            spec.configs
                .iter()
                .map(|c| Series {
                    name: c.label().to_string(),
                    points: s
                        .cells
                        .iter()
                        .filter(|x| x.config == c.name && x.scenario == sc)
                        .map(|x| {
                            let (y, e) = f(x);
                            (x.level, y, e)
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect()
        };
        let lat = series(&|x| (x.mean_ms.mean, x.mean_ms.ci95));
        let thr = series(&|x| (x.rps.mean, x.rps.ci95));
        let f1 = format!("latency-{sc}.svg");
        let f2 = format!("throughput-{sc}.svg");
        std::fs::write(
            out.join(&f1),
            line_chart(&format!("Mean latency, {sc}"), x_label, "ms", &lat),
        )?;
        std::fs::write(
            out.join(&f2),
            line_chart(&format!("Throughput, {sc}"), x_label, "req/s", &thr),
        )?;
        charts.push(f1);
        charts.push(f2);
    }
    let shares: Vec<(String, BTreeMap<String, f64>)> = spec
        .configs
        .iter()
        .filter_map(|c| {
            s.cells
                .iter()
                .filter(|x| x.config == c.name && !x.worker_share.is_empty())
                .max_by(|a, b| a.level.total_cmp(&b.level))
                .map(|x| {
                    (
                        format!("{} @ {}", c.label(), x.level),
                        x.worker_share.clone(),
                    )
                })
        })
        .collect();
    if !shares.is_empty() {
        std::fs::write(
            out.join("worker-share.svg"),
            share_chart("Per-worker request share", &shares),
        )?;
        charts.push("worker-share.svg".into());
    }
    std::fs::write(out.join("report.md"), report_markdown(s, &charts))?;
    Ok(())
}

/// Loads `summary.json` from a results folder.
pub fn load_summary(dir: &Path) -> anyhow::Result<ExperimentSummary> {
    let p = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))
}

/// Loads all run records of a results folder.
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("runs"))
        .with_context(|| format!("no runs/ in {}", dir.display()))?
    {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            out.push(serde_json::from_str(&std::fs::read_to_string(&p)?)?);
        }
    }
    out.sort_by_key(|r: &RunRecord| r.order);
    Ok(out)
}

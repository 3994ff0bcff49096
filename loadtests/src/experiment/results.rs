//! An experiment's results folder: writing `summary.json`, the SVG charts,
//! each cell's per-second series (`series/CELL.csv` and `.svg`: req/s,
//! errors, p50 and p99 per second of each trial's window) and `report.md`
//! ([`write_results`]; the runner writes `runs/` as it goes), and reading a
//! folder back ([`load_summary`], [`load_runs`]) for `quizload compare` and
//! `--resume`. File I/O only: what goes in the files is decided by
//! the summary, the renderers and the charts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::render::report_markdown;
use super::run::RunRecord;
use super::summary::{CellSummary, ExperimentSummary};
use crate::analysis::charts::{line_chart, share_chart, time_chart, Panel, Series};
use crate::output::write_json;

/// Writes `summary.json`, `report.md`, the SVG charts and the per-second
/// series of every cell of `records`.
pub fn write_results(
    out: &Path,
    s: &ExperimentSummary,
    records: &[RunRecord],
) -> anyhow::Result<()> {
    write_json(&out.join("summary.json"), s)?;
    let series = write_series(out, records)?;
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
    charts.extend(series);
    std::fs::write(out.join("report.md"), report_markdown(s, &charts))?;
    Ok(())
}

/// `series/CONFIG-SCENARIO-LEVEL.csv` (one row per trial and second) and
/// `.svg` (req/s and errors, p50 and p99 latency, a line per trial) for
/// every cell; returns the charts' paths.
fn write_series(out: &Path, records: &[RunRecord]) -> anyhow::Result<Vec<String>> {
    let mut cells: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.report.timeseries.is_empty()) {
        cells
            .entry(format!("{}-{}-{}", r.config, r.scenario, r.level))
            .or_default()
            .push(r);
    }
    if cells.is_empty() {
        return Ok(vec![]);
    }
    let dir = out.join("series");
    std::fs::create_dir_all(&dir)?;
    let mut charts = Vec::new();
    for (name, mut rs) in cells {
        rs.sort_by_key(|r| r.trial);
        let mut csv = csv::Writer::from_path(dir.join(format!("{name}.csv")))?;
        csv.write_record([
            "trial",
            "second",
            "responses",
            "errors",
            "mean_ms",
            "p50_ms",
            "p99_ms",
            "max_ms",
        ])?;
        let mut panels = [
            ("req/s", Vec::new()),
            ("errors/s", Vec::new()),
            ("p50 ms", Vec::new()),
            ("p99 ms", Vec::new()),
        ];
        for r in &rs {
            let t = &r.report.timeseries;
            for x in t {
                csv.serialize((
                    r.trial,
                    x.second,
                    x.responses,
                    x.errors,
                    x.mean_ms,
                    x.p50_ms,
                    x.p99_ms,
                    x.max_ms,
                ))?;
            }
            let line = |f: &dyn Fn(&crate::stats::SecondSummary) -> f64| {
                (
                    format!("trial {}", r.trial + 1),
                    t.iter()
                        .map(|x| (x.second as f64 + 0.5, f(x)))
                        .collect::<Vec<_>>(),
                )
            };
            panels[0].1.push(line(&|x| x.responses as f64));
            panels[1].1.push(line(&|x| x.errors as f64));
            panels[2].1.push(line(&|x| x.p50_ms));
            panels[3].1.push(line(&|x| x.p99_ms));
        }
        csv.flush()?;
        let panels: Vec<Panel> = panels
            .into_iter()
            .map(|(y, lines)| Panel {
                y_label: y.into(),
                lines,
            })
            .collect();
        let file = format!("series/{name}.svg");
        std::fs::write(
            out.join(&file),
            time_chart(&format!("Per second, {name}"), &panels),
        )?;
        charts.push(file);
    }
    Ok(charts)
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

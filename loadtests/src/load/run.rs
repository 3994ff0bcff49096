//! Running with quizload's engine: one prepared configuration
//! ([`execute`]), a whole `quizload run` ([`run`]) and a sweep ([`sweep`]),
//! each returning its report. `run` and `sweep` connect once first
//! ([`preflight`]); an engine error (such as its connect circuit opening)
//! names the URL. Progress goes to stderr unless quiet; the results are the
//! caller's to print or write.

use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::{preflight, prepare, run_config, step, usage, LoadArgs, Prepared, TargetArgs};
use crate::analysis::report::{RunReport, SweepReport, SweepRow};
use crate::generator::engine::{self, RunConfig};
use crate::tools::Tool;

/// Runs one configuration and builds its report.
pub fn execute(cfg: &RunConfig, prepared: &Prepared) -> anyhow::Result<RunReport> {
    let started = SystemTime::now();
    let outcome = engine::run(cfg, prepared.scenario.clone())
        .with_context(|| step(Tool::Quizload, "load", &prepared.url))?;
    Ok(RunReport::new(
        cfg,
        &outcome,
        &prepared.target_label,
        &prepared.scenario_label,
        started,
    ))
}

/// `quizload run` with quizload's engine: prepares the target, configures
/// the run (`rate`: the open model at this rate) and runs it.
pub fn run(
    target: &TargetArgs,
    load: &LoadArgs,
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<RunReport> {
    let prepared = prepare(target, rate.is_some() || load.stages.is_some())?;
    let cfg = run_config(load, prepared.addr, concurrency, rate)?;
    preflight(Tool::Quizload, &prepared.url, prepared.addr, load.timeout)?;
    execute(&cfg, &prepared)
}

/// `quizload sweep`: one run per concurrency (closed model) or per rate
/// (open model, over `concurrency[0]` connections), `pause` apart, against
/// one prepared target (sessions are logged in once for all rows).
pub fn sweep(
    target: &TargetArgs,
    load: &LoadArgs,
    concurrency: &[usize],
    rates: &[f64],
    pause: Duration,
) -> anyhow::Result<SweepReport> {
    let by_rate = !rates.is_empty();
    if by_rate && concurrency.len() > 1 {
        return Err(usage(
            "sweep over either --concurrency or --rate; with --rate give one -c (connections)",
        ));
    }
    if load.stages.is_some() {
        return Err(usage(
            "--stages does not combine with sweep; use --rate LIST",
        ));
    }
    let prepared = prepare(target, by_rate)?;
    preflight(Tool::Quizload, &prepared.url, prepared.addr, load.timeout)?;
    let levels: Vec<(usize, Option<f64>)> = if by_rate {
        rates.iter().map(|r| (concurrency[0], Some(*r))).collect()
    } else {
        concurrency.iter().map(|c| (*c, None)).collect()
    };
    let mut rows = Vec::with_capacity(levels.len());
    for (i, (c, rate)) in levels.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let cfg = run_config(load, prepared.addr, *c, *rate)?;
        if !load.quiet {
            eprintln!(
                "sweep {}/{}: {}",
                i + 1,
                levels.len(),
                match rate {
                    Some(r) => format!("{r} req/s over {c} connections"),
                    None => format!("{c} virtual users"),
                }
            );
        }
        let report = execute(&cfg, &prepared)?;
        rows.push(SweepRow {
            level: rate.unwrap_or(*c as f64),
            rps: report.rps,
            success_rate: report.success_rate,
            latency_ms: report.latency_ms.clone(),
            generator_saturated: report.generator.saturated,
            report,
        });
    }
    let (rps, peak_level) = rows
        .iter()
        .map(|r| (r.rps, r.level))
        .fold((0.0, 0.0), |acc, x| if x.0 > acc.0 { x } else { acc });
    Ok(SweepReport {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        over: if by_rate { "rate" } else { "concurrency" }.into(),
        rps,
        peak_level,
        target: prepared.target_label.clone(),
        scenario: prepared.scenario_label.clone(),
        rows,
    })
}

//! What each subcommand does: call the library with its arguments, print
//! the result's text unless quiet (secrets masked), and write `--json FILE`.
//! Nothing else.

use std::net::SocketAddr;

use anyhow::Context;
use serde::Serialize;

use super::args::{CompareArgs, ExperimentArgs, ImportArgs, RunArgs, SweepArgs, TargetServeArgs};
use crate::analysis::report::{ImportReport, RunReport, SweepReport};
use crate::calibrate::target::TrivialTarget;
use crate::calibrate::{CalibrateArgs, CalibrationReport};
use crate::experiment::{
    compare_folders, run_experiment, terminal_summary, CompareReport, ExperimentSpec,
    ExperimentSummary, RunOptions,
};
use crate::load::{check_thresholds, ThresholdResult};
use crate::output::{mask_secrets, write_json};
use crate::tools::{shell_join, Tool};

/// Prints text on stdout, secrets masked.
fn say(text: &str) {
    print!("{}", mask_secrets(text));
}

/// A run's JSON: the report, with the thresholds' results when any were
/// given.
#[derive(Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    thresholds: &'a [ThresholdResult],
}

/// `quizload run`: whether every threshold held.
pub(super) fn run(a: &RunArgs) -> anyhow::Result<bool> {
    let report = if a.tool.tool == Tool::Quizload {
        let report = crate::load::run(&a.target, &a.load, a.concurrency, a.rate)?;
        if !a.load.quiet {
            say(&report.render());
        }
        report
    } else {
        let (report, figures) =
            crate::load::run_with_tool(&a.tool, &a.target, &a.load, a.concurrency, a.rate)?;
        if !a.load.quiet {
            say(&figures.render());
            say(&figures.totals_line());
        }
        report
    };
    let results = check_thresholds(&a.thresholds, &report);
    let held = results.iter().all(|r| r.passed);
    if !results.is_empty() {
        let lines: Vec<String> = results.iter().map(ThresholdResult::line).collect();
        let text = format!("\nThresholds:\n  {}\n", lines.join("\n  "));
        if a.load.quiet && !held {
            eprint!("{}", mask_secrets(&text));
        } else if !a.load.quiet {
            say(&text);
        }
    }
    if let Some(p) = &a.load.json {
        write_json(
            p,
            &RunJson {
                report: &report,
                thresholds: &results,
            },
        )?;
    }
    Ok(held)
}

/// `quizload sweep`.
pub(super) fn sweep(a: &SweepArgs) -> anyhow::Result<SweepReport> {
    let sweep = crate::load::sweep(&a.target, &a.load, &a.concurrency, &a.rate, a.pause)?;
    if !a.load.quiet {
        say(&format!("\n{} [{}]\n\n", sweep.target, sweep.scenario));
        say(&sweep.render());
        for r in &sweep.rows {
            for w in r
                .report
                .generator
                .saturation_reasons
                .iter()
                .chain(&r.report.warnings)
            {
                say(&format!("  {}: {w}\n", r.level));
            }
        }
    }
    if let Some(p) = &a.load.json {
        write_json(p, &sweep)?;
    }
    Ok(sweep)
}

/// `quizload calibrate`.
pub(super) fn calibrate(a: &CalibrateArgs) -> anyhow::Result<CalibrationReport> {
    let report = crate::calibrate::calibrate(a)?;
    if !a.quiet {
        say(&report.render());
    }
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload experiment`.
pub(super) fn experiment(a: &ExperimentArgs) -> anyhow::Result<ExperimentSummary> {
    let spec = ExperimentSpec::load(&a.file)?;
    crate::experiment::interrupt::install().context("cannot install the signal handlers")?;
    let opts = &RunOptions {
        command: Some(shell_join(
            &std::iter::once("quizload".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>(),
        )),
        ..a.run.clone()
    };
    let (summary, out) = run_experiment(&spec, opts)?;
    if !opts.quiet {
        say(&terminal_summary(
            &summary,
            opts.trials.unwrap_or(spec.trials),
            &out,
        ));
    }
    if let Some(p) = &a.json {
        write_json(p, &summary)?;
    }
    Ok(summary)
}

/// `quizload compare`.
pub(super) fn compare(a: &CompareArgs) -> anyhow::Result<CompareReport> {
    let r = compare_folders(&a.a, &a.b, a.metric)?;
    say(&r.render());
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(r)
}

/// `quizload import`.
pub(super) fn import(a: &ImportArgs) -> anyhow::Result<ImportReport> {
    let report = crate::tools::import_file(a.tool, &a.file, &a.name)?;
    say(&report.render());
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload target`.
pub(super) fn target(a: &TargetServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = a
        .bind
        .parse()
        .with_context(|| format!("--bind {:?} is not an address:port", a.bind))?;
    let t = TrivialTarget::start_on(addr, a.threads)?;
    println!("quizload target: http://{}/", t.addr());
    t.serve_for(a.duration);
    Ok(())
}

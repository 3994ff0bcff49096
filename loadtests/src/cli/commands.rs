//! What each subcommand does: call the library with its arguments, print
//! the result's text unless quiet, and write `--json FILE`. Nothing else.

use std::net::SocketAddr;

use anyhow::Context;

use super::args::{CompareArgs, ExperimentArgs, ImportArgs, RunArgs, SweepArgs, TargetServeArgs};
use crate::analysis::report::{ImportReport, RunReport, SweepReport};
use crate::calibrate::target::TrivialTarget;
use crate::calibrate::{CalibrateArgs, CalibrationReport};
use crate::experiment::{
    compare_folders, run_experiment, terminal_summary, CompareReport, ExperimentSpec,
    ExperimentSummary, RunOptions,
};
use crate::output::write_json;
use crate::tools::Tool;

/// `quizload run`.
pub(super) fn run(a: &RunArgs) -> anyhow::Result<RunReport> {
    let report = if a.tool.tool == Tool::Quizload {
        let report = crate::load::run(&a.target, &a.load, a.concurrency, a.rate)?;
        if !a.load.quiet {
            print!("{}", report.render());
        }
        report
    } else {
        let (report, figures) =
            crate::load::run_with_tool(&a.tool, &a.target, &a.load, a.concurrency, a.rate)?;
        if !a.load.quiet {
            print!("{}", figures.render());
            print!("{}", figures.totals_line());
        }
        report
    };
    if let Some(p) = &a.load.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload sweep`.
pub(super) fn sweep(a: &SweepArgs) -> anyhow::Result<SweepReport> {
    let sweep = crate::load::sweep(&a.target, &a.load, &a.concurrency, &a.rate, a.pause)?;
    if !a.load.quiet {
        println!("\n{} [{}]\n", sweep.target, sweep.scenario);
        print!("{}", sweep.render());
        for r in &sweep.rows {
            for w in r
                .report
                .generator
                .saturation_reasons
                .iter()
                .chain(&r.report.warnings)
            {
                println!("  {}: {w}", r.level);
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
        print!("{}", report.render());
    }
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload experiment`.
pub(super) fn experiment(a: &ExperimentArgs) -> anyhow::Result<ExperimentSummary> {
    let spec = ExperimentSpec::load(&a.file)?;
    let opts = RunOptions {
        tool: a.tool.tool,
        tool_bin: a.tool.tool_bin.clone(),
        locustfile: a.tool.locustfile.clone(),
        server_bin: a.server_bin.clone(),
        target: a.target.clone(),
        config: a.config.clone(),
        trials: a.trials,
        out: a.out.clone(),
        duration: a.duration,
        threads: a.threads,
        no_reset: a.no_reset,
        seed: a.seed,
        workdir: a.workdir.clone(),
        quiet: a.quiet,
        allow_unconfined: a.allow_unconfined,
        resume: a.resume,
        mix_builds: a.mix_builds,
        only: a.only.clone(),
        max_cells: a.max_cells,
    };
    let (summary, out) = run_experiment(&spec, &opts)?;
    if !a.quiet {
        print!(
            "{}",
            terminal_summary(&summary, opts.trials.unwrap_or(spec.trials), &out)
        );
    }
    if let Some(p) = &a.json {
        write_json(p, &summary)?;
    }
    Ok(summary)
}

/// `quizload compare`.
pub(super) fn compare(a: &CompareArgs) -> anyhow::Result<CompareReport> {
    let r = compare_folders(&a.a, &a.b, a.metric)?;
    print!("{}", r.render());
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(r)
}

/// `quizload import`.
pub(super) fn import(a: &ImportArgs) -> anyhow::Result<ImportReport> {
    let report = crate::tools::import_file(a.tool, &a.file, &a.name)?;
    print!("{}", report.render());
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

//! The `quizload` command line: the subcommands and their arguments
//! (clap), each command calling the library, printing its text and writing
//! its result as JSON with `--json FILE` (top-level key `rps`).
//!
//! `args` holds the subcommands' argument structs (the options shared with
//! the library, such as [`crate::load::LoadArgs`], are flattened in from
//! there), `commands` what each subcommand does with them. It must hold no
//! load, statistics, tool or experiment logic of its own: it parses,
//! calls, prints and writes.

mod args;
mod commands;

use clap::{Parser, Subcommand};

pub use args::{CompareArgs, ExperimentArgs, ImportArgs, RunArgs, SweepArgs, TargetServeArgs};

use crate::calibrate::CalibrateArgs;

/// quizload: load generator for quizbench (and any HTTP/1.1 server).
#[derive(Debug, Parser)]
#[command(name = "quizload", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one URL or one quizbench scenario and report latencies, errors
    /// and the generator's own health.
    Run(RunArgs),
    /// Repeat a run over several concurrencies or rates, one row each.
    Sweep(SweepArgs),
    /// Measure the generator's maximum request rate on this machine.
    Calibrate(CalibrateArgs),
    /// Reproduce a document's experiment from loadtests/experiments/: a
    /// matrix of server configurations x load levels, repeated, with
    /// verdicts and confidence intervals.
    Experiment(ExperimentArgs),
    /// Compare two experiment result folders cell by cell.
    Compare(CompareArgs),
    /// Serve the trivial in-process target (200 "ok" to everything) on an
    /// address, e.g. to compare quizload with wrk against the same target.
    Target(TargetServeArgs),
    /// Read a wrk or hey report, or a Locust `--csv` stats file, and print
    /// it in quizload's per-endpoint table (and JSON).
    Import(ImportArgs),
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => commands::run(&a).map(|_| ()),
        Command::Sweep(a) => commands::sweep(&a).map(|_| ()),
        Command::Calibrate(a) => commands::calibrate(&a).map(|_| ()),
        Command::Experiment(a) => commands::experiment(&a).map(|_| ()),
        Command::Compare(a) => commands::compare(&a).map(|_| ()),
        Command::Target(a) => commands::target(&a),
        Command::Import(a) => commands::import(&a).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::generator::engine::{Model, Stop};
    use crate::generator::scenarios::ScenarioKind;
    use crate::load::{parse_header, run_config};

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("quizload").chain(args.iter().copied())).unwrap()
    }

    /// The fixed interface of SPEC section 0 parses.
    #[test]
    fn spec_interface_parses() {
        let Command::Run(r) = parse(&[
            "run",
            "http://127.0.0.1:1/",
            "--concurrency",
            "50",
            "--duration",
            "10s",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(r.concurrency, 50);
        assert_eq!(r.load.duration, Some(Duration::from_secs(10)));
        let Command::Run(r) = parse(&[
            "run",
            "http://x/",
            "-c",
            "5",
            "-n",
            "100",
            "-H",
            "A: b",
            "-H",
            "C: d",
            "-m",
            "POST",
            "--body",
            "{}",
            "--json",
            "/tmp/x.json",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!((r.concurrency, r.load.requests), (5, Some(100)));
        assert_eq!(r.target.headers.len(), 2);
        let Command::Sweep(s) = parse(&[
            "sweep",
            "http://x/",
            "--concurrency",
            "50,100,200",
            "-d",
            "2s",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(s.concurrency, vec![50, 100, 200]);
        let Command::Sweep(s) =
            parse(&["sweep", "http://x/", "--rate", "1000,2000", "-c", "64"]).command
        else {
            panic!()
        };
        assert_eq!(s.rate, vec![1000.0, 2000.0]);
        assert!(
            Cli::try_parse_from(["quizload", "run", "http://x/", "-n", "5", "-d", "1s"]).is_err()
        );
        let Command::Run(r) = parse(&[
            "run",
            "--scenario",
            "journey",
            "--base",
            "http://127.0.0.1:8000",
            "--think",
            "1s..3s",
            "--spawn-rate",
            "10",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(r.target.scenario, Some(ScenarioKind::Journey));
        assert_eq!(r.load.spawn_rate, Some(10.0));
    }

    #[test]
    fn configs() {
        let Command::Run(r) =
            parse(&["run", "http://127.0.0.1:9/", "--rate", "100", "-d", "2s"]).command
        else {
            panic!()
        };
        let cfg = run_config(&r.load, "127.0.0.1:9".parse().unwrap(), 10, r.rate).unwrap();
        assert!(matches!(cfg.model, Model::Open { .. }));
        assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(2)));
        let Command::Run(r) =
            parse(&["run", "http://127.0.0.1:9/", "--stages", "1s@10,2s@20"]).command
        else {
            panic!()
        };
        let cfg = run_config(&r.load, "127.0.0.1:9".parse().unwrap(), 10, None).unwrap();
        assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(3)));
        let Command::Run(r) = parse(&["run", "http://127.0.0.1:9/"]).command else {
            panic!()
        };
        let cfg = run_config(&r.load, "127.0.0.1:9".parse().unwrap(), 10, None).unwrap();
        assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(10)));
        assert!(run_config(&r.load, "127.0.0.1:9".parse().unwrap(), 0, None).is_err());
        assert!(parse_header("NoColon").is_err());
        assert_eq!(
            parse_header("X-A:  b ").unwrap(),
            ("X-A".into(), "b".into())
        );
    }
}

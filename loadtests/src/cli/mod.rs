//! The `quizload` command line: the subcommands and their arguments
//! (clap), each command calling the library, printing its text and writing
//! its result as JSON with `--json FILE` (top-level key `rps`).
//!
//! `args` holds the subcommands' argument structs (the options shared with
//! the library, such as [`crate::load::LoadArgs`], are flattened in from
//! there), `commands` what each subcommand does with them. It must hold no
//! load, statistics, tool or experiment logic of its own: it parses,
//! calls, prints and writes. Everything it prints or writes goes through
//! [`mask_secrets`]; it exits with one of the [`exit`] statuses.

mod args;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use args::{CompareArgs, ExperimentArgs, ImportArgs, RunArgs, SweepArgs, TargetServeArgs};

use crate::calibrate::CalibrateArgs;
use crate::experiment::interrupt::Interrupted;
use crate::load::UsageError;
use crate::output::mask_secrets;

/// quizload's exit statuses.
pub mod exit {
    /// The command did what it was asked; a run's thresholds (if any) held.
    /// Failed requests alone do not change it: give `--threshold
    /// errors<...` for that.
    pub const OK: u8 = 0;
    /// An error: the run could not be made or finished (the target refused
    /// or could not be reached, a login failed, a tool failed or is
    /// missing, a file could not be read or written).
    pub const ERROR: u8 = 1;
    /// Bad usage: an unknown option, a bad value (a threshold's syntax
    /// among them), options that do not go together (clap's status too).
    pub const USAGE: u8 = 2;
    /// The run finished, and at least one `--threshold` was broken (k6's
    /// status for the same).
    pub const THRESHOLDS: u8 = 99;
    // `quizload experiment` stopped by SIGINT or SIGTERM between cells
    // exits 128 + the signal (130, 143), as a shell reports a process the
    // signal ended; its runs so far are kept for `--resume`.
}

/// The exit statuses, as the help shows them.
const EXIT_HELP: &str = "Exit status:
  0   done; every --threshold held (failed requests alone do not change it)
  1   error: the run could not be made or finished (target refused or
      unreachable, login failed, tool failed or missing, file not written)
  2   bad usage: unknown option, bad value or threshold syntax, options
      that do not go together
  99  the run finished and at least one --threshold was broken
  130, 143  experiment stopped by SIGINT or SIGTERM after the cell in
      progress (a second signal: at once); rerun with --resume";

/// quizload: load generator for quizbench (and any HTTP/1.1 server).
#[derive(Debug, Parser)]
#[command(name = "quizload", version, about, long_about = None, after_help = EXIT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one URL or one quizbench scenario and report latencies, errors
    /// and the generator's own health.
    #[command(after_help = EXIT_HELP)]
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

/// Runs the parsed command line: its exit status (see [`exit`]). An error
/// is printed on stderr, on one line, secrets masked.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => {
            commands::run(&a).map(|held| if held { exit::OK } else { exit::THRESHOLDS })
        }
        Command::Sweep(a) => commands::sweep(&a).map(|_| exit::OK),
        Command::Calibrate(a) => commands::calibrate(&a).map(|_| exit::OK),
        Command::Experiment(a) => commands::experiment(&a).map(|_| exit::OK),
        Command::Compare(a) => commands::compare(&a).map(|_| exit::OK),
        Command::Target(a) => commands::target(&a).map(|_| exit::OK),
        Command::Import(a) => commands::import(&a).map(|_| exit::OK),
    };
    ExitCode::from(match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", mask_secrets(&format!("{e:#}")));
            if let Some(i) = e.chain().find_map(|c| c.downcast_ref::<Interrupted>()) {
                i.exit_status()
            } else if e.chain().any(|c| c.is::<UsageError>()) {
                exit::USAGE
            } else {
                exit::ERROR
            }
        }
    })
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

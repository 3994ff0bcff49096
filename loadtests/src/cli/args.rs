//! The subcommands' arguments. The options a run is made of are the
//! library's ([`crate::load`]'s target, load and tool options,
//! [`crate::calibrate::CalibrateArgs`], the experiment runner's
//! [`RunOptions`]), flattened in; what is here is what only the command
//! line has: positional files and `--json` of the commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::experiment::{Metric, RunOptions};
use crate::load::{LoadArgs, TargetArgs, Threshold, ToolArgs};
use crate::tools::ImportTool;
use crate::units::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The tool that wrote the file.
    #[arg(value_enum)]
    pub tool: ImportTool,
    /// Its output (wrk/hey: the text report; locust: PREFIX_stats.csv).
    pub file: PathBuf,
    /// Endpoint name for the single-URL tools.
    #[arg(long, default_value = "imported")]
    pub name: String,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment file (loadtests/experiments/*.toml).
    pub file: PathBuf,
    #[command(flatten)]
    pub run: RunOptions,
    /// Also write the summary here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Baseline results folder.
    pub a: PathBuf,
    /// Candidate results folder.
    pub b: PathBuf,
    /// Metric (default: the experiment's): mean, p50, p95, p99, max, rps.
    #[arg(long, value_parser = parse_metric)]
    pub metric: Option<Metric>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_metric(s: &str) -> anyhow::Result<Metric> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| anyhow::anyhow!("unknown metric {s:?}: mean, p50, p95, p99, max or rps"))
}

#[derive(Debug, Clone, Args)]
pub struct TargetServeArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0", env = "BIND")]
    pub bind: String,
    /// Target threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop after this long (default: run until killed).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub tool: ToolArgs,
    /// Virtual users (closed model) or connections (open model).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub concurrency: usize,
    /// Open model: total arrival rate in requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A pass/fail criterion on the run's figures (repeatable), e.g.
    /// `p99<10ms`, `errors<0.1%`, `rps>1000`: METRIC is p50, p90, p95,
    /// p99, p99.9, mean, min, max (with a unit: us, ms, s), rps, or errors
    /// (a count, or a percentage with %); OP is <, <=, > or >=. When one
    /// is broken, quizload exits with status 99.
    #[arg(long = "threshold", value_name = "CRITERION", value_parser = parse_threshold)]
    pub thresholds: Vec<Threshold>,
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrencies to sweep (`50,100,200`); with --rate, the connection
    /// pool of every row (one value).
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "50")]
    pub concurrency: Vec<usize>,
    /// Rates to sweep (`1000,2000`), open model.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// Pause between rows.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub pause: Duration,
}

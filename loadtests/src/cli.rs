//! The `quizload` command line: argument definitions (clap) and the
//! subcommands `run`, `sweep` and `calibrate`, each printing a human summary
//! and writing its result as JSON with `--json FILE` (top-level key `rps`).
//!
//! This module turns arguments into an engine [`RunConfig`] and a scenario,
//! runs it, and hands the outcome to [`crate::report`]; it holds no load or
//! statistics logic of its own.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::analysis::report::{RunReport, SweepReport, SweepRow};
use crate::analysis::tables::text_table;
use crate::generator::engine::{self, Model, RunConfig, Stop};
use crate::generator::http::{HttpUrl, RequestBuilder};
use crate::generator::scenarios::{
    AuthMode, FixedRequest, JourneyWeights, Quizbench, QuizbenchOptions, ScenarioFactory,
    ScenarioKind,
};
use crate::generator::schedule::{parse_stages, Arrival, Stage};
use crate::generator::sysmon::available_cpus;
use crate::target::TrivialTarget;
use crate::units::{parse_duration, parse_duration_range};

/// Default server address of quizbench (`BIND`'s default).
pub const DEFAULT_BASE: &str = "http://127.0.0.1:8000";

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

pub use crate::tools::ImportTool;

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

/// Result of `quizload import` (also of `run --tool`'s table).
pub use crate::analysis::report::ImportReport;

#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment file (loadtests/experiments/*.toml).
    pub file: PathBuf,
    /// Release server binary to start per configuration.
    #[arg(long, env = "QUIZBENCH_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Drive an already running server instead (with --config).
    #[arg(long, conflicts_with = "server_bin")]
    pub target: Option<String>,
    /// Run only this configuration (required with --target).
    #[arg(long)]
    pub config: Option<String>,
    /// Trials per cell (default: the file's).
    #[arg(long)]
    pub trials: Option<usize>,
    /// Override each run's duration (for quick runs).
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Results folder (default results/ID-UNIXTIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Generator worker threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not reset the data set before each server start.
    #[arg(long)]
    pub no_reset: bool,
    /// Seed of the run order and the VUs' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Working directory of the server (where config/ lives).
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// Also write the summary here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub tool: ToolArgs,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Baseline results folder.
    pub a: PathBuf,
    /// Candidate results folder.
    pub b: PathBuf,
    /// Metric (default: the experiment's): mean, p50, p95, p99, max, rps.
    #[arg(long, value_parser = parse_metric)]
    pub metric: Option<crate::experiment::Metric>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_metric(s: &str) -> anyhow::Result<crate::experiment::Metric> {
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

/// What to send.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// URL to request (a single fixed request, like hey/wrk). With
    /// --scenario it is taken as the base URL.
    pub url: Option<String>,
    /// A quizbench scenario instead of a fixed URL.
    #[arg(long, value_enum)]
    pub scenario: Option<ScenarioKind>,
    /// Base URL of the quizbench server for --scenario.
    #[arg(long)]
    pub base: Option<String>,
    /// HTTP method of the fixed request.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body of the fixed request.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the fixed request's body from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// How scenarios present the session: cookie or bearer token.
    #[arg(long, value_enum, default_value = "cookie")]
    pub auth: AuthMode,
    /// Journey think time between tasks: `1s..3s` (uniform) or `2s`.
    #[arg(long, default_value = "1s..3s")]
    pub think: String,
    /// Journey task weights, e.g. `user=2,progress=2,quizzes=4,quiz=4,attempts=2,submit=1`.
    #[arg(long)]
    pub weights: Option<String>,
    /// Asset path of the `static` scenario.
    #[arg(long, default_value = "/static/style.css")]
    pub static_path: String,
    /// First student number offset (VU i logs in as student (i+offset)%10000+1).
    #[arg(long, default_value_t = 0)]
    pub student_offset: usize,
}

/// How long and how hard.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Duration of the measured phase (`10s`, `2m`, `500ms`). Default 10s
    /// unless --requests is given.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Total number of requests instead of a duration (like hey -n).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Worker threads (default: one per available CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Per-request timeout: connect, send and the full response.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Closed model: start the virtual users evenly over this long.
    #[arg(long, value_parser = parse_duration)]
    pub ramp: Option<Duration>,
    /// Closed model: start this many virtual users per second (Locust's
    /// spawn rate).
    #[arg(long)]
    pub spawn_rate: Option<f64>,
    /// Open model arrival process.
    #[arg(long, value_enum, default_value = "uniform")]
    pub arrival: Arrival,
    /// Open model: drop a request that is this late when a connection frees up.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub max_lag: Duration,
    /// Open model with staged rates: `10s@100,10s@500` (sets the duration).
    #[arg(long, conflicts_with_all = ["duration", "requests"])]
    pub stages: Option<String>,
    /// Seed of the random choices (think time, tasks, Poisson gaps).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Which tool sends the load.
#[derive(Debug, Clone, Args)]
pub struct ToolArgs {
    /// Send the load with an external tool instead of quizload's engine and
    /// read its figures into the same tables: wrk or hey (one request, with
    /// a session cookie for scenarios that need one) or locust (the journey
    /// of locustfile.py).
    #[arg(long, value_enum, default_value = "quizload")]
    pub tool: crate::tools::Tool,
    /// The tool's executable (default: its name on PATH).
    #[arg(long)]
    pub tool_bin: Option<PathBuf>,
    /// Locust's locustfile (default: loadtests/locustfile.py).
    #[arg(long)]
    pub locustfile: Option<PathBuf>,
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

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Calibrate against this URL instead of the in-process trivial target.
    #[arg(long)]
    pub url: Option<String>,
    /// Concurrencies to try; the best one is the generator's maximum.
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "16,64,256")]
    pub concurrency: Vec<usize>,
    /// Duration of each try.
    #[arg(short = 'd', long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Generator worker threads (default: one per available CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads of the in-process target.
    #[arg(long, default_value_t = 1)]
    pub target_threads: usize,
    /// Also run wrk and quizload alternately against the same target with
    /// the same connections and threads (the first -c value) and report the
    /// median throughput ratio.
    #[arg(long)]
    pub vs_wrk: bool,
    /// Alternating trials of each tool for --vs-wrk.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => cmd_run(&a).map(|_| ()),
        Command::Sweep(a) => cmd_sweep(&a).map(|_| ()),
        Command::Calibrate(a) => cmd_calibrate(&a).map(|_| ()),
        Command::Experiment(a) => cmd_experiment(&a).map(|_| ()),
        Command::Compare(a) => cmd_compare(&a).map(|_| ()),
        Command::Target(a) => cmd_target(&a),
        Command::Import(a) => cmd_import(&a).map(|_| ()),
    }
}

/// A prepared target: where to connect, what to send, how to label it.
pub struct Prepared {
    pub addr: SocketAddr,
    pub scenario: Arc<dyn ScenarioFactory>,
    pub target_label: String,
    pub scenario_label: String,
    /// Journey in the closed model logs in as part of the measured phase.
    pub kind: Option<ScenarioKind>,
}

fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = h
        .split_once(':')
        .with_context(|| format!("header {h:?} is not `Name: value`"))?;
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        bail!("bad header name in {h:?}");
    }
    Ok((k.to_string(), v.trim().to_string()))
}

fn resolve(url: &HttpUrl) -> anyhow::Result<SocketAddr> {
    url.resolve_blocking()
}

/// Builds the scenario and address from target arguments; `open` tells
/// whether the run uses the open model (the journey then logs in during
/// setup instead of in the measured phase).
pub fn prepare(t: &TargetArgs, open: bool) -> anyhow::Result<Prepared> {
    let headers = t
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    match t.scenario {
        None => {
            let Some(url) = &t.url else {
                bail!("give a URL to load, or --scenario NAME (with --base URL)");
            };
            let url = HttpUrl::parse(url)?;
            let body = match (&t.body, &t.body_file) {
                (Some(b), _) => b.clone().into_bytes(),
                (None, Some(f)) => std::fs::read(f)
                    .with_context(|| format!("cannot read body file {}", f.display()))?,
                _ => Vec::new(),
            };
            let builder = RequestBuilder::new(url.host_header.clone(), headers);
            let fixed = FixedRequest::new(&builder, &t.method, &url.path, &body);
            Ok(Prepared {
                addr: resolve(&url)?,
                scenario: Arc::new(fixed),
                target_label: format!(
                    "{} http://{}{}",
                    t.method.to_uppercase(),
                    url.host_header,
                    url.path
                ),
                scenario_label: "url".into(),
                kind: None,
            })
        }
        Some(kind) => {
            if t.body.is_some() || t.body_file.is_some() {
                bail!("--body/--body-file apply to a fixed URL, not to --scenario");
            }
            let base = t
                .base
                .clone()
                .or_else(|| t.url.clone())
                .unwrap_or_else(|| DEFAULT_BASE.to_string());
            let url = HttpUrl::parse(&base)?;
            let builder = RequestBuilder::new(url.host_header.clone(), headers);
            let weights = match &t.weights {
                Some(w) => JourneyWeights::parse(w)?,
                None => JourneyWeights::default(),
            };
            let opts = QuizbenchOptions {
                kind,
                auth: t.auth,
                think: parse_duration_range(&t.think)?,
                weights,
                static_path: t.static_path.clone(),
                measured_login: !open,
                student_offset: t.student_offset,
            };
            let label = serde_json::to_value(kind)?
                .as_str()
                .unwrap_or("scenario")
                .to_string();
            Ok(Prepared {
                addr: resolve(&url)?,
                scenario: Arc::new(Quizbench::new(opts, builder)),
                target_label: format!("http://{}", url.host_header),
                scenario_label: label,
                kind: Some(kind),
            })
        }
    }
}

/// Builds the engine configuration for one run.
pub fn run_config(
    load: &LoadArgs,
    addr: SocketAddr,
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<RunConfig> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let stages: Option<Vec<Stage>> = match (&load.stages, rate) {
        (Some(_), Some(_)) => bail!("give either --rate or --stages, not both"),
        (Some(s), None) => Some(parse_stages(s)?),
        (None, Some(r)) => {
            if !(r > 0.0 && r.is_finite()) {
                bail!("--rate must be a positive number");
            }
            Some(vec![Stage {
                seconds: f64::INFINITY,
                rate: r,
            }])
        }
        (None, None) => None,
    };
    let stop = match (load.requests, load.duration, &stages) {
        (Some(0), _, _) => bail!("--requests must be at least 1"),
        (Some(n), _, _) => Stop::Requests(n),
        (None, Some(d), _) => Stop::Duration(d),
        (None, None, Some(st)) if st.iter().all(|s| s.seconds.is_finite()) => {
            Stop::Duration(Duration::from_secs_f64(st.iter().map(|s| s.seconds).sum()))
        }
        (None, None, _) => Stop::Duration(Duration::from_secs(10)),
    };
    if let Stop::Duration(d) = stop {
        if d.is_zero() {
            bail!("--duration must be positive");
        }
    }
    let model = match stages {
        Some(stages) => {
            if load.ramp.is_some() || load.spawn_rate.is_some() {
                bail!("--ramp/--spawn-rate apply to the closed model, not with --rate/--stages");
            }
            Model::Open {
                stages,
                arrival: load.arrival,
                max_lag: load.max_lag,
            }
        }
        None => {
            if let Some(r) = load.spawn_rate {
                if !(r > 0.0 && r.is_finite()) {
                    bail!("--spawn-rate must be a positive number");
                }
            }
            Model::Closed {
                ramp: load.ramp.unwrap_or(Duration::ZERO),
                spawn_rate: load.spawn_rate,
            }
        }
    };
    Ok(RunConfig {
        addr,
        threads: load.threads.unwrap_or_else(available_cpus).max(1),
        concurrency,
        stop,
        model,
        timeout: load.timeout,
        seed: load.seed,
        progress: if !load.quiet && std::io::stderr().is_terminal() {
            engine::Progress::Line
        } else {
            engine::Progress::Off
        },
    })
}

/// Runs one configuration and builds its report.
pub fn execute(cfg: &RunConfig, prepared: &Prepared) -> anyhow::Result<RunReport> {
    let started = SystemTime::now();
    let outcome = engine::run(cfg, prepared.scenario.clone())?;
    Ok(RunReport::new(
        cfg,
        &outcome,
        &prepared.target_label,
        &prepared.scenario_label,
        started,
    ))
}

/// Writes any serialisable result as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// `quizload run`.
pub fn cmd_run(a: &RunArgs) -> anyhow::Result<RunReport> {
    if a.tool.tool != crate::tools::Tool::Quizload {
        return cmd_run_tool(a);
    }
    let prepared = prepare(&a.target, a.rate.is_some() || a.load.stages.is_some())?;
    let cfg = run_config(&a.load, prepared.addr, a.concurrency, a.rate)?;
    let report = execute(&cfg, &prepared)?;
    if !a.load.quiet {
        print!("{}", report.render());
    }
    if let Some(p) = &a.load.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// What an external tool is to run, from `run`'s target and load options
/// (`open`: the open model was asked for, which no adapter has).
pub fn tool_run_from_args(
    tool: &ToolArgs,
    target: &TargetArgs,
    load: &LoadArgs,
    concurrency: usize,
    open: bool,
) -> anyhow::Result<crate::tools::ToolRun> {
    use crate::tools::locust::default_locustfile;
    use crate::tools::quizbench::{login_session, scenario_call};
    use crate::tools::{tool_program, FixedCall, Tool, ToolLoad, ToolRun};
    if open {
        bail!(
            "--rate/--stages (the open model) run with quizload only: wrk and hey are closed-loop (hey's -q is per worker), Locust too"
        );
    }
    if load.ramp.is_some() {
        bail!("--ramp runs with quizload only (use --spawn-rate with locust)");
    }
    if load.spawn_rate.is_some() && tool.tool != Tool::Locust {
        bail!(
            "--spawn-rate applies to locust (and quizload), not to {}",
            tool.tool.name()
        );
    }
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let stop = match (load.requests, load.duration) {
        (Some(n), _) => crate::generator::engine::Stop::Requests(n),
        (None, Some(d)) => crate::generator::engine::Stop::Duration(d),
        (None, None) => crate::generator::engine::Stop::Duration(Duration::from_secs(10)),
    };
    let headers = target
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let load_kind = match (tool.tool, target.scenario) {
        (Tool::Locust, Some(ScenarioKind::Journey)) => {
            if !headers.is_empty() || target.weights.is_some() {
                bail!("-H and --weights do not reach locustfile.py; edit it instead");
            }
            ToolLoad::Journey {
                host: target
                    .base
                    .clone()
                    .or_else(|| target.url.clone())
                    .unwrap_or_else(|| DEFAULT_BASE.to_string()),
                locustfile: tool
                    .locustfile
                    .clone()
                    .unwrap_or_else(|| default_locustfile(Path::new("."))),
                think: parse_duration_range(&target.think)?,
            }
        }
        (Tool::Locust, _) => bail!(
            "locust runs the journey of locustfile.py: give --scenario journey (use hey or wrk for a single request)"
        ),
        (_, Some(kind)) => {
            let base = target
                .base
                .clone()
                .or_else(|| target.url.clone())
                .unwrap_or_else(|| DEFAULT_BASE.to_string());
            let session = if kind.needs_session() {
                let url = HttpUrl::parse(&base)?;
                Some(login_session(resolve(&url)?, target.student_offset % crate::generator::scenarios::SEEDED_STUDENTS + 1)?)
            } else {
                None
            };
            let mut call = scenario_call(kind, &base, session.as_deref(), target.auth, &target.static_path)?;
            call.headers.extend(headers);
            ToolLoad::Fixed(call)
        }
        (_, None) => {
            let Some(url) = &target.url else {
                bail!("give a URL to load, or --scenario NAME (with --base URL)");
            };
            let parsed = HttpUrl::parse(url)?;
            let body = match (&target.body, &target.body_file) {
                (Some(b), _) => b.clone().into_bytes(),
                (None, Some(f)) => std::fs::read(f)
                    .with_context(|| format!("cannot read body file {}", f.display()))?,
                _ => Vec::new(),
            };
            ToolLoad::Fixed(FixedCall {
                method: target.method.to_uppercase(),
                url: url.clone(),
                headers,
                body,
                name: format!("{} {}", target.method.to_uppercase(), parsed.path),
            })
        }
    };
    Ok(ToolRun {
        tool: tool.tool,
        program: tool_program(tool.tool, tool.tool_bin.as_deref()),
        load: load_kind,
        concurrency,
        stop,
        threads: load.threads.unwrap_or_else(available_cpus).max(1),
        timeout: load.timeout,
        spawn_rate: load.spawn_rate,
    })
}

/// `quizload run --tool wrk|hey|locust`: the tool's run in the same tables;
/// the JSON is a run report (`tool` names the tool) like quizload's own.
fn cmd_run_tool(a: &RunArgs) -> anyhow::Result<RunReport> {
    let open = a.rate.is_some() || a.load.stages.is_some();
    let run = tool_run_from_args(&a.tool, &a.target, &a.load, a.concurrency, open)?;
    let started = SystemTime::now();
    if !a.load.quiet {
        eprintln!("running {}", crate::tools::command_preview(&run)?);
    }
    let out = crate::tools::run_tool(&run)?;
    let target = match &run.load {
        crate::tools::ToolLoad::Fixed(c) => c.url.clone(),
        crate::tools::ToolLoad::Journey { host, .. } => host.clone(),
    };
    let scenario = a
        .target
        .scenario
        .map(|k| {
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "url".into());
    let cfg = RunConfig {
        addr: "127.0.0.1:0".parse().expect("address"),
        threads: run.threads,
        concurrency: run.concurrency,
        stop: run.stop,
        model: Model::Closed {
            ramp: Duration::ZERO,
            spawn_rate: run.spawn_rate,
        },
        timeout: run.timeout,
        seed: a.load.seed,
        progress: engine::Progress::Off,
    };
    let report = RunReport::from_tool(&cfg, &out.report, &target, &scenario, started, out.elapsed);
    if !a.load.quiet {
        print!("{}", out.report.render());
        print!("{}", out.report.totals_line());
    }
    if let Some(p) = &a.load.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload sweep`.
pub fn cmd_sweep(a: &SweepArgs) -> anyhow::Result<SweepReport> {
    let by_rate = !a.rate.is_empty();
    if by_rate && a.concurrency.len() > 1 {
        bail!("sweep over either --concurrency or --rate; with --rate give one -c (connections)");
    }
    if a.load.stages.is_some() {
        bail!("--stages does not combine with sweep; use --rate LIST");
    }
    let prepared = prepare(&a.target, by_rate)?;
    let levels: Vec<(usize, Option<f64>)> = if by_rate {
        a.rate
            .iter()
            .map(|r| (a.concurrency[0], Some(*r)))
            .collect()
    } else {
        a.concurrency.iter().map(|c| (*c, None)).collect()
    };
    let mut rows = Vec::with_capacity(levels.len());
    for (i, (c, rate)) in levels.iter().enumerate() {
        if i > 0 && !a.pause.is_zero() {
            std::thread::sleep(a.pause);
        }
        let cfg = run_config(&a.load, prepared.addr, *c, *rate)?;
        if !a.load.quiet {
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
    let sweep = SweepReport {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        over: if by_rate { "rate" } else { "concurrency" }.into(),
        rps,
        peak_level,
        target: prepared.target_label.clone(),
        scenario: prepared.scenario_label.clone(),
        rows,
    };
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

/// One try of a calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTry {
    pub concurrency: usize,
    pub rps: f64,
    pub generator_cores_used: f64,
    /// Requests per second per core of generator CPU time.
    pub rps_per_generator_core: f64,
    pub machine_cpu_busy: Option<f64>,
    pub generator_saturated: bool,
    pub success_rate: f64,
    pub latency_p99_ms: f64,
}

/// Result of `quizload calibrate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub tool: String,
    pub version: String,
    /// The highest request rate reached (the generator's measured maximum
    /// against this target on this machine).
    pub rps: f64,
    /// Concurrency of the best try.
    pub best_concurrency: usize,
    /// Efficiency at the best try: requests per generator CPU-second.
    pub rps_per_generator_core: f64,
    /// The generator's ceiling if it had every CPU to itself:
    /// `rps_per_generator_core × cpus` (an extrapolation, labelled so).
    pub extrapolated_rps_all_cpus: f64,
    pub cpus: usize,
    pub threads: usize,
    /// `in-process` or the URL given.
    pub target: String,
    pub tries: Vec<CalibrationTry>,
    /// `--vs-wrk`: alternating trials against wrk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_wrk: Option<WrkComparison>,
}

/// quizload vs wrk on the same target, same connections and threads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrkComparison {
    pub connections: usize,
    pub threads: usize,
    pub seconds: f64,
    /// Per trial, in the order run (they alternate which tool goes first).
    pub wrk_rps: Vec<f64>,
    pub quizload_rps: Vec<f64>,
    pub wrk_median: f64,
    pub quizload_median: f64,
    /// The median of the per-trial ratios `quizload / wrk`: each compares
    /// two runs made back to back, so drift of a shared machine between
    /// trials cancels out (the ratio of the two medians does not).
    pub ratio: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The median of `num[i] / den[i]` over paired trials (0 for a zero
/// denominator).
fn median_of_ratios(num: &[f64], den: &[f64]) -> f64 {
    let ratios: Vec<f64> = num
        .iter()
        .zip(den)
        .map(|(n, d)| if *d > 0.0 { n / d } else { 0.0 })
        .collect();
    median(&ratios)
}

/// `quizload calibrate`.
pub fn cmd_calibrate(a: &CalibrateArgs) -> anyhow::Result<CalibrationReport> {
    if a.concurrency.is_empty() || a.concurrency.contains(&0) {
        bail!("--concurrency needs positive values");
    }
    let (_server, url, label) = match &a.url {
        Some(u) => (None, u.clone(), u.clone()),
        None => {
            let s = TrivialTarget::start(a.target_threads)?;
            let u = format!("http://{}/", s.addr());
            (Some(s), u, "in-process".to_string())
        }
    };
    let target = TargetArgs {
        url: Some(url),
        scenario: None,
        base: None,
        method: "GET".into(),
        headers: vec![],
        body: None,
        body_file: None,
        auth: AuthMode::Cookie,
        think: "0s".into(),
        weights: None,
        static_path: String::new(),
        student_offset: 0,
    };
    let prepared = prepare(&target, false)?;
    let load = LoadArgs {
        duration: Some(a.duration),
        requests: None,
        threads: a.threads,
        timeout: Duration::from_secs(10),
        ramp: None,
        spawn_rate: None,
        arrival: Arrival::Uniform,
        max_lag: Duration::from_secs(1),
        stages: None,
        seed: 1,
        json: None,
        quiet: a.quiet,
    };
    let mut tries = Vec::new();
    let mut threads = 0;
    for &c in &a.concurrency {
        let cfg = run_config(&load, prepared.addr, c, None)?;
        threads = cfg.effective_threads();
        if !a.quiet {
            eprintln!("calibrate: {c} connections for {:?}", a.duration);
        }
        let r = execute(&cfg, &prepared)?;
        let cores = r.generator.cpu_cores_used;
        tries.push(CalibrationTry {
            concurrency: c,
            rps: r.rps,
            generator_cores_used: cores,
            rps_per_generator_core: if cores > 0.0 { r.rps / cores } else { 0.0 },
            machine_cpu_busy: r.generator.machine_cpu_busy,
            generator_saturated: r.generator.saturated,
            success_rate: r.success_rate,
            latency_p99_ms: r.latency_ms.p99,
        });
    }
    let best = tries
        .iter()
        .max_by(|x, y| x.rps.total_cmp(&y.rps))
        .cloned()
        .expect("at least one try");
    let cpus = available_cpus();
    let vs_wrk = if a.vs_wrk {
        let c = a.concurrency[0];
        let cfg = run_config(&load, prepared.addr, c, None)?;
        let threads = cfg.effective_threads();
        let url = target.url.clone().expect("calibration URL");
        let (mut w, mut q) = (Vec::new(), Vec::new());
        for i in 0..a.trials.max(1) {
            // alternate which tool goes first
            for tool in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
                if tool == 0 {
                    w.push(crate::tools::wrk::run_wrk(&url, c, threads, a.duration)?.rps);
                } else {
                    q.push(execute(&cfg, &prepared)?.rps);
                }
            }
            if !a.quiet {
                eprintln!(
                    "vs wrk, trial {}: wrk {:.0} req/s, quizload {:.0} req/s",
                    i + 1,
                    w[i],
                    q[i]
                );
            }
        }
        let (wm, qm, ratio) = (median(&w), median(&q), median_of_ratios(&q, &w));
        Some(WrkComparison {
            connections: c,
            threads,
            seconds: a.duration.as_secs_f64(),
            wrk_rps: w,
            quizload_rps: q,
            wrk_median: wm,
            quizload_median: qm,
            ratio,
        })
    } else {
        None
    };
    let report = CalibrationReport {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        rps: best.rps,
        best_concurrency: best.concurrency,
        rps_per_generator_core: best.rps_per_generator_core,
        extrapolated_rps_all_cpus: best.rps_per_generator_core * cpus as f64,
        cpus,
        threads,
        target: label,
        tries,
        vs_wrk,
    };
    if !a.quiet {
        let mut rows = vec![vec![
            "Connections".to_string(),
            "Requests/Second".into(),
            "Generator cores".into(),
            "req/s per core".into(),
            "Machine busy".into(),
            "p99".into(),
            "Success".into(),
        ]];
        for t in &report.tries {
            rows.push(vec![
                t.concurrency.to_string(),
                format!("{:.0}", t.rps),
                format!("{:.2}", t.generator_cores_used),
                format!("{:.0}", t.rps_per_generator_core),
                t.machine_cpu_busy
                    .map(|b| format!("{:.0}%", b * 100.0))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.2}ms", t.latency_p99_ms),
                format!("{:.1}%", t.success_rate),
            ]);
        }
        println!(
            "\nCalibration against {} ({} CPUs, {} generator threads):",
            report.target, cpus, threads
        );
        print!("{}", text_table(&rows));
        println!(
            "\nMaximum measured: {:.0} req/s at {} connections ({:.0} req/s per generator core; about {:.0} req/s if the generator had all {} CPUs to itself).",
            report.rps,
            report.best_concurrency,
            report.rps_per_generator_core,
            report.extrapolated_rps_all_cpus,
            cpus
        );
    }
    if let (Some(v), false) = (&report.vs_wrk, a.quiet) {
        println!(
            "\nvs wrk ({} connections, {} threads, {} trials of {:.0} s, alternating): wrk median {:.0} req/s, quizload median {:.0} req/s, median of per-trial ratios {:.3}",
            v.connections,
            v.threads,
            v.wrk_rps.len(),
            v.seconds,
            v.wrk_median,
            v.quizload_median,
            v.ratio
        );
    }
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload experiment`.
pub fn cmd_experiment(a: &ExperimentArgs) -> anyhow::Result<crate::experiment::ExperimentSummary> {
    use crate::experiment::{
        render_resources, render_tables, run_experiment, ExperimentSpec, RunOptions,
    };
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
    };
    let (summary, out) = run_experiment(&spec, &opts)?;
    if !a.quiet {
        println!(
            "\n# {} {}\n\nClaim: {}\nargon2: {}",
            spec.id, spec.title, spec.claim, spec.argon2
        );
        print!("{}", render_tables(&summary));
        println!(
            "\nVerdicts (95% CI over {} trials per cell):",
            opts.trials.unwrap_or(spec.trials)
        );
        if summary.verdicts.is_empty() {
            println!("  (one configuration: nothing to compare; use `quizload compare`)");
        }
        for v in &summary.verdicts {
            println!("  {} [{}]", v.text, v.scenario);
        }
        println!("\nResource cost:\n{}", render_resources(&summary));
        println!("Results: {}", out.display());
    }
    if let Some(p) = &a.json {
        write_json(p, &summary)?;
    }
    Ok(summary)
}

/// `quizload compare`.
pub fn cmd_compare(a: &CompareArgs) -> anyhow::Result<crate::experiment::CompareReport> {
    let r = crate::experiment::compare_folders(&a.a, &a.b, a.metric)?;
    println!("{} vs {} ({}):", a.b.display(), a.a.display(), r.metric);
    for v in &r.verdicts {
        println!("  {}", v.text);
    }
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(r)
}

/// `quizload import`.
pub fn cmd_import(a: &ImportArgs) -> anyhow::Result<ImportReport> {
    let report = crate::tools::import_file(a.tool, &a.file, &a.name)?;
    print!("{}", report.render());
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    Ok(report)
}

/// `quizload target`.
pub fn cmd_target(a: &TargetServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = a
        .bind
        .parse()
        .with_context(|| format!("--bind {:?} is not an address:port", a.bind))?;
    if !addr.ip().is_loopback() {
        bail!("the trivial target listens on loopback addresses only");
    }
    let t = TrivialTarget::start_on(addr, a.threads)?;
    println!("quizload target: http://{}/", t.addr());
    match a.duration {
        Some(d) => std::thread::sleep(d),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("quizload").chain(args.iter().copied())).unwrap()
    }

    /// Trials judged pairwise: a slow phase of the machine that hits both
    /// tools of one trial does not move the ratio, as it moves the ratio of
    /// the medians (here 100/120 = 0.83).
    #[test]
    fn the_wrk_ratio_is_the_median_of_per_trial_ratios() {
        let wrk = [100.0, 120.0, 140.0, 60.0, 200.0];
        let quizload = [98.0, 60.0, 137.0, 59.0, 100.0];
        let per_trial = median_of_ratios(&quizload, &wrk);
        assert!((per_trial - 137.0 / 140.0).abs() < 1e-9, "{per_trial}");
        assert!((median(&quizload) / median(&wrk) - 98.0 / 120.0).abs() < 1e-9);
        assert_eq!(median_of_ratios(&[1.0], &[0.0]), 0.0);
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

//! Experiments: a matrix of server configurations × load levels read from a
//! file in `loadtests/experiments/`, run with repetitions in randomised
//! order, summarised with confidence intervals and verdicts, and written to
//! a results folder (raw run JSON, `summary.json`, `report.md`, SVG charts).
//!
//! The runner builds nothing. For each configuration it starts the given
//! release server binary (`--server-bin`) with the configuration's profile
//! and environment inside the experiment's CPU limit ([`crate::server`]),
//! optionally resets the data set (`seed`), waits for `/readyz`, warms up,
//! runs its cells, samples the server's processes and `/metrics`, and stops
//! it. Rounds repeat this `trials` times with configurations and cells in a
//! fresh random order each round, so drift over time does not masquerade as
//! a difference. With `--target URL` it drives a server it did not start,
//! for one named configuration; `quizload compare` then sets two result
//! folders side by side. With `--tool wrk|hey|locust` each cell's load is
//! sent by that tool ([`crate::tools`]) and read into the same records.
//! On a terminal a progress bar ([`crate::progress`]) shows the cell, the
//! elapsed time and an ETA.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::analysis::charts::{line_chart, share_chart, Series};
use crate::analysis::inference::{compare, mean, student_t_quantile, Comparison};
use crate::analysis::report::RunReport;
use crate::analysis::tables::markdown_table;
use crate::generator::scenarios::{AuthMode, ScenarioKind};
use crate::generator::schedule::Arrival;
use crate::load::{execute, prepare, run_config, LoadArgs, Prepared, TargetArgs};
use crate::output::write_json;
use crate::progress::ExperimentProgress;
use crate::server::{
    self, AppliedLimit, CpuLimit, ProcessUsage, Sampler, ServerProcess, ServerSpec,
};
use crate::tools::locust::default_locustfile;
use crate::tools::quizbench::{login_session, scenario_call};
use crate::tools::{run_tool, tool_program, Tool, ToolLoad, ToolRun};
use crate::units::parse_duration;

/// Table shape of the terminal and Markdown report, after the documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableShape {
    /// Document 000's: Configuration | Avg | Median | Min | Max | 95th, and
    /// a Difference row per configuration against the baseline.
    Latency,
    /// Document 004's: Concurrent Connections | Requests/Second | Avg
    /// Response Time | p99 | Success Rate, one table per configuration.
    Sweep,
    /// Document 002's (Locust's): one row per endpoint.
    Endpoints,
}

/// The latency metric a verdict is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    #[default]
    Mean,
    P50,
    P95,
    P99,
    Max,
    /// Throughput instead of latency.
    Rps,
}

impl Metric {
    fn of(&self, r: &RunReport) -> f64 {
        match self {
            Metric::Mean => r.latency_ms.mean,
            Metric::P50 => r.latency_ms.p50,
            Metric::P95 => r.latency_ms.p95,
            Metric::P99 => r.latency_ms.p99,
            Metric::Max => r.latency_ms.max,
            Metric::Rps => r.rps,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Metric::Mean => "mean latency",
            Metric::P50 => "median latency",
            Metric::P95 => "p95 latency",
            Metric::P99 => "p99 latency",
            Metric::Max => "max latency",
            Metric::Rps => "throughput",
        }
    }
}

/// The load part of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Scenarios run in every cell (each is its own cell).
    pub scenarios: Vec<ScenarioKind>,
    /// Closed model: the concurrency levels.
    #[serde(default)]
    pub concurrency: Vec<usize>,
    /// Open model: the arrival rates (req/s).
    #[serde(default)]
    pub rates: Vec<f64>,
    /// Open model: connections per run.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Measured duration of each run (`10s`).
    #[serde(default)]
    pub duration: Option<String>,
    /// Or a total request count per run.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Or requests per virtual user (the total is level × this), as the
    /// documents' scripts that send N requests per user did.
    #[serde(default)]
    pub requests_per_user: Option<u64>,
    #[serde(default)]
    pub think: Option<String>,
    #[serde(default)]
    pub spawn_rate: Option<f64>,
    #[serde(default)]
    pub ramp: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub arrival: Option<Arrival>,
    #[serde(default)]
    pub auth: Option<AuthMode>,
    #[serde(default)]
    pub static_path: Option<String>,
}

/// One server configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Short name (used in file names and `--config`).
    pub name: String,
    /// Label in tables, e.g. `Multi-Process (2)`.
    #[serde(default)]
    pub label: Option<String>,
    /// `config/NAME.env` profile passed as `--profile NAME`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Environment variables on top of the profile.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CPU limit of this configuration (overrides the experiment's).
    #[serde(default)]
    pub cpu: Option<CpuLimit>,
}

impl ConfigSpec {
    fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// An experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub id: String,
    pub title: String,
    /// The seed document it reproduces.
    pub document: String,
    /// The claim it tests, in the document's words.
    pub claim: String,
    /// The argon2 parameters it uses, and why.
    pub argon2: String,
    pub table: TableShape,
    #[serde(default)]
    pub metric: Metric,
    /// Name of the configuration others are compared with.
    pub baseline: String,
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// Warm-up before each configuration's first cell (`5s`).
    #[serde(default)]
    pub warmup: Option<String>,
    /// Pause between runs (`1s`).
    #[serde(default)]
    pub pause: Option<String>,
    /// Reset the data set (`SERVER seed`) before each server start.
    #[serde(default)]
    pub reset: bool,
    /// Extra arguments of that `seed`, e.g. a smaller data set for a quick
    /// run: `["--students-per-cohort", "5", "--attempts", "100"]` (default:
    /// the reference data set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_args: Vec<String>,
    /// CPU limit of every configuration.
    #[serde(default)]
    pub cpu: CpuLimit,
    pub load: LoadSpec,
    pub configs: Vec<ConfigSpec>,
    #[serde(default)]
    pub notes: Option<String>,
}

fn default_trials() -> usize {
    5
}

impl ExperimentSpec {
    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let spec: Self = toml::from_str(&text)
            .with_context(|| format!("invalid experiment {}", path.display()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the matrix is well formed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.configs.is_empty() {
            bail!("experiment {} has no configs", self.id);
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.configs {
            if !names.insert(&c.name) {
                bail!("config name {:?} appears twice", c.name);
            }
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                bail!("config name {:?} must be letters, digits, - or _", c.name);
            }
        }
        if !names.contains(&self.baseline) {
            bail!("baseline {:?} is not one of the configs", self.baseline);
        }
        let l = &self.load;
        if l.scenarios.is_empty() {
            bail!("load.scenarios is empty");
        }
        match (l.concurrency.is_empty(), l.rates.is_empty()) {
            (true, true) => bail!("give load.concurrency or load.rates"),
            (false, false) => bail!("give load.concurrency or load.rates, not both"),
            _ => {}
        }
        let stops = [
            l.duration.is_some(),
            l.requests.is_some(),
            l.requests_per_user.is_some(),
        ];
        if stops.iter().filter(|x| **x).count() != 1 {
            bail!("give exactly one of load.duration, load.requests, load.requests_per_user");
        }
        for d in [
            &l.duration,
            &l.think,
            &l.ramp,
            &l.timeout,
            &self.warmup,
            &self.pause,
        ]
        .into_iter()
        .flatten()
        {
            if !d.contains("..") {
                parse_duration(d)?;
            }
        }
        if self.trials == 0 {
            bail!("trials must be at least 1");
        }
        if !self.seed_args.is_empty() && !self.reset {
            bail!("seed_args apply to the reset: set reset = true");
        }
        Ok(())
    }

    fn levels(&self) -> Vec<f64> {
        if self.load.rates.is_empty() {
            self.load.concurrency.iter().map(|c| *c as f64).collect()
        } else {
            self.load.rates.clone()
        }
    }

    fn open(&self) -> bool {
        !self.load.rates.is_empty()
    }
}

/// Options of `quizload experiment`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The tool that sends each cell's load (warm-ups are quizload's).
    pub tool: Tool,
    /// The tool's executable (default: its name on PATH).
    pub tool_bin: Option<PathBuf>,
    /// Locust's locustfile (default: `loadtests/locustfile.py` under `workdir`).
    pub locustfile: Option<PathBuf>,
    /// Release server binary to start per configuration.
    pub server_bin: Option<PathBuf>,
    /// Drive this already running server instead (one configuration).
    pub target: Option<String>,
    /// With `target`: which configuration it is running.
    pub config: Option<String>,
    pub trials: Option<usize>,
    pub out: Option<PathBuf>,
    /// Override of each run's duration (quick runs).
    pub duration: Option<Duration>,
    pub threads: Option<usize>,
    pub no_reset: bool,
    pub seed: u64,
    /// Repository root (where `config/` lives) for the server's workdir.
    pub workdir: PathBuf,
    pub quiet: bool,
}

/// One measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub config: String,
    pub scenario: String,
    pub level: f64,
    pub trial: usize,
    /// Position in the experiment's execution order.
    pub order: usize,
    pub report: RunReport,
    #[serde(default)]
    pub server: Option<ServerUsage>,
}

/// What the server used during a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    pub processes: Vec<ProcessUsage>,
    /// Cores kept busy by all server processes together.
    pub cpu_cores: f64,
    /// Sum of the processes' peak RSS.
    pub rss_mb: f64,
    /// Database connections open (sum of the workers' pool sizes) after
    /// the run, from `/metrics`.
    pub db_connections: Option<f64>,
    /// Requests each worker served during the run, from `/metrics`.
    pub worker_requests: BTreeMap<String, f64>,
    pub limit: AppliedLimit,
}

/// Mean and 95 % t-interval half-width of a metric over trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    /// Half-width of the 95 % confidence interval (0 with one trial).
    pub ci95: f64,
    pub values: Vec<f64>,
}

impl Estimate {
    fn of(values: Vec<f64>) -> Self {
        let m = mean(&values);
        let ci95 = if values.len() >= 2 {
            let sd = crate::analysis::inference::sample_variance(&values).sqrt();
            student_t_quantile(0.975, (values.len() - 1) as f64) * sd / (values.len() as f64).sqrt()
        } else {
            0.0
        };
        Self {
            mean: if values.is_empty() { 0.0 } else { m },
            ci95,
            values,
        }
    }
}

/// Aggregate of one cell over its trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub config: String,
    pub label: String,
    pub scenario: String,
    pub level: f64,
    pub trials: usize,
    pub rps: Estimate,
    pub success_rate: Estimate,
    pub mean_ms: Estimate,
    pub p50_ms: Estimate,
    pub p95_ms: Estimate,
    pub p99_ms: Estimate,
    pub min_ms: Estimate,
    pub max_ms: Estimate,
    pub server_cpu_cores: Option<Estimate>,
    pub server_rss_mb: Option<Estimate>,
    pub db_connections: Option<Estimate>,
    /// Share of requests per worker, summed over trials.
    pub worker_share: BTreeMap<String, f64>,
    /// Per-endpoint means over trials: name → (requests, fails, p50, mean, min, max, rps).
    pub endpoints: Vec<EndpointCell>,
    pub generator_saturated_runs: usize,
}

/// One endpoint of a cell, averaged over trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointCell {
    pub name: String,
    pub requests: f64,
    pub failures: f64,
    pub p50_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub rps: f64,
}

/// A verdict between a configuration and the baseline in one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub scenario: String,
    pub level: f64,
    pub config: String,
    pub baseline: String,
    pub metric: String,
    pub comparison: Comparison,
    pub text: String,
}

/// `summary.json` of a results folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub tool: String,
    pub version: String,
    /// The tool that sent the cells' load: `quizload`, or `wrk`, `hey`,
    /// `locust` with `--tool`.
    #[serde(default = "default_load_tool")]
    pub load_tool: String,
    /// The highest mean request rate of any cell (each cell has its own).
    pub rps: f64,
    pub experiment: ExperimentSpec,
    pub started_at_unix: f64,
    pub finished_at_unix: f64,
    /// `started` (the runner started the server) or the target URL.
    pub server: String,
    pub cpus: usize,
    pub cells: Vec<CellSummary>,
    pub verdicts: Vec<VerdictRecord>,
    pub runs: usize,
}

fn default_load_tool() -> String {
    "quizload".into()
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn scenario_name(k: ScenarioKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn target_args(spec: &ExperimentSpec, scenario: ScenarioKind, base: &str) -> TargetArgs {
    TargetArgs {
        url: None,
        scenario: Some(scenario),
        base: Some(base.to_string()),
        method: "GET".into(),
        headers: vec![],
        body: None,
        body_file: None,
        auth: spec.load.auth.unwrap_or(AuthMode::Cookie),
        think: spec.load.think.clone().unwrap_or_else(|| "1s..3s".into()),
        weights: None,
        static_path: spec
            .load
            .static_path
            .clone()
            .unwrap_or_else(|| "/static/style.css".into()),
        student_offset: 0,
    }
}

fn load_args(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    level: f64,
    warmup: Option<Duration>,
) -> anyhow::Result<LoadArgs> {
    let l = &spec.load;
    let p = |s: &Option<String>| s.as_deref().map(parse_duration).transpose();
    let mut duration = p(&l.duration)?;
    let mut requests = l.requests.or(l.requests_per_user.map(|k| k * level as u64));
    if let Some(d) = opts.duration {
        if duration.is_some() {
            duration = Some(d);
        }
    }
    if let Some(w) = warmup {
        duration = Some(w);
        requests = None;
    }
    Ok(LoadArgs {
        duration,
        requests,
        threads: opts.threads,
        timeout: p(&l.timeout)?.unwrap_or(Duration::from_secs(60)),
        ramp: p(&l.ramp)?,
        spawn_rate: l.spawn_rate,
        arrival: l.arrival.unwrap_or(Arrival::Uniform),
        max_lag: Duration::from_secs(1),
        stages: None,
        seed: opts.seed,
        json: None,
        quiet: true,
    })
}

/// Runs an experiment and writes its results folder; returns the summary.
pub fn run_experiment(
    spec: &ExperimentSpec,
    opts: &RunOptions,
) -> anyhow::Result<(ExperimentSummary, PathBuf)> {
    let trials = opts.trials.unwrap_or(spec.trials).max(1);
    let configs: Vec<&ConfigSpec> = match (&opts.target, &opts.config) {
        (Some(_), Some(name)) => vec![spec
            .configs
            .iter()
            .find(|c| &c.name == name)
            .with_context(|| format!("no config {name:?} in experiment {}", spec.id))?],
        (Some(_), None) => {
            bail!("with --target, name the configuration the server runs with --config")
        }
        (None, Some(name)) => vec![spec
            .configs
            .iter()
            .find(|c| &c.name == name)
            .with_context(|| format!("no config {name:?} in experiment {}", spec.id))?],
        (None, None) => spec.configs.iter().collect(),
    };
    let server_bin = match (&opts.target, &opts.server_bin) {
        (Some(_), _) => None,
        (None, Some(b)) => {
            if !b.is_file() {
                bail!("server binary {} not found (build it with `cargo build --release -p quizbench`)", b.display());
            }
            Some(b.clone())
        }
        (None, None) => bail!("give --server-bin PATH (the runner builds nothing) or --target URL"),
    };
    let started = now_unix();
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("results/{}-{}", spec.id, started as u64)));
    std::fs::create_dir_all(out.join("runs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("experiment.toml"), toml_echo(spec)?)?;

    let levels = spec.levels();
    let mut cells: Vec<(ScenarioKind, f64)> = Vec::new();
    for s in &spec.load.scenarios {
        for l in &levels {
            cells.push((*s, *l));
        }
    }
    let total = trials * configs.len() * cells.len();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let warmup = spec.warmup.as_deref().map(parse_duration).transpose()?;
    let pause = spec
        .pause
        .as_deref()
        .map(parse_duration)
        .transpose()?
        .unwrap_or(Duration::from_secs(1));
    let mut records: Vec<RunRecord> = Vec::with_capacity(total);
    let mut order = 0;
    // A progress bar on a terminal; removed from the screen on any exit.
    let bar = ExperimentProgress::stderr(
        total,
        !opts.quiet && std::io::stderr().is_terminal(),
        opts.quiet,
    );
    let _clear = ClearOnDrop(bar.clone());
    bar.message(&format!(
        "experiment {}: {} configs x {} cells x {} trials = {} runs with {} -> {}",
        spec.id,
        configs.len(),
        cells.len(),
        trials,
        total,
        opts.tool.name(),
        out.display()
    ));
    for trial in 0..trials {
        let mut config_order = configs.clone();
        config_order.shuffle(&mut rng);
        for cfg in config_order {
            let limit = cfg.cpu.clone().unwrap_or_else(|| spec.cpu.clone());
            let (mut server, addr) = match &server_bin {
                Some(bin) => {
                    let port = server::free_port()?;
                    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                    let mut env = cfg.env.clone();
                    env.insert("BIND".into(), addr.to_string());
                    let sspec = ServerSpec {
                        binary: bin.clone(),
                        profile: cfg.profile.clone(),
                        env,
                        limit: limit.clone(),
                        log: out.join(format!("server-{}.log", cfg.name)),
                        workdir: opts.workdir.clone(),
                    };
                    if spec.reset && !opts.no_reset {
                        bar.phase(&format!("resetting the data set ({})", cfg.name));
                        let mut args = vec!["seed"];
                        args.extend(spec.seed_args.iter().map(String::as_str));
                        ServerProcess::run_once(&sspec, &args)?;
                    }
                    bar.phase(&format!("starting the server ({})", cfg.name));
                    let s = ServerProcess::start(&sspec, addr, Duration::from_secs(120))?;
                    if let Some(note) = &s.applied.note {
                        bar.warn(&format!("warning: {note}"));
                    }
                    (Some(s), addr)
                }
                None => {
                    let url = crate::generator::http::HttpUrl::parse(
                        opts.target.as_deref().expect("target mode"),
                    )?;
                    (None, url.resolve_blocking()?)
                }
            };
            let base = format!("http://{addr}");
            // One prepared scenario per server start: sessions are reused
            // across the cells of this start, not across restarts.
            let mut prepared: BTreeMap<String, Prepared> = BTreeMap::new();
            for s in &spec.load.scenarios {
                prepared.insert(
                    scenario_name(*s),
                    prepare(&target_args(spec, *s, &base), spec.open())?,
                );
            }
            let mut order_cells = cells.clone();
            order_cells.shuffle(&mut rng);
            if let Some(w) = warmup {
                let (s, l) = order_cells[0];
                let args = load_args(spec, opts, l, Some(w))?;
                let p = &prepared[&scenario_name(s)];
                let mut rc = run_config(&args, p.addr, conc(spec, l), rate(spec, l))?;
                rc.progress = bar.engine_hook();
                bar.message(&format!("  warm-up {} ({:?})", cfg.name, w));
                bar.phase(&format!("warm-up ({}, {:?})", cfg.name, w));
                execute(&rc, p)?;
            }
            for (s, l) in order_cells {
                order += 1;
                let args = load_args(spec, opts, l, None)?;
                let p = &prepared[&scenario_name(s)];
                let mut rc = run_config(&args, p.addr, conc(spec, l), rate(spec, l))?;
                rc.progress = bar.engine_hook();
                bar.begin_cell(
                    order,
                    &format!(
                        "{} {} @ {}, trial {}/{trials}",
                        cfg.name,
                        scenario_name(s),
                        l,
                        trial + 1
                    ),
                    rc.stop,
                );
                let before = server.as_ref().and_then(|_| server::scrape(addr));
                let sampler = server
                    .as_ref()
                    .map(|sv| Sampler::start(sv.pid, Duration::from_millis(250)));
                let report = match opts.tool {
                    Tool::Quizload => execute(&rc, p)?,
                    tool => run_cell_with_tool(spec, opts, tool, s, &base, &rc)?,
                };
                let usage = match (&server, sampler) {
                    (Some(sv), Some(sm)) => {
                        let sampled = sm.finish(sv.pid);
                        let after = server::scrape(addr);
                        let worker_requests = match (&before, &after) {
                            (Some(b), Some(a)) => a
                                .worker_requests
                                .iter()
                                .map(|(w, n)| {
                                    (
                                        w.clone(),
                                        n - b.worker_requests.get(w).copied().unwrap_or(0.0),
                                    )
                                })
                                .collect(),
                            _ => BTreeMap::new(),
                        };
                        Some(ServerUsage {
                            cpu_cores: sampled.cpu_cores,
                            rss_mb: sampled.peak_rss_mb,
                            processes: sampled.processes,
                            db_connections: after.and_then(|a| a.db_connections),
                            worker_requests,
                            limit: sv.applied.clone(),
                        })
                    }
                    _ => None,
                };
                bar.end_cell();
                bar.message(&format!(
                    "  [{order}/{total}] {} {} @ {}: {:.0} req/s, mean {:.1} ms, p95 {:.1} ms, {:.1}% ok{}",
                    cfg.name,
                    scenario_name(s),
                    l,
                    report.rps,
                    report.latency_ms.mean,
                    report.latency_ms.p95,
                    report.success_rate,
                    if report.generator.saturated { " (generator saturated)" } else { "" }
                ));
                let rec = RunRecord {
                    config: cfg.name.clone(),
                    scenario: scenario_name(s),
                    level: l,
                    trial,
                    order,
                    report,
                    server: usage,
                };
                write_json(
                    &out.join("runs").join(format!(
                        "{}-{}-{}-t{}.json",
                        cfg.name, rec.scenario, l, trial
                    )),
                    &rec,
                )?;
                records.push(rec);
                std::thread::sleep(pause);
            }
            if let Some(s) = server.as_mut() {
                bar.phase(&format!("stopping the server ({})", cfg.name));
                s.stop(Duration::from_secs(30));
            }
        }
    }
    let mut summary = summarize(
        spec,
        &records,
        started,
        match &opts.target {
            Some(t) => t.clone(),
            None => "started".into(),
        },
    );
    summary.load_tool = opts.tool.name().into();
    write_results(&out, &summary)?;
    bar.finish();
    Ok((summary, out))
}

/// Takes the progress bar off the screen however the runner returns.
struct ClearOnDrop(ExperimentProgress);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// One cell run by an external tool (`--tool wrk|hey|locust`), as a run
/// report in quizload's shape.
fn run_cell_with_tool(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    tool: Tool,
    scenario: ScenarioKind,
    base: &str,
    rc: &crate::generator::engine::RunConfig,
) -> anyhow::Result<RunReport> {
    let t = target_args(spec, scenario, base);
    let load = match tool {
        Tool::Locust => {
            if scenario != ScenarioKind::Journey {
                bail!("--tool locust runs the journey of locustfile.py; this experiment's scenario is {}", scenario_name(scenario));
            }
            ToolLoad::Journey {
                host: base.to_string(),
                locustfile: opts
                    .locustfile
                    .clone()
                    .unwrap_or_else(|| default_locustfile(&opts.workdir)),
                think: crate::units::parse_duration_range(&t.think)?,
            }
        }
        _ => {
            let session = if scenario.needs_session() {
                Some(login_session(rc.addr, 1)?)
            } else {
                None
            };
            ToolLoad::Fixed(scenario_call(
                scenario,
                base,
                session.as_deref(),
                t.auth,
                &t.static_path,
            )?)
        }
    };
    let (spawn_rate, ramp) = match &rc.model {
        crate::generator::engine::Model::Closed { ramp, spawn_rate } => (*spawn_rate, *ramp),
        crate::generator::engine::Model::Open { .. } => {
            bail!(
                "--tool {}: rates (the open model) run with quizload only",
                tool.name()
            )
        }
    };
    if !ramp.is_zero() {
        bail!("--tool {}: load.ramp runs with quizload only", tool.name());
    }
    let run = ToolRun {
        tool,
        program: tool_program(tool, opts.tool_bin.as_deref()),
        load,
        concurrency: rc.concurrency,
        stop: rc.stop,
        threads: rc.effective_threads(),
        timeout: rc.timeout,
        spawn_rate: if tool == Tool::Locust {
            spawn_rate
        } else {
            None
        },
    };
    let started = SystemTime::now();
    let out = run_tool(&run)?;
    Ok(RunReport::from_tool(
        rc,
        &out.report,
        base,
        &scenario_name(scenario),
        started,
        out.elapsed,
    ))
}

fn conc(spec: &ExperimentSpec, level: f64) -> usize {
    if spec.open() {
        spec.load.connections.unwrap_or(100)
    } else {
        level as usize
    }
}

fn rate(spec: &ExperimentSpec, level: f64) -> Option<f64> {
    spec.open().then_some(level)
}

fn toml_echo(spec: &ExperimentSpec) -> anyhow::Result<String> {
    // The spec is echoed as JSON (the toml crate is used read-only here).
    Ok(serde_json::to_string_pretty(spec)?)
}

/// Latencies of failed requests (a 401 in 2 ms, a refused connection) are
/// not the latencies the claim is about: a verdict between cells where more
/// than 1% of requests failed says so instead of standing alone.
fn failure_caveat(base_success: f64, cand_success: f64) -> Option<String> {
    (base_success.min(cand_success) < 99.0).then(|| {
        format!(
            " — NOT COMPARABLE: only {cand_success:.1}% (baseline {base_success:.1}%) of requests succeeded"
        )
    })
}

/// Aggregates run records into cells and verdicts.
pub fn summarize(
    spec: &ExperimentSpec,
    records: &[RunRecord],
    started: f64,
    server: String,
) -> ExperimentSummary {
    let mut cells = Vec::new();
    let label_of = |name: &str| {
        spec.configs
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.label().to_string())
            .unwrap_or_else(|| name.to_string())
    };
    let mut keys: Vec<(String, String, f64)> = records
        .iter()
        .map(|r| (r.config.clone(), r.scenario.clone(), r.level))
        .collect();
    keys.sort_by(|a, b| {
        (config_index(spec, &a.0), &a.1, a.2)
            .partial_cmp(&(config_index(spec, &b.0), &b.1, b.2))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    keys.dedup();
    for (config, scenario, level) in keys {
        let rs: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.config == config && r.scenario == scenario && r.level == level)
            .collect();
        let est = |f: &dyn Fn(&RunRecord) -> f64| Estimate::of(rs.iter().map(|r| f(r)).collect());
        let opt_est = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
            let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| Estimate::of(v))
        };
        let mut worker_share: BTreeMap<String, f64> = BTreeMap::new();
        for r in &rs {
            if let Some(u) = &r.server {
                for (w, n) in &u.worker_requests {
                    *worker_share.entry(w.clone()).or_insert(0.0) += n;
                }
            }
        }
        let total: f64 = worker_share.values().sum();
        if total > 0.0 {
            for v in worker_share.values_mut() {
                *v /= total;
            }
        }
        let mut endpoints: BTreeMap<String, Vec<&crate::stats::EndpointSummary>> = BTreeMap::new();
        for r in &rs {
            for e in &r.report.endpoints {
                endpoints.entry(e.name.clone()).or_default().push(e);
            }
        }
        let n = rs.len().max(1) as f64;
        let endpoints = endpoints
            .into_iter()
            .map(|(name, es)| EndpointCell {
                name,
                requests: es.iter().map(|e| e.requests as f64).sum::<f64>() / n,
                failures: es.iter().map(|e| e.errors.total as f64).sum::<f64>() / n,
                p50_ms: es.iter().map(|e| e.latency_ms.p50).sum::<f64>() / es.len() as f64,
                mean_ms: es.iter().map(|e| e.latency_ms.mean).sum::<f64>() / es.len() as f64,
                min_ms: es
                    .iter()
                    .map(|e| e.latency_ms.min)
                    .fold(f64::INFINITY, f64::min),
                max_ms: es.iter().map(|e| e.latency_ms.max).fold(0.0, f64::max),
                rps: es.iter().map(|e| e.rps).sum::<f64>() / n,
            })
            .collect();
        cells.push(CellSummary {
            label: label_of(&config),
            config,
            scenario,
            level,
            trials: rs.len(),
            rps: est(&|r| r.report.rps),
            success_rate: est(&|r| r.report.success_rate),
            mean_ms: est(&|r| r.report.latency_ms.mean),
            p50_ms: est(&|r| r.report.latency_ms.p50),
            p95_ms: est(&|r| r.report.latency_ms.p95),
            p99_ms: est(&|r| r.report.latency_ms.p99),
            min_ms: est(&|r| r.report.latency_ms.min),
            max_ms: est(&|r| r.report.latency_ms.max),
            server_cpu_cores: opt_est(&|r| r.server.as_ref().map(|s| s.cpu_cores)),
            server_rss_mb: opt_est(&|r| r.server.as_ref().map(|s| s.rss_mb)),
            db_connections: opt_est(&|r| r.server.as_ref().and_then(|s| s.db_connections)),
            worker_share,
            endpoints,
            generator_saturated_runs: rs.iter().filter(|r| r.report.generator.saturated).count(),
        });
    }
    let mut verdicts = Vec::new();
    for cfg in spec.configs.iter().filter(|c| c.name != spec.baseline) {
        for cell in cells.iter().filter(|c| c.config == cfg.name) {
            let base: Vec<f64> = records
                .iter()
                .filter(|r| {
                    r.config == spec.baseline
                        && r.scenario == cell.scenario
                        && r.level == cell.level
                })
                .map(|r| spec.metric.of(&r.report))
                .collect();
            if base.is_empty() {
                continue;
            }
            let cand: Vec<f64> = records
                .iter()
                .filter(|r| {
                    r.config == cfg.name && r.scenario == cell.scenario && r.level == cell.level
                })
                .map(|r| spec.metric.of(&r.report))
                .collect();
            let comparison = compare(&base, &cand);
            let base_success = cells
                .iter()
                .find(|c| {
                    c.config == spec.baseline
                        && c.scenario == cell.scenario
                        && c.level == cell.level
                })
                .map_or(100.0, |c| c.success_rate.mean);
            let mut text = format!(
                "{} @ {} {}",
                comparison.describe(cfg.label(), spec.metric.name()),
                cell.level,
                if spec.open() { "req/s" } else { "concurrent" }
            );
            if let Some(note) = failure_caveat(base_success, cell.success_rate.mean) {
                text.push_str(&note);
            }
            verdicts.push(VerdictRecord {
                scenario: cell.scenario.clone(),
                level: cell.level,
                config: cfg.name.clone(),
                baseline: spec.baseline.clone(),
                metric: spec.metric.name().into(),
                comparison,
                text,
            });
        }
    }
    let rps = cells.iter().map(|c| c.rps.mean).fold(0.0, f64::max);
    ExperimentSummary {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        load_tool: default_load_tool(),
        rps,
        experiment: spec.clone(),
        started_at_unix: started,
        finished_at_unix: now_unix(),
        server,
        cpus: crate::generator::sysmon::available_cpus(),
        runs: records.len(),
        cells,
        verdicts,
    }
}

fn config_index(spec: &ExperimentSpec, name: &str) -> usize {
    spec.configs
        .iter()
        .position(|c| c.name == name)
        .unwrap_or(usize::MAX)
}

fn diff_text(base: f64, x: f64, higher_is_worse: bool) -> String {
    if base == 0.0 {
        return "-".into();
    }
    let rel = x / base - 1.0;
    let word = match (rel >= 0.0, higher_is_worse) {
        (true, true) => "slower",
        (false, true) => "faster",
        (true, false) => "higher",
        (false, false) => "lower",
    };
    format!("{:+.0}% {word}", rel * 100.0)
}

fn ms(e: &Estimate) -> String {
    if e.values.len() >= 2 {
        format!("{:.1}ms ±{:.1}", e.mean, e.ci95)
    } else {
        format!("{:.1}ms", e.mean)
    }
}

/// The summary's tables in the experiment's document shape, as Markdown.
pub fn render_tables(s: &ExperimentSummary) -> String {
    let spec = &s.experiment;
    let mut o = String::new();
    let unit = if spec.open() {
        "req/s"
    } else {
        "Concurrent Requests"
    };
    let scenarios: Vec<String> = spec
        .load
        .scenarios
        .iter()
        .map(|k| scenario_name(*k))
        .collect();
    match spec.table {
        TableShape::Latency => {
            for sc in &scenarios {
                for level in spec.levels() {
                    let row_cells: Vec<&CellSummary> = spec
                        .configs
                        .iter()
                        .filter_map(|c| {
                            s.cells.iter().find(|x| {
                                x.config == c.name && &x.scenario == sc && x.level == level
                            })
                        })
                        .collect();
                    if row_cells.is_empty() {
                        continue;
                    }
                    let _ = writeln!(o, "\n### {sc}: {level} {unit}\n");
                    let mut rows: Vec<Vec<String>> = row_cells
                        .iter()
                        .map(|c| {
                            vec![
                                format!("**{}**", c.label),
                                ms(&c.mean_ms),
                                ms(&c.p50_ms),
                                ms(&c.min_ms),
                                ms(&c.max_ms),
                                ms(&c.p95_ms),
                                format!("{:.1}%", c.success_rate.mean),
                                format!("{:.0}", c.rps.mean),
                            ]
                        })
                        .collect();
                    if let Some(base) = row_cells.iter().find(|c| c.config == spec.baseline) {
                        for c in row_cells.iter().filter(|c| c.config != spec.baseline) {
                            rows.push(vec![
                                format!("**Difference** ({})", c.label),
                                diff_text(base.mean_ms.mean, c.mean_ms.mean, true),
                                diff_text(base.p50_ms.mean, c.p50_ms.mean, true),
                                diff_text(base.min_ms.mean, c.min_ms.mean, true),
                                diff_text(base.max_ms.mean, c.max_ms.mean, true),
                                diff_text(base.p95_ms.mean, c.p95_ms.mean, true),
                                format!("{:+.1} pt", c.success_rate.mean - base.success_rate.mean),
                                diff_text(base.rps.mean, c.rps.mean, false),
                            ]);
                        }
                    }
                    o.push_str(&markdown_table(
                        &[
                            "Configuration",
                            "Avg Response",
                            "Median",
                            "Min",
                            "Max",
                            "95th %",
                            "Success",
                            "req/s",
                        ],
                        &rows,
                    ));
                }
            }
        }
        TableShape::Sweep => {
            for c in &spec.configs {
                for sc in &scenarios {
                    let rows: Vec<Vec<String>> = s
                        .cells
                        .iter()
                        .filter(|x| x.config == c.name && &x.scenario == sc)
                        .map(|x| {
                            vec![
                                format!("{}", x.level),
                                format!("{:.0} ±{:.0}", x.rps.mean, x.rps.ci95),
                                ms(&x.mean_ms),
                                ms(&x.p99_ms),
                                format!("{:.1}%", x.success_rate.mean),
                            ]
                        })
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let _ = writeln!(o, "\n### {} ({sc})\n", c.label());
                    let first = if spec.open() {
                        "Target Rate"
                    } else {
                        "Concurrent Connections"
                    };
                    o.push_str(&markdown_table(
                        &[
                            first,
                            "Requests/Second",
                            "Avg Response Time",
                            "p99",
                            "Success Rate",
                        ],
                        &rows,
                    ));
                }
            }
        }
        TableShape::Endpoints => {
            for cell in &s.cells {
                let _ = writeln!(
                    o,
                    "\n### {}: {} {unit} ({})\n",
                    cell.label, cell.level, cell.scenario
                );
                let rows: Vec<Vec<String>> = cell
                    .endpoints
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            format!("{:.0}", e.requests),
                            format!("{:.0}", e.failures),
                            format!("{:.0}", e.p50_ms),
                            format!("{:.0}", e.mean_ms),
                            format!("{:.0}", e.min_ms),
                            format!("{:.0}", e.max_ms),
                            format!("{:.1}", e.rps),
                        ]
                    })
                    .collect();
                o.push_str(&markdown_table(
                    &[
                        "Name",
                        "# requests",
                        "# fails",
                        "Median (ms)",
                        "Average (ms)",
                        "Min (ms)",
                        "Max (ms)",
                        "req/s",
                    ],
                    &rows,
                ));
            }
        }
    }
    o
}

/// Resource cost next to the latency figures.
pub fn render_resources(s: &ExperimentSummary) -> String {
    let rows: Vec<Vec<String>> = s
        .cells
        .iter()
        .map(|c| {
            let f = |e: &Option<Estimate>, d: usize| {
                e.as_ref()
                    .map(|e| format!("{:.*}", d, e.mean))
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                c.label.clone(),
                c.scenario.clone(),
                format!("{}", c.level),
                f(&c.server_cpu_cores, 2),
                f(&c.server_rss_mb, 0),
                f(&c.db_connections, 0),
                if c.worker_share.is_empty() {
                    "-".into()
                } else {
                    c.worker_share
                        .values()
                        .map(|v| format!("{:.0}%", v * 100.0))
                        .collect::<Vec<_>>()
                        .join(" / ")
                },
                format!("{}/{}", c.generator_saturated_runs, c.trials),
            ]
        })
        .collect();
    markdown_table(
        &[
            "Configuration",
            "Scenario",
            "Level",
            "Server CPU (cores)",
            "Server RSS (MB)",
            "DB connections",
            "Worker request share",
            "Generator saturated",
        ],
        &rows,
    )
}

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
    for sc in spec.load.scenarios.iter().map(|k| scenario_name(*k)) {
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
    let mut md = String::new();
    let _ = writeln!(md, "# Experiment {}: {}\n", spec.id, spec.title);
    let _ = writeln!(md, "- Document: `{}`", spec.document);
    let _ = writeln!(md, "- Claim tested: {}", spec.claim);
    let _ = writeln!(md, "- argon2: {}", spec.argon2);
    let _ = writeln!(
        md,
        "- Runs: {} ({} trials per cell, randomised order), server: {}, machine: {} CPUs",
        s.runs,
        // As run (--trials overrides the file's count).
        s.cells
            .iter()
            .map(|c| c.trials)
            .max()
            .unwrap_or(spec.trials),
        s.server,
        s.cpus
    );
    if s.load_tool != "quizload" {
        let _ = writeln!(
            md,
            "- Load sent by {} (`--tool`) and read into these tables: no raw histograms, time series or generator self-check (see each run's `warnings`)",
            s.load_tool
        );
    }
    if let Some(n) = &spec.notes {
        let _ = writeln!(md, "- Notes: {n}");
    }
    let _ = writeln!(
        md,
        "\nValues are means over trials; ± is the 95% confidence half-width.\n"
    );
    let _ = writeln!(md, "## Results\n{}", render_tables(s));
    let _ = writeln!(md, "\n## Verdicts (95% CI over trials)\n");
    if s.verdicts.is_empty() {
        let _ = writeln!(md, "No comparison (one configuration).");
    }
    for v in &s.verdicts {
        let _ = writeln!(md, "- {} [{}]", v.text, v.scenario);
    }
    let _ = writeln!(md, "\n## Resource cost\n\n{}", render_resources(s));
    let _ = writeln!(md, "\n## Charts\n");
    for c in &charts {
        let _ = writeln!(md, "![{c}]({c})");
    }
    std::fs::write(out.join("report.md"), md)?;
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
            .map(|r| metric.of(&r.report))
            .collect();
        let vb: Vec<f64> = rb
            .iter()
            .filter(|r| r.config == cb.config && r.scenario == cb.scenario && r.level == cb.level)
            .map(|r| metric.of(&r.report))
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
id = "t"
title = "test"
document = "seeds/000.md"
claim = "two is slower"
argon2 = "m=1024,t=1"
table = "latency"
baseline = "one"
trials = 3

[load]
scenarios = ["healthz"]
concurrency = [2, 4]
requests_per_user = 5

[[configs]]
name = "one"
label = "Single"
env = { PROCESSES = "1" }

[[configs]]
name = "two"
profile = "doc000-multi"
"#;

    #[test]
    fn verdicts_over_failing_cells_carry_a_caveat() {
        assert_eq!(failure_caveat(100.0, 99.5), None);
        let note = failure_caveat(100.0, 0.0).unwrap();
        assert!(
            note.contains("NOT COMPARABLE") && note.contains("0.0%"),
            "{note}"
        );
        assert!(failure_caveat(50.0, 100.0).is_some());
    }

    #[test]
    fn parses_and_validates() {
        let s: ExperimentSpec = toml::from_str(SPEC).unwrap();
        s.validate().unwrap();
        assert_eq!(s.levels(), vec![2.0, 4.0]);
        assert_eq!(s.configs[0].env["PROCESSES"], "1");
        let mut bad = s.clone();
        bad.baseline = "three".into();
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.load.rates = vec![10.0];
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.load.duration = Some("5s".into());
        assert!(bad.validate().is_err(), "two stop conditions");
        let mut bad = s.clone();
        bad.seed_args = vec!["--attempts".into(), "10".into()];
        assert!(bad.validate().is_err(), "seed_args without reset");
        bad.reset = true;
        bad.validate().unwrap();
        assert!(toml::from_str::<ExperimentSpec>(
            &SPEC.replace("trials = 3", "trials = 3\nbogus = 1")
        )
        .is_err());
        let o = RunOptions {
            tool: Tool::Quizload,
            tool_bin: None,
            locustfile: None,
            server_bin: None,
            target: None,
            config: None,
            trials: None,
            out: None,
            duration: None,
            threads: None,
            no_reset: false,
            seed: 1,
            workdir: ".".into(),
            quiet: true,
        };
        assert_eq!(load_args(&s, &o, 4.0, None).unwrap().requests, Some(20));
    }

    #[test]
    fn differences_read_like_the_document() {
        assert_eq!(diff_text(37.0, 46.0, true), "+24% slower");
        assert_eq!(diff_text(100.0, 90.0, true), "-10% faster");
        assert_eq!(diff_text(100.0, 110.0, false), "+10% higher");
        let e = Estimate::of(vec![1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        // t(0.975, 2) * 1 / sqrt(3)
        assert!((e.ci95 - 4.302_653 / 3f64.sqrt()).abs() < 1e-4);
        assert_eq!(Estimate::of(vec![5.0]).ci95, 0.0);
    }
}

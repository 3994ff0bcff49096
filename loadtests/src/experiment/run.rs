//! The experiment runner ([`run_experiment`]): the matrix of configurations
//! × scenarios × levels, repeated `trials` times with configurations and
//! cells in a fresh random order each round; per configuration a server
//! start (after an optional data reset) or the given target, one prepared
//! scenario per start, a warm-up, and every cell measured in turn. Each run
//! is written to `runs/` as it finishes; the summary and report at the end.
//! The runner builds nothing and decides no verdicts (the summary does).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::cell::{conc, load_args, measure_cell, rate, target_args};
use super::cpu_limit::AppliedLimit;
use super::progress::ExperimentProgress;
use super::results::write_results;
use super::sampler::ProcessUsage;
use super::server::{free_port, ServerProcess, ServerSpec};
use super::spec::{ConfigSpec, ExperimentSpec};
use super::summary::{now_unix, summarize, ExperimentSummary};
use crate::analysis::report::RunReport;
use crate::generator::http::HttpUrl;
use crate::generator::scenarios::ScenarioKind;
use crate::load::{execute, prepare, run_config, Prepared};
use crate::output::write_json;
use crate::tools::Tool;
use crate::units::parse_duration;

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
                    let port = free_port()?;
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
                    let url = HttpUrl::parse(opts.target.as_deref().expect("target mode"))?;
                    (None, url.resolve_blocking()?)
                }
            };
            let base = format!("http://{addr}");
            // One prepared scenario per server start: sessions are reused
            // across the cells of this start, not across restarts.
            let mut prepared: BTreeMap<String, Prepared> = BTreeMap::new();
            for s in &spec.load.scenarios {
                prepared.insert(
                    s.name(),
                    prepare(&target_args(spec, *s, &base), spec.open())?,
                );
            }
            let mut order_cells = cells.clone();
            order_cells.shuffle(&mut rng);
            if let Some(w) = warmup {
                let (s, l) = order_cells[0];
                let args = load_args(spec, opts, l, Some(w))?;
                let p = &prepared[&s.name()];
                let mut rc = run_config(&args, p.addr, conc(spec, l), rate(spec, l))?;
                rc.progress = bar.engine_hook();
                bar.message(&format!("  warm-up {} ({:?})", cfg.name, w));
                bar.phase(&format!("warm-up ({}, {:?})", cfg.name, w));
                execute(&rc, p)?;
            }
            for (s, l) in order_cells {
                order += 1;
                let args = load_args(spec, opts, l, None)?;
                let p = &prepared[&s.name()];
                let mut rc = run_config(&args, p.addr, conc(spec, l), rate(spec, l))?;
                rc.progress = bar.engine_hook();
                bar.begin_cell(
                    order,
                    &format!(
                        "{} {} @ {}, trial {}/{trials}",
                        cfg.name,
                        s.name(),
                        l,
                        trial + 1
                    ),
                    rc.stop,
                );
                let (report, usage) = measure_cell(spec, opts, server.as_ref(), addr, s, p, &rc)?;
                bar.end_cell();
                bar.message(&format!(
                    "  [{order}/{total}] {} {} @ {}: {:.0} req/s, mean {:.1} ms, p95 {:.1} ms, {:.1}% ok{}",
                    cfg.name,
                    s.name(),
                    l,
                    report.rps,
                    report.latency_ms.mean,
                    report.latency_ms.p95,
                    report.success_rate,
                    if report.generator.saturated { " (generator saturated)" } else { "" }
                ));
                let rec = RunRecord {
                    config: cfg.name.clone(),
                    scenario: s.name(),
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

fn toml_echo(spec: &ExperimentSpec) -> anyhow::Result<String> {
    // The spec is echoed as JSON (the toml crate is used read-only here).
    Ok(serde_json::to_string_pretty(spec)?)
}

//! The experiment runner ([`run_experiment`]): the matrix of configurations
//! × scenarios × levels, repeated `trials` times with configurations and
//! cells in a fresh random order each round; the generator pinned and the
//! private PostgreSQL and Redis started first when the file places them;
//! per configuration a server start inside its envelope (after an optional
//! data reset) or the given target, one prepared scenario per start, a
//! warm-up, and every cell measured in turn. Each run is written to `runs/`
//! as it finishes, with the build that produced it, so a stopped run
//! resumes (`--resume`) and a subset runs alone (`--only`); the summary and
//! report at the end cover every run in the folder. The runner builds
//! nothing and decides no verdicts (the summary does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::calibrate::{calibrate, Calibration};
use super::cell::{calibration_run, level_run, measure_cell, server_spec, target_args, CellEnv};
use super::cgroup::{limits_of_pid, MemoryEvents};
use super::compose::Deployment;
use super::database::{explain, max_connections, IndexChange};
use super::interrupt;
use super::limits::{AppliedLimit, LimitRefused, PERMISSION_HINT};
use super::placement::{generator_affinity, listener_pid, pin_generator, Affinities, Machine};
use super::progress::ExperimentProgress;
use super::results::write_results;
use super::resume::{previous_runs, Build, Selector};
use super::sampler::ProcessUsage;
use super::server::{free_port, ServerProcess};
use super::services::PrivateServices;
use super::spec::{ConfigSpec, ExperimentSpec};
use super::summary::{now_unix, summarize, ExperimentSummary};
use crate::analysis::report::RunReport;
use crate::generator::http::HttpUrl;
use crate::generator::scenarios::ScenarioKind;
use crate::load::{execute, prepare, Prepared, ToolArgs};
use crate::output::write_json;
use crate::units::{parse_duration, parse_opt_duration};

/// Options of `quizload experiment`, its command line (flattened into
/// `cli::ExperimentArgs`). The default: quizload, nothing overridden or
/// skipped, seed 0, an empty `workdir` (callers set theirs and take the
/// rest with `..RunOptions::default()`).
#[derive(Clone, Debug, Default, Args)]
pub struct RunOptions {
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
    /// Results folder (default docs/results/ID under --workdir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out: cells it already holds are skipped.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: add to runs of another server build.
    #[arg(long)]
    pub mix_builds: bool,
    /// Run only these cells: CONFIG[/SCENARIO][@LEVEL], `*` for any part
    /// (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Stop after this many cells (resume later with --resume).
    #[arg(long)]
    pub max_cells: Option<usize>,
    /// Run even when a CPU set, quota or memory limit cannot be applied
    /// (the report says which); default: refuse.
    #[arg(long)]
    pub allow_unconfined: bool,
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
    /// The tool that sends each cell's load (warm-ups are quizload's), its
    /// executable and Locust's locustfile (default:
    /// `loadtests/locustfile.py` under `workdir`).
    #[command(flatten)]
    pub tool: ToolArgs,
    /// No progress bar and no summary on the terminal.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The command line that ran the experiment, for the report.
    #[arg(skip)]
    pub command: Option<String>,
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
    /// The server build that produced it.
    #[serde(default)]
    pub build: Option<Build>,
    /// Where each component ran and how busy it was.
    #[serde(default)]
    pub placement: Option<CellPlacement>,
    /// The measured window of a ramped cell.
    #[serde(default)]
    pub window: Option<Window>,
    /// The plan of the experiment's `explain` statement in this
    /// configuration's database state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// A configuration whose server did not start: a result, not a crash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartFailure {
    pub config: String,
    pub trial: usize,
    pub error: String,
    /// The end of the server's log.
    pub log_tail: String,
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
    /// OOM kills and memory-limit hits in the server's cgroup during the run.
    #[serde(default)]
    pub memory_events: MemoryEvents,
    /// Workers that died during the run (from `/metrics`).
    #[serde(default)]
    pub worker_deaths: Option<f64>,
}

/// Where the components of a cell ran (CPU affinity read from `/proc`
/// during the cell) and the cores each kept busy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellPlacement {
    pub affinity: Affinities,
    /// `server`, `generator`, `postgres`, `redis` → cores busy.
    pub cpu_cores: BTreeMap<String, f64>,
    /// Where the server shares CPUs with another component.
    pub overlaps: Vec<String>,
}

/// When a ramped cell's measured window opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// After the run's start, when the last user started.
    pub last_user_started_s: f64,
    /// After the run's start, when the window opened.
    pub opens_s: f64,
}

/// How the experiment's envelopes were applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Method {
    /// Per configuration: the server's envelope as applied.
    pub server: BTreeMap<String, AppliedLimit>,
    /// The private PostgreSQL and Redis, when the runner started them.
    pub services: Option<AppliedLimit>,
    /// The generator's CPU list as pinned (`None`: not pinned).
    pub generator: Option<String>,
    /// With `--target`: the limits read from the target's cgroups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_limits: Vec<(String, String)>,
    /// Limits that were not applied (only with `--allow-unconfined`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfined: Vec<String>,
    /// `max_connections` of the private PostgreSQL, as it reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

fn find_config<'a>(spec: &'a ExperimentSpec, name: &str) -> anyhow::Result<&'a ConfigSpec> {
    spec.configs
        .iter()
        .find(|c| c.name == name)
        .with_context(|| format!("no config {name:?} in experiment {}", spec.id))
}

/// Runs an experiment and writes its results folder; returns the summary.
pub fn run_experiment(
    spec: &ExperimentSpec,
    opts: &RunOptions,
) -> anyhow::Result<(ExperimentSummary, PathBuf)> {
    let trials = opts.trials.unwrap_or(spec.trials).max(1);
    let configs: Vec<&ConfigSpec> = match (&opts.target, &opts.config) {
        (Some(_), None) => {
            bail!("with --target, name the configuration the server runs with --config")
        }
        (_, Some(name)) => vec![find_config(spec, name)?],
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
        (None, None) if configs.iter().all(|c| c.compose.is_some()) => None,
        (None, None) => bail!("give --server-bin PATH (the runner builds nothing) or --target URL"),
    };
    let selectors = opts
        .only
        .iter()
        .map(|s| Selector::parse(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for s in &selectors {
        s.check(spec)?;
    }
    let started = now_unix();
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.workdir.join("docs/results").join(&spec.id));
    let build = Build::of(server_bin.as_deref(), &opts.workdir, opts.target.as_deref())?;
    let previous = previous_runs(&out, spec, &build, opts.resume, opts.mix_builds)?;
    let done: BTreeSet<(String, String, u64, usize)> = previous
        .iter()
        .map(|r| {
            (
                r.config.clone(),
                r.scenario.clone(),
                r.level.to_bits(),
                r.trial,
            )
        })
        .collect();
    std::fs::create_dir_all(out.join("runs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("experiment.toml"), toml_echo(spec)?)?;

    // Placement: the generator first (every thread started later inherits
    // it), then the private services.
    let mut method = Method::default();
    if let Some(g) = &spec.placement.generator {
        match pin_generator(g) {
            Ok(()) => method.generator = Some(g.clone()),
            Err(e) if opts.allow_unconfined => method
                .unconfined
                .push(format!("generator CPU set {g}: {e:#}")),
            Err(e) => bail!("load generator: {e:#}. To run with it, {PERMISSION_HINT}"),
        }
    }
    let services = match (&spec.services, &server_bin) {
        (Some(s), Some(_)) => Some(PrivateServices::start(s, &out, opts.allow_unconfined)?),
        _ => None,
    };
    if let Some(s) = &services {
        method.max_connections = Some(max_connections(&s.env()[0].1)?);
        method.services = Some(s.applied.clone());
        if let Some(n) = &s.applied.note {
            method.unconfined.push(format!("services: {n}"));
        }
    }
    let machine = Machine::read(services.as_ref().map(|s| &s.versions));

    let levels = spec.levels();
    let mut cells: Vec<(ScenarioKind, f64)> = Vec::new();
    for s in &spec.load.scenarios {
        for l in &levels {
            cells.push((*s, *l));
        }
    }
    let selected = |cfg: &str, s: &ScenarioKind, l: f64| {
        selectors.is_empty() || selectors.iter().any(|x| x.matches(cfg, &s.name(), l))
    };
    let pending = |cfg: &str, s: &ScenarioKind, l: f64, trial: usize| {
        selected(cfg, s, l) && !done.contains(&(cfg.to_string(), s.name(), l.to_bits(), trial))
    };
    let mut total = 0;
    for trial in 0..trials {
        for c in &configs {
            total += cells
                .iter()
                .filter(|(s, l)| pending(&c.name, s, *l, trial))
                .count();
        }
    }
    let total = opts.max_cells.map_or(total, |m| total.min(m));
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let warmup = parse_opt_duration(&spec.warmup)?;
    let pause = parse_opt_duration(&spec.pause)?.unwrap_or(Duration::from_secs(1));
    let mut records: Vec<RunRecord> = previous;
    let mut order = records.iter().map(|r| r.order).max().unwrap_or(0);
    let mut ran = 0;
    // A progress bar on a terminal; removed from the screen on any exit.
    let bar = ExperimentProgress::stderr(
        total,
        !opts.quiet && std::io::stderr().is_terminal(),
        opts.quiet,
    );
    let _clear = ClearOnDrop(bar.clone());
    bar.message(&format!(
        "experiment {}: {} configs x {} cells x {} trials; {} runs to do ({} done) with {} -> {}",
        spec.id,
        configs.len(),
        cells.len(),
        trials,
        total,
        done.len(),
        opts.tool.tool.name(),
        out.display()
    ));
    let mut seeded = false;
    // The calibration, before the trials (kept in the folder: a resumed
    // run uses the value its first part ran with).
    let cal_file = out.join("calibration.json");
    let calibration = match (&spec.calibrate, &server_bin) {
        (Some(c), Some(bin)) => Some(match std::fs::read_to_string(&cal_file) {
            Ok(text) if opts.resume => serde_json::from_str::<Calibration>(&text)
                .with_context(|| format!("invalid {}", cal_file.display()))?,
            _ => {
                let cfg = find_config(spec, &c.config)?;
                let scenario = c.scenario.unwrap_or(spec.load.scenarios[0]).name();
                let cal = calibrate(c, &scenario, |value| {
                    interrupt::check(0, &out)?;
                    bar.phase(&format!("calibrating {} = {value} on {}", c.var, cfg.name));
                    let seed = (spec.reset && !opts.no_reset) || (services.is_some() && !seeded);
                    let r = calibration_run(
                        spec,
                        c,
                        cfg,
                        opts,
                        bin,
                        services.as_ref(),
                        &out,
                        value,
                        seed,
                    )?;
                    seeded = true;
                    let m = c.metric.of(&r, None).with_context(|| {
                        format!("the calibration run gave no {}", c.metric.name())
                    })?;
                    bar.message(&format!(
                        "  calibration: {} = {value}: {} {m:.1} (target {})",
                        c.var,
                        c.metric.name(),
                        c.target
                    ));
                    Ok(m)
                })?;
                write_json(&cal_file, &cal)?;
                cal
            }
        }),
        _ => None,
    };
    // Every configuration runs with the calibrated value (unless it sets
    // the variable itself).
    let calibrated: Vec<ConfigSpec> = configs
        .iter()
        .map(|c| {
            let mut c = (*c).clone();
            if let Some(cal) = &calibration {
                c.env
                    .entry(cal.var.clone())
                    .or_insert_with(|| format!("{}", cal.value));
            }
            c
        })
        .collect();
    let configs: Vec<&ConfigSpec> = calibrated.iter().collect();
    let failures_file = out.join("start-failures.json");
    let mut failures: Vec<StartFailure> = match std::fs::read_to_string(&failures_file) {
        Ok(text) if opts.resume => serde_json::from_str(&text)
            .with_context(|| format!("invalid {}", failures_file.display()))?,
        _ => Vec::new(),
    };
    'trials: for trial in 0..trials {
        let mut config_order = configs.clone();
        config_order.shuffle(&mut rng);
        for cfg in config_order {
            let mut order_cells = cells.clone();
            order_cells.shuffle(&mut rng);
            order_cells.retain(|(s, l)| pending(&cfg.name, s, *l, trial));
            if order_cells.is_empty() {
                continue;
            }
            if opts.max_cells.is_some_and(|m| ran >= m) {
                break 'trials;
            }
            interrupt::check(ran, &out)?;
            let mut indexes: Option<IndexChange> = None;
            let mut plan: Option<String> = None;
            let mut deployment = match (&cfg.compose, &opts.target) {
                (Some(_), None) => {
                    bar.phase(&format!("bringing the deployment up ({})", cfg.name));
                    Some(Deployment::start(cfg, &out, &opts.workdir, &mut method)?)
                }
                _ => None,
            };
            let (mut server, addr) = match &server_bin {
                _ if deployment.is_some() => (None, deployment.as_ref().expect("up").addr),
                Some(bin) => {
                    let port = free_port()?;
                    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                    let sspec = server_spec(spec, cfg, opts, bin, services.as_ref(), addr, &out);
                    let reset = spec.reset && !opts.no_reset;
                    // Private services start empty: seed them once at least.
                    if reset || (services.is_some() && !seeded) {
                        bar.phase(&format!("resetting the data set ({})", cfg.name));
                        let mut args = vec!["seed"];
                        args.extend(spec.seed_args.iter().map(String::as_str));
                        ServerProcess::run_once(&sspec, &args)?;
                        seeded = true;
                    }
                    let db_url = sspec.env.get("DATABASE_URL").cloned();
                    if !cfg.drop_indexes.is_empty() {
                        let url = db_url.as_deref().with_context(|| {
                            format!("config {}: drop_indexes needs [services] or a DATABASE_URL in its env", cfg.name)
                        })?;
                        indexes = Some(IndexChange::drop(url, &cfg.drop_indexes)?);
                    }
                    if let (Some(statement), Some(url)) = (&spec.explain, &db_url) {
                        plan = Some(explain(url, statement)?);
                    }
                    bar.phase(&format!("starting the server ({})", cfg.name));
                    let s = match ServerProcess::start(&sspec, addr, Duration::from_secs(120)) {
                        Ok(s) => s,
                        Err(e) => {
                            if let Some(ix) = indexes.take() {
                                ix.restore()?;
                            }
                            // An envelope that cannot be applied stops the
                            // run; a configuration that cannot start is a
                            // result.
                            if e.downcast_ref::<LimitRefused>().is_some() {
                                return Err(e);
                            }
                            bar.message(&format!("  {} did not start: {e:#}", cfg.name));
                            failures.push(StartFailure {
                                config: cfg.name.clone(),
                                trial,
                                error: format!("{e:#}"),
                                log_tail: log_tail(&sspec.log),
                            });
                            write_json(&failures_file, &failures)?;
                            continue;
                        }
                    };
                    if let Some(note) = &s.applied.note {
                        bar.warn(&format!("warning: {note}"));
                        method
                            .unconfined
                            .push(format!("server ({}): {note}", cfg.name));
                    }
                    method.server.insert(cfg.name.clone(), s.applied.clone());
                    (Some(s), addr)
                }
                None => {
                    let url = HttpUrl::parse(opts.target.as_deref().expect("target mode"))?;
                    let addr = url.resolve_blocking()?;
                    if method.target_limits.is_empty() {
                        method.target_limits = listener_pid(addr)
                            .map(limits_of_pid)
                            .unwrap_or_else(|| {
                                vec![("limits".into(), "not readable: no local process listens on the target's address".into())]
                            });
                    }
                    (None, addr)
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
            if let Some(w) = warmup {
                let (s, l) = order_cells[0];
                let p = &prepared[&s.name()];
                let mut rc = level_run(spec, opts, l, Some(w), p.addr)?;
                rc.progress = bar.engine_hook();
                bar.message(&format!("  warm-up {} ({:?})", cfg.name, w));
                bar.phase(&format!("warm-up ({}, {:?})", cfg.name, w));
                execute(&rc, p)?;
            }
            let env = CellEnv {
                server: server.as_ref(),
                services: services.as_ref(),
                addr,
            };
            for (s, l) in order_cells {
                if opts.max_cells.is_some_and(|m| ran >= m) {
                    break;
                }
                interrupt::check(ran, &out)?;
                order += 1;
                ran += 1;
                let p = &prepared[&s.name()];
                let mut rc = level_run(spec, opts, l, None, p.addr)?;
                rc.progress = bar.engine_hook();
                bar.begin_cell(
                    ran,
                    &format!(
                        "{} {} @ {}, trial {}/{trials}",
                        cfg.name,
                        s.name(),
                        l,
                        trial + 1
                    ),
                    rc.stop,
                );
                let probe = deployment.as_ref().map(Deployment::probe);
                let mut m = match cfg.tool {
                    Some(tool) => {
                        let mut o = opts.clone();
                        o.tool.tool = tool;
                        measure_cell(spec, &o, &env, s, p, &rc)?
                    }
                    None => measure_cell(spec, opts, &env, s, p, &rc)?,
                };
                if let (Some(pr), Some(d)) = (probe, &deployment) {
                    pr.finish(d, &mut m);
                }
                bar.end_cell();
                let report = m.report;
                bar.message(&format!(
                    "  [{ran}/{total}] {} {} @ {}: {:.0} req/s, mean {:.1} ms, p95 {:.1} ms, {:.1}% ok{}",
                    cfg.name,
                    s.name(),
                    l,
                    report.rps,
                    report.latency_ms.mean,
                    report.latency_ms.p95,
                    report.success_rate,
                    if report.generator.saturated { " (generator saturated)" } else { "" }
                ));
                let window = rc.ramped().then(|| Window {
                    last_user_started_s: rc
                        .start_offset(rc.concurrency.saturating_sub(1))
                        .as_secs_f64(),
                    opens_s: rc.window_offset().as_secs_f64(),
                });
                let rec = RunRecord {
                    config: cfg.name.clone(),
                    scenario: s.name(),
                    level: l,
                    trial,
                    order,
                    report,
                    server: m.server,
                    build: Some(build.clone()),
                    placement: Some(m.placement),
                    window,
                    plan: plan.clone(),
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
            if let Some(ix) = indexes.take() {
                bar.phase(&format!("restoring indexes ({})", cfg.name));
                ix.restore()?;
            }
            if let Some(d) = deployment.as_mut() {
                bar.phase(&format!("taking the deployment down ({})", cfg.name));
                d.down()?;
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
    summary.load_tool = opts.tool.tool.name().into();
    summary.machine = Some(machine);
    summary.method = Some(method);
    summary.generator_cpus = Some(generator_affinity());
    summary.start_failures = failures;
    summary.calibration = calibration;
    if let Some(m) = &mut summary.measured {
        m.command = opts.command.clone();
    }
    write_results(&out, &summary, &records)?;
    bar.finish();
    drop(services);
    Ok((summary, out))
}

/// The last lines of a server log.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
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

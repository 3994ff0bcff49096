//! One cell of an experiment: its load options from the experiment file
//! ([`target_args`], [`load_args`]), its load sent by quizload's engine or
//! an external tool, and the usage around it ([`measure_cell`]: the
//! server's process tree sampled, its `/metrics` scraped before and after,
//! its cgroup's memory counters; each component's CPU affinity read from
//! `/proc` and the cores it kept busy). The order of cells and the
//! server's life are the runner's business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::bail;

use super::calibrate::CalibrateSpec;
use super::metrics::scrape;
use super::placement::{affinity_of, generator_affinity, overlaps};
use super::run::{CellPlacement, RunOptions, ServerUsage};
use super::sampler::{ProcStat, Sampler};
use super::server::{free_port, ServerProcess, ServerSpec};
use super::services::PrivateServices;
use super::spec::{ConfigSpec, ExperimentSpec};
use crate::analysis::report::RunReport;
use crate::generator::engine::{Model, RunConfig};
use crate::generator::scenarios::{AuthMode, ScenarioKind};
use crate::generator::schedule::Arrival;
use crate::load::{execute, prepare, run_config, LoadArgs, Prepared, TargetArgs};
use crate::tools::locust::default_locustfile;
use crate::tools::quizbench::{scenario_call, scenario_session};
use crate::tools::{run_tool, tool_program, Tool, ToolLoad, ToolRun};
use crate::units::{parse_duration, parse_duration_range, parse_opt_duration};

pub(super) fn target_args(spec: &ExperimentSpec, scenario: ScenarioKind, base: &str) -> TargetArgs {
    TargetArgs {
        url: None,
        scenario: Some(scenario),
        base: Some(base.to_string()),
        method: "GET".into(),
        headers: spec.load.headers.clone(),
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

pub(super) fn load_args(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    level: f64,
    warmup: Option<Duration>,
) -> anyhow::Result<LoadArgs> {
    let l = &spec.load;
    let mut duration = parse_opt_duration(&l.duration)?;
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
        timeout: parse_opt_duration(&l.timeout)?.unwrap_or(Duration::from_secs(60)),
        ramp: parse_opt_duration(&l.ramp)?,
        spawn_rate: l.spawn_rate,
        arrival: l.arrival.unwrap_or(Arrival::Uniform),
        max_lag: Duration::from_secs(1),
        stages: None,
        seed: opts.seed,
        json: None,
        quiet: true,
    })
}

/// What a cell runs against: the server the runner started (if it did),
/// the private services (if any) and the server's address.
pub(super) struct CellEnv<'a> {
    pub server: Option<&'a ServerProcess>,
    pub services: Option<&'a PrivateServices>,
    pub addr: SocketAddr,
}

/// A measured cell.
pub(super) struct CellMeasure {
    pub report: RunReport,
    pub server: Option<ServerUsage>,
    pub placement: CellPlacement,
}

/// Runs one cell's load (quizload's engine, or the tool of `opts`) against
/// the server at `env.addr` and measures around it: when the runner started
/// the server, its processes (sampled during the run), its `/metrics`
/// (scraped before and after) and its cgroup's memory counters; for every
/// component, its CPU affinity and the cores it kept busy.
pub(super) fn measure_cell(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    env: &CellEnv,
    s: ScenarioKind,
    p: &Prepared,
    rc: &RunConfig,
) -> anyhow::Result<CellMeasure> {
    let addr = env.addr;
    let base = format!("http://{addr}");
    let server = env.server;
    let before = server.and_then(|_| scrape(addr));
    let mem_before = server.map(ServerProcess::memory_events);
    let period = Duration::from_millis(250);
    let sampler = server.map(|sv| Sampler::start(sv.pid, period));
    let service_samplers: Vec<(&str, u32, Sampler)> = env
        .services
        .map(|sv| {
            let (pg, redis) = sv.pids();
            vec![
                ("postgres", pg, Sampler::start(pg, period)),
                ("redis", redis, Sampler::start(redis, period)),
            ]
        })
        .unwrap_or_default();
    // The generator is quizload and, with `--tool`, the tool it runs and
    // reaps within the cell (counted in quizload's cutime + cstime).
    let me = std::process::id();
    let generator_ticks = || ProcStat::read(me).map(|s| s.cpu_ticks + s.child_cpu_ticks);
    let gen0 = generator_ticks();
    let t0 = std::time::Instant::now();
    // The generator's threads exist while the engine runs: read their
    // affinity then.
    let gen_affinity = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        generator_affinity()
    });
    let report = match opts.tool.tool {
        Tool::Quizload => execute(rc, p)?,
        tool => run_cell_with_tool(spec, opts, tool, s, &base, rc)?,
    };
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let mut placement = CellPlacement::default();
    let hz = procfs::ticks_per_second() as f64;
    if let (Some(a), Some(b)) = (gen0, generator_ticks()) {
        placement
            .cpu_cores
            .insert("generator".into(), b.saturating_sub(a) as f64 / hz / wall);
    }
    placement.affinity.cpus.insert(
        "generator".into(),
        gen_affinity.join().unwrap_or_else(|_| generator_affinity()),
    );
    for (name, pid, sm) in service_samplers {
        let used = sm.finish(pid);
        placement.cpu_cores.insert(name.into(), used.cpu_cores);
        if let Some(a) = affinity_of(&pid.to_string()) {
            placement.affinity.cpus.insert(name.into(), a);
        }
    }
    let usage = match (server, sampler) {
        (Some(sv), Some(sm)) => {
            let sampled = sm.finish(sv.pid);
            placement
                .cpu_cores
                .insert("server".into(), sampled.cpu_cores);
            if let Some(a) = affinity_of(&sv.pid.to_string()) {
                placement.affinity.cpus.insert("server".into(), a);
            }
            let after = scrape(addr);
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
            let worker_deaths = match (&before, &after) {
                // Only a server that reports its workers (quizbench).
                (Some(b), Some(a)) if !a.worker_requests.is_empty() => Some(a.deaths_since(b)),
                _ => None,
            };
            Some(ServerUsage {
                cpu_cores: sampled.cpu_cores,
                rss_mb: sampled.peak_rss_mb,
                processes: sampled.processes,
                db_connections: after.and_then(|a| a.db_connections),
                worker_requests,
                limit: sv.applied.clone(),
                memory_events: sv.memory_events().since(&mem_before.unwrap_or_default()),
                worker_deaths,
            })
        }
        _ => None,
    };
    placement.overlaps = overlaps(&placement.affinity);
    Ok(CellMeasure {
        report,
        server: usage,
        placement,
    })
}

/// One cell run by an external tool (`--tool wrk|hey|locust`), as a run
/// report in quizload's shape.
fn run_cell_with_tool(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    tool: Tool,
    scenario: ScenarioKind,
    base: &str,
    rc: &RunConfig,
) -> anyhow::Result<RunReport> {
    let t = target_args(spec, scenario, base);
    let load = match tool {
        Tool::Locust => {
            if scenario != ScenarioKind::Journey {
                bail!("--tool locust runs the journey of locustfile.py; this experiment's scenario is {}", scenario.name());
            }
            ToolLoad::Journey {
                host: base.to_string(),
                locustfile: opts
                    .tool
                    .locustfile
                    .clone()
                    .unwrap_or_else(|| default_locustfile(&opts.workdir)),
                think: parse_duration_range(&t.think)?,
            }
        }
        _ => {
            let session = if scenario.needs_session() {
                Some(scenario_session(rc.addr, scenario)?)
            } else {
                None
            };
            let mut call =
                scenario_call(scenario, base, session.as_deref(), t.auth, &t.static_path)?;
            call.headers.extend(t.header_pairs()?);
            ToolLoad::Fixed(call)
        }
    };
    let (spawn_rate, ramp) = match &rc.model {
        Model::Closed { ramp, spawn_rate } => (*spawn_rate, *ramp),
        Model::Open { .. } => {
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
        program: tool_program(tool, opts.tool.tool_bin.as_deref()),
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
        &scenario.name(),
        started,
        out.elapsed,
    ))
}

/// How the runner starts a configuration's server on `addr`: its profile
/// and environment, the private services' URLs, the envelope.
pub(super) fn server_spec(
    spec: &ExperimentSpec,
    cfg: &ConfigSpec,
    opts: &RunOptions,
    binary: &Path,
    services: Option<&PrivateServices>,
    addr: SocketAddr,
    out: &Path,
) -> ServerSpec {
    let mut env = cfg.env.clone();
    if let Some(s) = services {
        env.extend(s.env());
    }
    env.insert("BIND".into(), addr.to_string());
    ServerSpec {
        binary: binary.to_path_buf(),
        profile: cfg.profile.clone(),
        env,
        limit: cfg.limits.clone().unwrap_or_else(|| spec.limits.clone()),
        allow_unconfined: opts.allow_unconfined,
        log: out.join(format!("server-{}.log", cfg.name)),
        workdir: opts.workdir.clone(),
    }
}

/// One calibration step: `cfg`'s server started with `var = value` (after
/// a data reset when `seed`), the calibration cell run once with
/// quizload, the server stopped; the cell's report.
#[allow(clippy::too_many_arguments)]
pub(super) fn calibration_run(
    spec: &ExperimentSpec,
    cal: &CalibrateSpec,
    cfg: &ConfigSpec,
    opts: &RunOptions,
    binary: &Path,
    services: Option<&PrivateServices>,
    out: &Path,
    value: f64,
    seed: bool,
) -> anyhow::Result<RunReport> {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut sspec = server_spec(spec, cfg, opts, binary, services, addr, out);
    sspec.env.insert(cal.var.clone(), format!("{value}"));
    sspec.log = out.join("server-calibration.log");
    if seed {
        let mut args = vec!["seed"];
        args.extend(spec.seed_args.iter().map(String::as_str));
        ServerProcess::run_once(&sspec, &args)?;
    }
    let mut server = ServerProcess::start(&sspec, addr, Duration::from_secs(120))?;
    let scenario = cal.scenario.unwrap_or(spec.load.scenarios[0]);
    let base = format!("http://{addr}");
    let prepared = prepare(&target_args(spec, scenario, &base), spec.open())?;
    let mut o = opts.clone();
    if let Some(d) = &cal.duration {
        o.duration = Some(parse_duration(d)?);
    }
    let rc = level_run(spec, &o, cal.level, None, prepared.addr)?;
    let report = execute(&rc, &prepared);
    server.stop(Duration::from_secs(30));
    report
}

/// The engine's run of the file's load at `level` against `addr`: a
/// warm-up lasting `warmup`, or else a measured run whose window opens
/// the file's `settle` after the last user started.
pub(super) fn level_run(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    level: f64,
    warmup: Option<Duration>,
    addr: SocketAddr,
) -> anyhow::Result<RunConfig> {
    let args = load_args(spec, opts, level, warmup)?;
    let mut rc = run_config(&args, addr, conc(spec, level), rate(spec, level))?;
    if warmup.is_none() {
        rc.settle = Some(parse_opt_duration(&spec.load.settle)?.unwrap_or(Duration::ZERO));
    }
    Ok(rc)
}

pub(super) fn conc(spec: &ExperimentSpec, level: f64) -> usize {
    if spec.open() {
        spec.load.connections.unwrap_or(100)
    } else {
        level as usize
    }
}

pub(super) fn rate(spec: &ExperimentSpec, level: f64) -> Option<f64> {
    spec.open().then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::test_support::SPEC;

    /// Requests per virtual user scale with the level.
    #[test]
    fn requests_per_user_scale_with_the_level() {
        let s: ExperimentSpec = toml::from_str(SPEC).unwrap();
        let o = RunOptions {
            seed: 1,
            workdir: ".".into(),
            quiet: true,
            ..RunOptions::default()
        };
        assert_eq!(load_args(&s, &o, 4.0, None).unwrap().requests, Some(20));
    }
}

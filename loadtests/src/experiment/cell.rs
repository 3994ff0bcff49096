//! One cell of an experiment: its load options from the experiment file
//! ([`target_args`], [`load_args`]), its load sent by quizload's engine or
//! an external tool, and the server's usage around it ([`measure_cell`]:
//! its process tree sampled, its `/metrics` scraped before and after). The
//! order of cells and the server's life are the runner's business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::bail;

use super::metrics::scrape;
use super::run::{RunOptions, ServerUsage};
use super::sampler::Sampler;
use super::server::ServerProcess;
use super::spec::ExperimentSpec;
use crate::analysis::report::RunReport;
use crate::generator::engine::{Model, RunConfig};
use crate::generator::scenarios::{AuthMode, ScenarioKind};
use crate::generator::schedule::Arrival;
use crate::load::{execute, LoadArgs, Prepared, TargetArgs};
use crate::tools::locust::default_locustfile;
use crate::tools::quizbench::{login_session, scenario_call};
use crate::tools::{run_tool, tool_program, Tool, ToolLoad, ToolRun};
use crate::units::{parse_duration, parse_duration_range};

pub(super) fn target_args(spec: &ExperimentSpec, scenario: ScenarioKind, base: &str) -> TargetArgs {
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

pub(super) fn load_args(
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

/// Runs one cell's load (quizload's engine, or the tool of `opts`) against
/// the server at `addr` and, when the runner started that server, samples
/// its processes during the run and scrapes its `/metrics` around it.
pub(super) fn measure_cell(
    spec: &ExperimentSpec,
    opts: &RunOptions,
    server: Option<&ServerProcess>,
    addr: SocketAddr,
    s: ScenarioKind,
    p: &Prepared,
    rc: &RunConfig,
) -> anyhow::Result<(RunReport, Option<ServerUsage>)> {
    let base = format!("http://{addr}");
    let before = server.as_ref().and_then(|_| scrape(addr));
    let sampler = server
        .as_ref()
        .map(|sv| Sampler::start(sv.pid, Duration::from_millis(250)));
    let report = match opts.tool {
        Tool::Quizload => execute(rc, p)?,
        tool => run_cell_with_tool(spec, opts, tool, s, &base, rc)?,
    };
    let usage = match (server, sampler) {
        (Some(sv), Some(sm)) => {
            let sampled = sm.finish(sv.pid);
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
    Ok((report, usage))
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
                    .locustfile
                    .clone()
                    .unwrap_or_else(|| default_locustfile(&opts.workdir)),
                think: parse_duration_range(&t.think)?,
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
        &scenario.name(),
        started,
        out.elapsed,
    ))
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
}

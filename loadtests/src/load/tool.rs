//! Running with an external tool (`--tool wrk|hey|locust`): what the tool is
//! to run, from the same target and load options as quizload's own runs
//! ([`tool_run_from_args`]), and the run itself as a run report in
//! quizload's shape ([`run_with_tool`]). Options the tools cannot honour
//! (the open model, a ramp, headers Locust would not see) are refused here
//! as usage errors. The target is connected to once before the login and
//! the tool's launch; every error names the tool, the step and the URL,
//! and the command line echoed has its cookies and tokens masked.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::{preflight, step, usage, LoadArgs, TargetArgs, ToolArgs};
use crate::analysis::report::{ImportReport, RunReport};
use crate::generator::engine::{Model, Progress, RunConfig, Stop};
use crate::generator::http::HttpUrl;
use crate::generator::scenarios::{ScenarioKind, SEEDED_STUDENTS};
use crate::generator::sysmon::available_cpus;
use crate::tools::locust::default_locustfile;
use crate::tools::quizbench::{login_session, scenario_call, scenario_session};
use crate::tools::{
    check_installed, command_preview, run_tool, tool_program, FixedCall, Tool, ToolLoad, ToolRun,
};
use crate::units::parse_duration_range;

/// What an external tool is to run, from `run`'s target and load options
/// (`open`: the open model was asked for, which no adapter has).
fn tool_run_from_args(
    tool: &ToolArgs,
    target: &TargetArgs,
    load: &LoadArgs,
    concurrency: usize,
    open: bool,
) -> anyhow::Result<ToolRun> {
    if open {
        return Err(usage(
            "--rate/--stages (the open model) run with quizload only: wrk and hey are closed-loop (hey's -q is per worker), Locust too",
        ));
    }
    if load.ramp.is_some() {
        return Err(usage(
            "--ramp runs with quizload only (use --spawn-rate with locust)",
        ));
    }
    if load.spawn_rate.is_some() && tool.tool != Tool::Locust {
        return Err(usage(format!(
            "--spawn-rate applies to locust (and quizload), not to {}",
            tool.tool.name()
        )));
    }
    if concurrency == 0 {
        return Err(usage("--concurrency must be at least 1"));
    }
    let stop = match (load.requests, load.duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(d)) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let headers = target.header_pairs()?;
    match (tool.tool, target.scenario) {
        (Tool::Locust, Some(ScenarioKind::Journey))
            if !headers.is_empty() || target.weights.is_some() =>
        {
            return Err(usage(
                "-H and --weights do not reach locustfile.py; edit it instead",
            ))
        }
        (Tool::Locust, Some(ScenarioKind::Journey)) => {}
        (Tool::Locust, _) => return Err(usage(
            "locust runs the journey of locustfile.py: give --scenario journey (use hey or wrk for a single request)",
        )),
        (_, Some(ScenarioKind::Journey)) => return Err(usage(
            "the journey is not a single request: run it with --tool locust (locustfile.py) or quizload",
        )),
        (_, None) if target.url.is_none() => {
            return Err(usage(
                "give a URL to load, or --scenario NAME (with --base URL)",
            ))
        }
        _ => {}
    }
    // Then whether the tool is there, before any connect or login.
    let program = tool_program(tool.tool, tool.tool_bin.as_deref());
    check_installed(tool.tool, &program)?;
    let load_kind = match (tool.tool, target.scenario) {
        (Tool::Locust, _) => {
            let host = target.base_url();
            preflight_url(tool.tool, &host, load)?;
            ToolLoad::Journey {
                host,
                locustfile: tool
                    .locustfile
                    .clone()
                    .unwrap_or_else(|| default_locustfile(Path::new("."))),
                think: parse_duration_range(&target.think)?,
            }
        }
        (_, Some(kind)) => {
            let base = target.base_url();
            let (_, addr) = preflight_url(tool.tool, &base, load)?;
            let session = if kind.needs_session() {
                let login = format!("{}/api/v1/auth/login", base.trim_end_matches('/'));
                let session = match kind {
                    ScenarioKind::Cohort => scenario_session(addr, kind),
                    _ => login_session(addr, target.student_offset % SEEDED_STUDENTS + 1),
                };
                Some(session.with_context(|| step(tool.tool, "login POST", &login))?)
            } else {
                None
            };
            let mut call = scenario_call(
                kind,
                &base,
                session.as_deref(),
                target.auth,
                &target.static_path,
            )?;
            call.headers.extend(headers);
            ToolLoad::Fixed(call)
        }
        (_, None) => {
            let url = target.url.as_ref().expect("checked above");
            let (parsed, _) = preflight_url(tool.tool, url, load)?;
            let body = target.body_bytes()?;
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
        program,
        load: load_kind,
        concurrency,
        stop,
        threads: load.threads.unwrap_or_else(available_cpus).max(1),
        timeout: load.timeout,
        spawn_rate: load.spawn_rate,
    })
}

/// Parses and resolves `url` and connects to it once (see [`preflight`]):
/// the URL and its address.
fn preflight_url(
    tool: Tool,
    url: &str,
    load: &LoadArgs,
) -> anyhow::Result<(HttpUrl, std::net::SocketAddr)> {
    let parsed = HttpUrl::parse(url).map_err(|e| usage(format!("{e:#}")))?;
    let addr = parsed
        .resolve_blocking()
        .with_context(|| step(tool, "resolve", url))?;
    preflight(tool, url, addr, load.timeout)?;
    Ok((parsed, addr))
}

/// `quizload run --tool wrk|hey|locust`: the tool's run as a run report
/// (`tool` names the tool) like quizload's own, and the tool's figures as
/// read. The command line goes to stderr first unless quiet.
pub fn run_with_tool(
    tool: &ToolArgs,
    target: &TargetArgs,
    load: &LoadArgs,
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<(RunReport, ImportReport)> {
    let open = rate.is_some() || load.stages.is_some();
    let run = tool_run_from_args(tool, target, load, concurrency, open)?;
    let started = SystemTime::now();
    if !load.quiet {
        eprintln!("running {}", command_preview(&run)?);
    }
    let target_label = match &run.load {
        ToolLoad::Fixed(c) => c.url.clone(),
        ToolLoad::Journey { host, .. } => host.clone(),
    };
    let out = run_tool(&run).with_context(|| step(tool.tool, "load", &target_label))?;
    let scenario = target
        .scenario
        .map(ScenarioKind::name)
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
        seed: load.seed,
        progress: Progress::Off,
        settle: None,
    };
    let report = RunReport::from_tool(
        &cfg,
        &out.report,
        &target_label,
        &scenario,
        started,
        out.elapsed,
    );
    Ok((report, out.report))
}

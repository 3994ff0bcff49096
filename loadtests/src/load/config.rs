//! The engine configuration of one run ([`run_config`]) from the load
//! options: stop condition, closed or open model, threads, progress line.
//! It checks the options against each other and runs nothing.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use super::{usage, LoadArgs};
use crate::generator::engine::{Model, Progress, RunConfig, Stop};
use crate::generator::schedule::{parse_stages, Stage};
use crate::generator::sysmon::available_cpus;

/// Builds the engine configuration for one run.
pub fn run_config(
    load: &LoadArgs,
    addr: SocketAddr,
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<RunConfig> {
    if concurrency == 0 {
        return Err(usage("--concurrency must be at least 1"));
    }
    let stages: Option<Vec<Stage>> = match (&load.stages, rate) {
        (Some(_), Some(_)) => return Err(usage("give either --rate or --stages, not both")),
        (Some(s), None) => Some(parse_stages(s).map_err(|e| usage(format!("--stages: {e:#}")))?),
        (None, Some(r)) => {
            if !(r > 0.0 && r.is_finite()) {
                return Err(usage("--rate must be a positive number"));
            }
            Some(vec![Stage {
                seconds: f64::INFINITY,
                rate: r,
            }])
        }
        (None, None) => None,
    };
    let stop = match (load.requests, load.duration, &stages) {
        (Some(0), _, _) => return Err(usage("--requests must be at least 1")),
        (Some(n), _, _) => Stop::Requests(n),
        (None, Some(d), _) => Stop::Duration(d),
        (None, None, Some(st)) if st.iter().all(|s| s.seconds.is_finite()) => {
            Stop::Duration(Duration::from_secs_f64(st.iter().map(|s| s.seconds).sum()))
        }
        (None, None, _) => Stop::Duration(Duration::from_secs(10)),
    };
    if let Stop::Duration(d) = stop {
        if d.is_zero() {
            return Err(usage("--duration must be positive"));
        }
    }
    let model = match stages {
        Some(stages) => {
            if load.ramp.is_some() || load.spawn_rate.is_some() {
                return Err(usage(
                    "--ramp/--spawn-rate apply to the closed model, not with --rate/--stages",
                ));
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
                    return Err(usage("--spawn-rate must be a positive number"));
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
            Progress::Line
        } else {
            Progress::Off
        },
        settle: None,
    })
}

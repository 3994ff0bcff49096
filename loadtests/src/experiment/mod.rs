//! Experiments: a matrix of server configurations × load levels read from a
//! file in `loadtests/experiments/`, run with repetitions in randomised
//! order, summarised with confidence intervals and verdicts, and written to
//! a results folder (raw run JSON, `summary.json`, `report.md`, SVG charts).
//!
//! The runner builds nothing. For each configuration it starts the given
//! release server binary (`--server-bin`) with the configuration's profile
//! and environment inside the experiment's CPU limit (`server`, `cpu_limit`),
//! optionally resets the data set (`seed`), waits for `/readyz`, warms up,
//! runs its cells, samples the server's processes and `/metrics`, and stops
//! it. Rounds repeat this `trials` times with configurations and cells in a
//! fresh random order each round, so drift over time does not masquerade as
//! a difference. With `--target URL` it drives a server it did not start,
//! for one named configuration; `quizload compare` then sets two result
//! folders side by side. With `--tool wrk|hey|locust` each cell's load is
//! sent by that tool (`crate::tools`) and read into the same records.
//! On a terminal a progress bar (`progress`) shows the cell, the
//! elapsed time and an ETA.
//!
//! - `spec`: the experiment file and its validation;
//! - `run`: the runner (matrix, trials, randomised order, warm-up, server
//!   starts), `cell` one cell's load and the server's usage during it;
//! - `calibrate`: a server knob calibrated before the trials;
//! - `interrupt`: SIGINT/SIGTERM stop the runner between cells, cleanly;
//! - `database`: indexes a configuration drops, the `EXPLAIN` of the
//!   experiment's statement, `max_connections` as the server has it;
//! - `server`, `cpu_limit`: starting the server under test inside a CPU
//!   limit; `compose`: a configuration that is a compose deployment (up,
//!   readiness through its balancer, containers' limits, down);
//!   `sampler` (`/proc`) and `metrics` (`/metrics`) measure it;
//! - `summary`: cells and verdicts over trials; `render`: their Markdown
//!   and terminal text; `results`: the results folder; `compare`: two
//!   results folders side by side; `progress`: the progress bar.
//!
//! It drives runs through `crate::load` and `crate::tools` and must not be
//! used by them; the CLI only calls [`run_experiment`], [`compare_folders`]
//! and the renderers.

pub mod calibrate;
mod cell;
pub mod cgroup;
pub mod claims;
pub mod compare;
pub mod compose;
pub mod database;
pub mod figures;
pub mod interrupt;
pub mod limits;
pub mod metrics;
pub mod placement;
pub mod progress;
pub mod render;
pub mod results;
pub mod resume;
pub mod run;
pub mod sampler;
pub mod server;
pub mod services;
pub mod spec;
pub mod summary;

pub use compare::{compare_folders, CompareReport};
pub use render::terminal_summary;
pub use results::load_runs;
pub use run::{run_experiment, RunOptions, RunRecord};
pub use spec::{ExperimentSpec, Metric};
pub use summary::ExperimentSummary;

/// A small experiment file the tests share.
#[cfg(test)]
mod test_support {
    pub const SPEC: &str = r#"
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
}

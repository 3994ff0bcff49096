//! The options a run is made of, shared by the CLI (which parses them with
//! clap) and the experiment runner (which fills them in from an experiment
//! file): what to send ([`TargetArgs`]), how long and how hard
//! ([`LoadArgs`]), which tool sends it ([`ToolArgs`]). Definitions and
//! small accessors only (the body file is read here): nothing here
//! resolves, connects or runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::generator::scenarios::{AuthMode, ScenarioKind};
use crate::generator::schedule::Arrival;
use crate::tools::Tool;
use crate::units::parse_duration;

/// Default server address of quizbench (`BIND`'s default).
const DEFAULT_BASE: &str = "http://127.0.0.1:8000";

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
    /// Extra header `Name: value` on every request of the run, the
    /// scenario's logins included, and passed to wrk and hey (repeatable),
    /// e.g. `-H 'Accept-Encoding: gzip'`.
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

/// Which tool sends the load (default: quizload's engine).
#[derive(Debug, Clone, Default, Args)]
pub struct ToolArgs {
    /// Send the load with an external tool instead of quizload's engine and
    /// read its figures into the same tables: wrk or hey (one request, with
    /// a session cookie for scenarios that need one) or locust (the journey
    /// of locustfile.py).
    #[arg(long, value_enum, default_value = "quizload")]
    pub tool: Tool,
    /// The tool's executable (default: its name on PATH).
    #[arg(long)]
    pub tool_bin: Option<PathBuf>,
    /// Locust's locustfile (default: loadtests/locustfile.py).
    #[arg(long)]
    pub locustfile: Option<PathBuf>,
}

impl TargetArgs {
    /// The `-H` headers as `(name, value)` pairs.
    pub fn header_pairs(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.headers
            .iter()
            .map(|h| parse_header(h).map_err(|e| usage(e.to_string())))
            .collect()
    }

    /// The fixed request's body: `--body`, the contents of `--body-file`, or
    /// nothing.
    pub fn body_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(match (&self.body, &self.body_file) {
            (Some(b), _) => b.clone().into_bytes(),
            (None, Some(f)) => std::fs::read(f)
                .with_context(|| format!("cannot read body file {}", f.display()))?,
            _ => Vec::new(),
        })
    }

    /// The base URL of a scenario: `--base`, else the URL, else quizbench's
    /// default address.
    pub fn base_url(&self) -> String {
        self.base
            .clone()
            .or_else(|| self.url.clone())
            .unwrap_or_else(|| DEFAULT_BASE.to_string())
    }
}

/// Options that do not go together or are out of range: the command line
/// exits with its bad-usage status for these, not its error status.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow` error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Parses a `Name: value` header.
pub fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = h
        .split_once(':')
        .with_context(|| format!("header {h:?} is not `Name: value`"))?;
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        bail!("bad header name in {h:?}");
    }
    Ok((k.to_string(), v.trim().to_string()))
}

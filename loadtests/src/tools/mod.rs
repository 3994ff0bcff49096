//! Adapters for the load tools users already know — wrk, hey and Locust:
//! build their command lines, launch them, and parse their output into
//! quizload's own shapes, so their results print in the same tables and
//! feed the same experiment summaries.
//!
//! - `quizload import TOOL FILE` reads a report a tool wrote earlier;
//! - `quizload run --tool wrk|hey|locust ...` launches the tool for one run
//!   (a URL or a quizbench scenario; Locust runs `locustfile.py`'s journey);
//! - `quizload experiment FILE --tool ...` runs every cell of an experiment
//!   with the tool instead of quizload's engine (warm-ups stay quizload's);
//! - `quizload calibrate --vs-wrk` runs wrk against the same target.
//!
//!
//! One module per tool, each with its command builder, its output parser
//! and its importer into quizload's tables ([`wrk`], [`hey`], [`locust`]);
//! the process running they share is in [`process`]: it runs a command in a
//! scratch directory (request bodies, wrk's Lua script, Locust's CSV files)
//! and removes it afterwards. wrk and hey repeat one request, so a scenario
//! that needs a session logs in once first ([`quizbench::login_session`])
//! and every connection sends that cookie. This file holds what a tool run
//! is ([`Tool`], [`ToolRun`]) and reading a tool's saved report
//! ([`import_file`]). Nothing here decides what an experiment or a CLI
//! command does with the figures.

pub mod hey;
pub mod locust;
pub mod process;
pub mod quizbench;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::analysis::report::ImportReport;
use crate::generator::engine::Stop;
use crate::stats::{EndpointSummary, ErrorSummary, LatencySummary};

pub use process::{
    check_installed, command_preview, run_tool, run_wrk, shell_join, tool_program, ToolOutcome,
};

/// The load tool that sends the requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// quizload's own engine.
    #[default]
    Quizload,
    Wrk,
    Hey,
    Locust,
}

impl Tool {
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Quizload => "quizload",
            Tool::Wrk => "wrk",
            Tool::Hey => "hey",
            Tool::Locust => "locust",
        }
    }

    /// How to install the tool, for the error when it is missing.
    pub fn install_hint(&self) -> &'static str {
        match self {
            Tool::Quizload => "it is this program",
            Tool::Wrk => "install it with `apt-get install wrk` (Debian/Ubuntu package `wrk`)",
            Tool::Hey => {
                "install it with `apt-get install hey` (Debian package `hey`, bookworm and later) or `go install github.com/rakyll/hey@latest`"
            }
            Tool::Locust => {
                "install it with `pip install locust` (in a venv: `python3 -m venv ~/.cache/quizbench/venv && ~/.cache/quizbench/venv/bin/pip install locust`, then pass `--tool-bin ~/.cache/quizbench/venv/bin/locust`)"
            }
        }
    }
}

fn missing_tool(tool: Tool, program: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "{} not found ({}): {}",
            tool.name(),
            program.display(),
            tool.install_hint()
        )
    } else {
        anyhow::anyhow!("cannot run {}: {e}", program.display())
    }
}

/// One request that wrk or hey repeats.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedCall {
    pub method: String,
    /// Full URL, `http://host:port/path`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Endpoint name in the tables, e.g. `GET /api/v1/quizzes`.
    pub name: String,
}

/// What the tool sends.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolLoad {
    /// wrk, hey: one request, repeated.
    Fixed(FixedCall),
    /// Locust: the journey of `locustfile`, against `host`.
    Journey {
        host: String,
        locustfile: PathBuf,
        /// Think time between tasks, uniform in `[min, max]`.
        think: (Duration, Duration),
    },
}

/// One run by an external tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRun {
    pub tool: Tool,
    /// The executable (default: the tool's name, looked up on PATH).
    pub program: PathBuf,
    pub load: ToolLoad,
    /// Connections (wrk, hey) or users (Locust).
    pub concurrency: usize,
    pub stop: Stop,
    /// wrk's threads (at most one per connection).
    pub threads: usize,
    pub timeout: Duration,
    /// Locust's users started per second (default: all at once).
    pub spawn_rate: Option<f64>,
}

/// Whole seconds, at least 1 (wrk and Locust take no fractions).
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

fn fixed(r: &ToolRun) -> anyhow::Result<&FixedCall> {
    match &r.load {
        ToolLoad::Fixed(c) => Ok(c),
        ToolLoad::Journey { .. } => bail!(
            "{} repeats one request; the journey runs with locust or quizload",
            r.tool.name()
        ),
    }
}

/// A tool whose saved output `quizload import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportTool {
    Wrk,
    Hey,
    Locust,
}

/// Reads a report a tool wrote earlier (wrk, hey: the text report; Locust:
/// `PREFIX_stats.csv`) into quizload's tables; `name` names the endpoint of
/// the single-URL tools.
pub fn import_file(tool: ImportTool, file: &Path, name: &str) -> anyhow::Result<ImportReport> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let source = file.display().to_string();
    Ok(match tool {
        ImportTool::Wrk => wrk::wrk_import(&wrk::parse_wrk(&text)?, name, &source),
        ImportTool::Hey => hey::hey_import(&hey::parse_hey(&text)?, name, &source),
        ImportTool::Locust => locust::locust_import(&locust::parse_locust_stats(&text)?, &source),
    })
}

/// An endpoint row from a tool's figures.
#[allow(clippy::too_many_arguments)]
fn imported_endpoint(
    name: &str,
    requests: u64,
    failures: u64,
    rps: f64,
    latency: LatencySummary,
    errors: ErrorSummary,
    status_codes: std::collections::BTreeMap<u16, u64>,
) -> EndpointSummary {
    let successes = requests.saturating_sub(failures);
    EndpointSummary {
        name: name.to_string(),
        requests,
        responses: requests.saturating_sub(errors.connect + errors.timeout + errors.io),
        successes,
        success_rate: if requests == 0 {
            100.0
        } else {
            successes as f64 * 100.0 / requests as f64
        },
        rps,
        success_rps: if requests == 0 {
            0.0
        } else {
            rps * successes as f64 / requests as f64
        },
        errors,
        status_codes,
        latency_ms: latency,
        service_time_ms: None,
        bytes_received: 0,
        histogram_us: vec![],
    }
}

/// Helpers the tools' tests share.
#[cfg(test)]
mod test_support {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::{FixedCall, Tool, ToolLoad, ToolRun};
    use crate::generator::engine::Stop;

    pub fn run(tool: Tool, load: ToolLoad, stop: Stop) -> ToolRun {
        ToolRun {
            tool,
            program: PathBuf::from(tool.name()),
            load,
            concurrency: 4,
            stop,
            threads: 8,
            timeout: Duration::from_millis(2500),
            spawn_rate: None,
        }
    }

    pub fn get(url: &str) -> ToolLoad {
        ToolLoad::Fixed(FixedCall {
            method: "GET".into(),
            url: url.into(),
            headers: vec![("Cookie".into(), "qb_session=abc".into())],
            body: vec![],
            name: "GET /x".into(),
        })
    }

    pub fn journey() -> ToolLoad {
        ToolLoad::Journey {
            host: "http://127.0.0.1:8000".into(),
            locustfile: PathBuf::from("/repo/loadtests/locustfile.py"),
            think: (Duration::from_millis(500), Duration::from_secs(2)),
        }
    }

    pub fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_hints() {
        let e = missing_tool(
            Tool::Hey,
            Path::new("hey"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(e.to_string().contains("apt-get install hey"), "{e}");
        assert!(Tool::Locust.install_hint().contains("pip install locust"));
        assert!(Tool::Wrk.install_hint().contains("apt-get install wrk"));
    }
}

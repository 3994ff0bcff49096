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
//! The command construction is pure ([`wrk_command`], [`hey_command`],
//! [`locust_command`]); [`run_tool`] runs it in a scratch directory (request
//! bodies, wrk's Lua script, Locust's CSV files) and removes it afterwards.
//! wrk and hey repeat one request, so a scenario that needs a session logs
//! in once first ([`login_session`]) and every connection sends that cookie.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::analysis::report::ImportReport;
use crate::generator::engine::Stop;
use crate::generator::scenarios::{AuthMode, ScenarioKind, SEEDED_PASSWORD, SESSION_COOKIE};
use crate::stats::{EndpointSummary, ErrorSummary, LatencySummary};

/// What wrk's default report says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    /// Average latency, ms.
    pub latency_avg_ms: Option<f64>,
    pub latency_stdev_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// With `wrk --latency`: the 50/75/90/99 % percentiles, ms.
    pub percentiles_ms: Vec<(f64, f64)>,
    /// Non-2xx/3xx responses reported.
    pub non_2xx: u64,
    /// Socket errors: connect, read, write, timeout.
    pub socket_errors: [u64; 4],
}

fn to_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Parses wrk's standard output.
pub fn parse_wrk(text: &str) -> anyhow::Result<WrkResult> {
    let mut rps = None;
    let mut requests = None;
    let mut seconds = None;
    let mut latency = None;
    let mut stdev = None;
    let mut max = None;
    let mut percentiles = Vec::new();
    let mut non_2xx = 0;
    let mut socket = [0u64; 4];
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if line.starts_with("Latency ") && !line.starts_with("Latency Distribution") {
            let f: Vec<&str> = line.split_whitespace().collect();
            latency = f.get(1).and_then(|v| to_ms(v));
            stdev = f.get(2).and_then(|v| to_ms(v));
            max = f.get(3).and_then(|v| to_ms(v));
        } else if let Some((p, v)) = line
            .split_once('%')
            .filter(|(p, _)| p.parse::<f64>().is_ok())
        {
            // `wrk --latency`: "     99%    3.22ms"
            if let (Ok(p), Some(v)) = (p.trim().parse::<f64>(), to_ms(v)) {
                percentiles.push((p, v));
            }
        } else if line.contains("requests in") {
            // "373722 requests in 5.03s, 53.10MB read"
            let mut it = line.split_whitespace();
            requests = it.next().and_then(|n| n.parse().ok());
            seconds = line
                .split("requests in")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(to_ms)
                .map(|ms| ms / 1000.0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in v.split(',').enumerate().take(4) {
                socket[i] = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    let (Some(rps), Some(requests)) = (rps, requests) else {
        bail!("not wrk output (no Requests/sec or request count):\n{text}");
    };
    Ok(WrkResult {
        requests,
        seconds: seconds.unwrap_or(0.0),
        rps,
        latency_avg_ms: latency,
        latency_stdev_ms: stdev,
        latency_max_ms: max,
        percentiles_ms: percentiles,
        non_2xx,
        socket_errors: socket,
    })
}

/// Runs `wrk -t THREADS -c CONNS -d SECONDS URL` and parses its report.
pub fn run_wrk(
    url: &str,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", threads.max(1).min(connections.max(1))))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg(url)
        .output()
        .map_err(|e| missing_tool(Tool::Wrk, Path::new("wrk"), e))?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// hey's text report, in quizload's units (ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeyResult {
    pub rps: f64,
    pub total_s: f64,
    pub latency_ms: crate::stats::LatencySummary,
    pub status_codes: std::collections::BTreeMap<u16, u64>,
    /// Requests that got no response (hey's error distribution).
    pub errors: u64,
}

fn secs_field(line: &str) -> Option<f64> {
    line.split_whitespace().find_map(|t| t.parse::<f64>().ok())
}

/// Parses hey's standard report. Its percentiles come from hey's own
/// bucketing (and from its first million results only).
pub fn parse_hey(text: &str) -> anyhow::Result<HeyResult> {
    let mut r = HeyResult {
        rps: f64::NAN,
        total_s: 0.0,
        latency_ms: crate::stats::LatencySummary::default(),
        status_codes: Default::default(),
        errors: 0,
    };
    let mut section = "";
    for raw in text.lines() {
        let line = raw.trim();
        if line.ends_with(':') && !line.contains('\t') && !line.starts_with('[') {
            section = line;
            continue;
        }
        let ms =
            |l: &str| secs_field(l.split_once(':').map(|x| x.1).unwrap_or("")).map(|s| s * 1000.0);
        match section {
            "Summary:" => {
                if let Some(v) = line.strip_prefix("Total:") {
                    r.total_s = secs_field(v).unwrap_or(0.0);
                } else if line.starts_with("Slowest:") {
                    r.latency_ms.max = ms(line).unwrap_or(0.0);
                } else if line.starts_with("Fastest:") {
                    r.latency_ms.min = ms(line).unwrap_or(0.0);
                } else if line.starts_with("Average:") {
                    r.latency_ms.mean = ms(line).unwrap_or(0.0);
                } else if let Some(v) = line.strip_prefix("Requests/sec:") {
                    r.rps = v.trim().parse().unwrap_or(f64::NAN);
                }
            }
            "Latency distribution:" => {
                // "50% in 0.0069 secs"
                let mut it = line.split_whitespace();
                let (Some(p), Some(_), Some(v)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let v: f64 = v.parse::<f64>().unwrap_or(0.0) * 1000.0;
                match p {
                    "50%" => r.latency_ms.p50 = v,
                    "90%" => r.latency_ms.p90 = v,
                    "95%" => r.latency_ms.p95 = v,
                    "99%" => r.latency_ms.p99 = v,
                    _ => {}
                }
            }
            "Status code distribution:" | "Error distribution:" => {
                // "[200]\t200 responses" / "[10]\tGet ...: connection refused"
                let Some(rest) = line.strip_prefix('[') else {
                    continue;
                };
                let Some((a, b)) = rest.split_once(']') else {
                    continue;
                };
                if section == "Status code distribution:" {
                    let code: u16 = a.parse().unwrap_or(0);
                    let n: u64 = b
                        .split_whitespace()
                        .next()
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0);
                    r.status_codes.insert(code, n);
                } else {
                    r.errors += a.parse::<u64>().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    if r.rps.is_nan() {
        bail!("not hey output (no Requests/sec)");
    }
    r.latency_ms.count = r.status_codes.values().sum();
    Ok(r)
}

/// One row of Locust's `*_stats.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocustRow {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub rps: f64,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parses Locust's `--csv PREFIX` stats file (`PREFIX_stats.csv`): one row
/// per endpoint plus the `Aggregated` row. Locust rounds response times
/// above 100 ms to two significant digits, so its percentiles are coarse.
pub fn parse_locust_stats(text: &str) -> anyhow::Result<Vec<LocustRow>> {
    let mut lines = text.lines();
    let header = csv_fields(lines.next().context("empty Locust stats file")?);
    let col = |name: &str| header.iter().position(|h| h == name);
    let need =
        |name: &str| col(name).with_context(|| format!("Locust stats file has no {name:?} column"));
    let (c_type, c_name, c_req, c_fail) = (
        need("Type")?,
        need("Name")?,
        need("Request Count")?,
        need("Failure Count")?,
    );
    let (c_med, c_avg, c_min, c_max, c_rps) = (
        need("Median Response Time")?,
        need("Average Response Time")?,
        need("Min Response Time")?,
        need("Max Response Time")?,
        need("Requests/s")?,
    );
    let (c90, c95, c99, c999) = (col("90%"), col("95%"), col("99%"), col("99.9%"));
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = csv_fields(line);
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let opt = |i: Option<usize>| {
            i.and_then(|i| f.get(i))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        rows.push(LocustRow {
            method: f.get(c_type).cloned().unwrap_or_default(),
            name: f.get(c_name).cloned().unwrap_or_default(),
            requests: num(c_req) as u64,
            failures: num(c_fail) as u64,
            median_ms: num(c_med),
            mean_ms: num(c_avg),
            min_ms: num(c_min),
            max_ms: num(c_max),
            rps: num(c_rps),
            p90_ms: opt(c90),
            p95_ms: opt(c95),
            p99_ms: opt(c99),
            p999_ms: opt(c999),
        });
    }
    Ok(rows)
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

/// wrk's figures as an endpoint table (`name`: the endpoint's name).
pub fn wrk_import(w: &WrkResult, name: &str, source: &str) -> ImportReport {
    let [connect, read, write, timeout] = w.socket_errors;
    let errors = ErrorSummary {
        total: w.non_2xx + connect + read + write + timeout,
        connect,
        timeout,
        io: read + write,
        protocol: 0,
        status: Default::default(),
    };
    let pct = |q: f64| {
        w.percentiles_ms
            .iter()
            .find(|(p, _)| *p == q)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    let latency = LatencySummary {
        count: w.requests,
        mean: w.latency_avg_ms.unwrap_or(0.0),
        stdev: w.latency_stdev_ms.unwrap_or(0.0),
        max: w.latency_max_ms.unwrap_or(0.0),
        p50: pct(50.0),
        p90: pct(90.0),
        p99: pct(99.0),
        ..LatencySummary::default()
    };
    let all = imported_endpoint(
        name,
        w.requests,
        errors.total,
        w.rps,
        latency,
        errors,
        Default::default(),
    );
    ImportReport {
        tool: "wrk".into(),
        source: source.into(),
        rps: w.rps,
        endpoints: vec![all.clone()],
        all,
        caveat: "wrk is closed-loop only; percentiles only with `wrk --latency` (50/75/90/99: no p95); no minimum; non-2xx responses are not broken down by code".into(),
    }
}

/// hey's figures as an endpoint table.
pub fn hey_import(h: &HeyResult, name: &str, source: &str) -> ImportReport {
    let responses: u64 = h.status_codes.values().sum();
    let failed: std::collections::BTreeMap<u16, u64> = h
        .status_codes
        .iter()
        .filter(|(c, _)| !crate::stats::is_success_status(**c))
        .map(|(c, n)| (*c, *n))
        .collect();
    let errors = ErrorSummary {
        total: failed.values().sum::<u64>() + h.errors,
        io: h.errors,
        status: failed,
        ..ErrorSummary::default()
    };
    let all = imported_endpoint(
        name,
        responses + h.errors,
        errors.total,
        h.rps,
        h.latency_ms.clone(),
        errors,
        h.status_codes.clone(),
    );
    ImportReport {
        tool: "hey".into(),
        source: source.into(),
        rps: h.rps,
        endpoints: vec![all.clone()],
        all,
        caveat: "hey's percentiles come from its first million results; its errors are not classified (counted as io here); its -q rate limit is per worker".into(),
    }
}

fn locust_endpoint(r: &LocustRow, name: &str) -> EndpointSummary {
    imported_endpoint(
        name,
        r.requests,
        r.failures,
        r.rps,
        LatencySummary {
            count: r.requests,
            mean: r.mean_ms,
            min: r.min_ms,
            p50: r.median_ms,
            p90: r.p90_ms.unwrap_or(0.0),
            p95: r.p95_ms.unwrap_or(0.0),
            p99: r.p99_ms.unwrap_or(0.0),
            p999: r.p999_ms.unwrap_or(0.0),
            max: r.max_ms,
            stdev: 0.0,
        },
        ErrorSummary {
            total: r.failures,
            ..ErrorSummary::default()
        },
        Default::default(),
    )
}

/// Locust's stats rows as an endpoint table; its `Aggregated` row is the
/// whole run (summed from the rows when the file has none).
pub fn locust_import(rows: &[LocustRow], source: &str) -> ImportReport {
    let endpoints: Vec<EndpointSummary> = rows
        .iter()
        .filter(|r| r.name != "Aggregated")
        .map(|r| {
            let name = if r.name.starts_with(&r.method) {
                r.name.clone()
            } else {
                format!("{} {}", r.method, r.name)
            };
            locust_endpoint(r, &name)
        })
        .collect();
    let all = match rows.iter().find(|r| r.name == "Aggregated") {
        Some(a) => locust_endpoint(a, "all"),
        None => {
            let requests: u64 = endpoints.iter().map(|e| e.requests).sum();
            let failures: u64 = endpoints.iter().map(|e| e.errors.total).sum();
            let mean = if requests == 0 {
                0.0
            } else {
                endpoints
                    .iter()
                    .map(|e| e.latency_ms.mean * e.requests as f64)
                    .sum::<f64>()
                    / requests as f64
            };
            imported_endpoint(
                "all",
                requests,
                failures,
                endpoints.iter().map(|e| e.rps).sum(),
                LatencySummary {
                    count: requests,
                    mean,
                    min: Some(
                        endpoints
                            .iter()
                            .map(|e| e.latency_ms.min)
                            .fold(f64::INFINITY, f64::min),
                    )
                    .filter(|m| m.is_finite())
                    .unwrap_or(0.0),
                    max: endpoints
                        .iter()
                        .map(|e| e.latency_ms.max)
                        .fold(0.0, f64::max),
                    ..LatencySummary::default()
                },
                ErrorSummary {
                    total: failures,
                    ..ErrorSummary::default()
                },
                Default::default(),
            )
        }
    };
    ImportReport {
        tool: "locust".into(),
        source: source.into(),
        rps: all.rps,
        all,
        endpoints,
        caveat: "Locust rounds response times above 100 ms to two significant digits and runs a closed model only; failures are not broken down by kind".into(),
    }
}

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

/// A Lua string literal of any bytes (wrk's script).
fn lua_string(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\{c:03}"));
        }
    }
    s.push('"');
    s
}

/// wrk's Lua script for a method other than GET or a body (`None` when the
/// command line alone says it).
pub fn wrk_script(call: &FixedCall) -> Option<String> {
    if call.method.eq_ignore_ascii_case("GET") && call.body.is_empty() {
        return None;
    }
    let mut s = format!("wrk.method = {}\n", lua_string(call.method.as_bytes()));
    if !call.body.is_empty() {
        s.push_str(&format!("wrk.body = {}\n", lua_string(&call.body)));
        if !call
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            s.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        }
    }
    Some(s)
}

/// wrk's command line: `wrk -tT -cC -dDs --timeout Ns --latency [-H ..] [-s script] URL`.
/// wrk runs for a duration only.
pub fn wrk_command(r: &ToolRun, script: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let call = fixed(r)?;
    let Stop::Duration(d) = r.stop else {
        bail!("wrk runs for a duration (-d), not a request count (-n)");
    };
    let mut a = vec![
        r.program.display().to_string(),
        format!("-t{}", r.threads.clamp(1, r.concurrency.max(1))),
        format!("-c{}", r.concurrency),
        format!("-d{}s", whole_secs(d)),
        "--timeout".into(),
        format!("{}s", whole_secs(r.timeout)),
        "--latency".into(),
    ];
    for (k, v) in &call.headers {
        a.push("-H".into());
        a.push(format!("{k}: {v}"));
    }
    if let Some(p) = script {
        a.push("-s".into());
        a.push(p.display().to_string());
    }
    a.push(call.url.clone());
    Ok(a)
}

/// hey's command line: `hey -c C (-n N | -z D) -t T -m M [-T type -D body] [-H ..] URL`.
pub fn hey_command(r: &ToolRun, body_file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let call = fixed(r)?;
    let mut a = vec![
        r.program.display().to_string(),
        "-c".into(),
        r.concurrency.to_string(),
    ];
    match r.stop {
        Stop::Requests(n) => {
            if n < r.concurrency as u64 {
                bail!(
                    "hey cannot send fewer requests ({n}) than its concurrency ({})",
                    r.concurrency
                );
            }
            a.push("-n".into());
            a.push(n.to_string());
        }
        Stop::Duration(d) => {
            a.push("-z".into());
            a.push(format!("{}ms", d.as_millis().max(1)));
        }
    }
    a.push("-t".into());
    a.push(whole_secs(r.timeout).to_string());
    a.push("-m".into());
    a.push(call.method.to_uppercase());
    if !call.body.is_empty() {
        let Some(f) = body_file else {
            bail!("hey needs the request body in a file");
        };
        a.push("-T".into());
        a.push("application/json".into());
        a.push("-D".into());
        a.push(f.display().to_string());
    }
    for (k, v) in &call.headers {
        a.push("-H".into());
        a.push(format!("{k}: {v}"));
    }
    a.push(call.url.clone());
    Ok(a)
}

/// Locust's headless command line: `locust -f FILE --headless -u N -r R -t Ts
/// --csv PREFIX --host URL ...`. Locust runs for a duration only.
pub fn locust_command(r: &ToolRun, csv_prefix: &Path) -> anyhow::Result<Vec<String>> {
    let ToolLoad::Journey {
        host, locustfile, ..
    } = &r.load
    else {
        bail!("locust runs the journey of locustfile.py (--scenario journey), not a single URL; use hey or wrk for that");
    };
    let Stop::Duration(d) = r.stop else {
        bail!("locust runs for a duration (-d), not a request count (-n)");
    };
    let rate = r.spawn_rate.unwrap_or(r.concurrency as f64);
    Ok(vec![
        r.program.display().to_string(),
        "-f".into(),
        locustfile.display().to_string(),
        "--headless".into(),
        "-u".into(),
        r.concurrency.to_string(),
        "-r".into(),
        format!("{rate}"),
        "-t".into(),
        format!("{}s", whole_secs(d)),
        "--csv".into(),
        csv_prefix.display().to_string(),
        "--host".into(),
        host.clone(),
        "--only-summary".into(),
        "--exit-code-on-error".into(),
        "0".into(),
        "--loglevel".into(),
        "WARNING".into(),
    ])
}

/// Environment of the Locust run: the journey's think time, read by
/// `locustfile.py`.
pub fn locust_env(r: &ToolRun) -> Vec<(String, String)> {
    match &r.load {
        ToolLoad::Journey { think, .. } => vec![
            (
                "QUIZLOAD_THINK_MIN".into(),
                think.0.as_secs_f64().to_string(),
            ),
            (
                "QUIZLOAD_THINK_MAX".into(),
                think.1.as_secs_f64().to_string(),
            ),
        ],
        ToolLoad::Fixed(_) => vec![],
    }
}

/// A command line as a shell would read it back (arguments with spaces or
/// quotes single-quoted).
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command line [`run_tool`] will run (its scratch files named
/// relative to its scratch directory), for display.
pub fn command_preview(r: &ToolRun) -> anyhow::Result<String> {
    let cmd = match r.tool {
        Tool::Quizload => bail!("quizload's own runs have no external command"),
        Tool::Wrk => {
            let script = wrk_script(fixed(r)?).map(|_| Path::new("request.lua"));
            wrk_command(r, script)?
        }
        Tool::Hey => {
            let body = (!fixed(r)?.body.is_empty()).then(|| Path::new("body"));
            hey_command(r, body)?
        }
        Tool::Locust => locust_command(r, Path::new("locust"))?,
    };
    Ok(shell_join(&cmd))
}

/// What a tool's run gave.
#[derive(Clone, Debug)]
pub struct ToolOutcome {
    pub report: ImportReport,
    /// The command line run.
    pub command: Vec<String>,
    /// Wall time of the tool's process.
    pub elapsed: Duration,
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tool: Tool) -> anyhow::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "quizload-{}-{}-{}",
            tool.name(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        Ok(Self(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Launches the tool, waits for it and parses its report.
pub fn run_tool(r: &ToolRun) -> anyhow::Result<ToolOutcome> {
    let scratch = Scratch::new(r.tool)?;
    let (command, env, csv) = match r.tool {
        Tool::Quizload => bail!("quizload's own runs go through the engine, not run_tool"),
        Tool::Wrk => {
            let script = match wrk_script(fixed(r)?) {
                Some(text) => {
                    let p = scratch.0.join("request.lua");
                    std::fs::write(&p, text)?;
                    Some(p)
                }
                None => None,
            };
            (wrk_command(r, script.as_deref())?, vec![], None)
        }
        Tool::Hey => {
            let call = fixed(r)?;
            let body = if call.body.is_empty() {
                None
            } else {
                let p = scratch.0.join("body");
                std::fs::write(&p, &call.body)?;
                Some(p)
            };
            (hey_command(r, body.as_deref())?, vec![], None)
        }
        Tool::Locust => {
            let prefix = scratch.0.join("locust");
            (locust_command(r, &prefix)?, locust_env(r), Some(prefix))
        }
    };
    let started = Instant::now();
    let out = Command::new(&command[0])
        .args(&command[1..])
        .envs(env)
        .output()
        .map_err(|e| missing_tool(r.tool, &r.program, e))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}\n{}",
            r.tool.name(),
            out.status,
            shell_join(&command),
            stderr.trim_end()
        );
    }
    let source = shell_join(&command);
    let report = match (r.tool, &r.load) {
        (Tool::Wrk, ToolLoad::Fixed(c)) => wrk_import(
            &parse_wrk(&stdout).with_context(|| stderr.to_string())?,
            &c.name,
            &source,
        ),
        (Tool::Hey, ToolLoad::Fixed(c)) => hey_import(
            &parse_hey(&stdout).with_context(|| format!("{stdout}\n{stderr}"))?,
            &c.name,
            &source,
        ),
        (Tool::Locust, _) => {
            let p = PathBuf::from(format!("{}_stats.csv", csv.expect("locust csv").display()));
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("locust wrote no {}:\n{stderr}", p.display()))?;
            locust_import(&parse_locust_stats(&text)?, &source)
        }
        _ => unreachable!("checked by the command builders"),
    };
    Ok(ToolOutcome {
        report,
        command,
        elapsed,
    })
}

/// The executable of a tool: `bin` if given, else its name on PATH.
pub fn tool_program(tool: Tool, bin: Option<&Path>) -> PathBuf {
    bin.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(tool.name()))
}

/// Where `locustfile.py` is: `loadtests/locustfile.py` under `root`, else
/// the one next to this crate's sources.
pub fn default_locustfile(root: &Path) -> PathBuf {
    let local = root.join("loadtests").join("locustfile.py");
    if local.is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("locustfile.py")
    }
}

/// Logs in `student{n}` and returns the session token (the `qb_session`
/// cookie's value).
pub fn login_session(addr: std::net::SocketAddr, student: usize) -> anyhow::Result<String> {
    let body = format!(r#"{{"username":"student{student}","password":"{SEEDED_PASSWORD}"}}"#);
    let (status, text) = crate::generator::http::blocking::http_request(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(30),
    )?;
    if status != 200 {
        bail!("login as student{student} failed with {status}: {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("login answer is not JSON")?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .context("login answer has no token")
}

/// The one request of a single-request quizbench scenario, for wrk and hey:
/// the first quiz, the first grade text; `session` (from [`login_session`])
/// goes in the cookie or bearer header. The journey has no single request.
pub fn scenario_call(
    kind: ScenarioKind,
    base: &str,
    session: Option<&str>,
    auth: AuthMode,
    static_path: &str,
) -> anyhow::Result<FixedCall> {
    let (method, path, body): (&str, String, Vec<u8>) = match kind {
        ScenarioKind::Healthz => ("GET", "/healthz".into(), vec![]),
        ScenarioKind::Login => (
            "POST",
            "/api/v1/auth/login".into(),
            format!(r#"{{"username":"student1","password":"{SEEDED_PASSWORD}"}}"#).into_bytes(),
        ),
        ScenarioKind::Quizzes => ("GET", "/api/v1/quizzes".into(), vec![]),
        ScenarioKind::Quiz => ("GET", "/api/v1/quizzes/1".into(), vec![]),
        ScenarioKind::SelectOptions => ("GET", "/api/v1/students/select-options".into(), vec![]),
        ScenarioKind::Grade => (
            "POST",
            "/api/v1/grade".into(),
            serde_json::json!({
                "text": "A process is a program in execution with its own address space."
            })
            .to_string()
            .into_bytes(),
        ),
        ScenarioKind::Static => ("GET", static_path.to_string(), vec![]),
        ScenarioKind::Index => ("GET", "/".into(), vec![]),
        ScenarioKind::Journey => bail!(
            "the journey is not a single request: run it with --tool locust (locustfile.py) or quizload"
        ),
    };
    let mut headers = Vec::new();
    if !body.is_empty() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    if let Some(tok) = session {
        headers.push(match auth {
            AuthMode::Cookie => ("Cookie".into(), format!("{SESSION_COOKIE}={tok}")),
            AuthMode::Bearer => ("Authorization".into(), format!("Bearer {tok}")),
        });
    }
    let name = match kind {
        ScenarioKind::Quiz => "GET /api/v1/quizzes/{id}".to_string(),
        _ => format!("{method} {path}"),
    };
    Ok(FixedCall {
        method: method.into(),
        url: format!("{}{path}", base.trim_end_matches('/')),
        headers,
        body,
        name,
    })
}

/// Whether a scenario's requests need a session.
pub fn needs_session(kind: ScenarioKind) -> bool {
    !matches!(
        kind,
        ScenarioKind::Healthz | ScenarioKind::Login | ScenarioKind::Static | ScenarioKind::Index
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hey_report() {
        let text = "\nSummary:\n  Total:\t0.0528 secs\n  Slowest:\t0.0213 secs\n  Fastest:\t0.0003 secs\n  Average:\t0.0079 secs\n  Requests/sec:\t3786.5693\n  \n  Total data:\t1800 bytes\n  Size/request:\t9 bytes\n\nResponse time histogram:\n  0.000 [1]\t|\n\nLatency distribution:\n  10% in 0.0011 secs\n  50% in 0.0069 secs\n  90% in 0.0157 secs\n  95% in 0.0178 secs\n  99% in 0.0206 secs\n\nDetails (average, fastest, slowest):\n  DNS+dialup:\t0.0021 secs, 0.0003 secs, 0.0213 secs\n\nStatus code distribution:\n  [200]\t190 responses\n  [500]\t10 responses\n\nError distribution:\n  [3]\tGet \"http://x\": dial tcp: connect: connection refused\n";
        let r = parse_hey(text).unwrap();
        assert_eq!(r.rps, 3786.5693);
        assert!((r.latency_ms.mean - 7.9).abs() < 1e-9);
        assert!((r.latency_ms.max - 21.3).abs() < 1e-9);
        assert!((r.latency_ms.p50 - 6.9).abs() < 1e-9);
        assert!((r.latency_ms.p99 - 20.6).abs() < 1e-9);
        assert_eq!(r.status_codes.get(&500), Some(&10));
        assert_eq!(r.errors, 3);
        assert_eq!(r.latency_ms.count, 200);
        assert!(parse_hey("nothing").is_err());
    }

    #[test]
    fn parses_locust_stats() {
        let text = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n\
GET,GET /api/v1/quizzes,120,0,10,12.5,3,140,2048,4.0,0.0,10,11,12,13,20,30,90,140,140,140,140\n\
POST,\"POST /api/v1/quizzes/{id}/attempts\",30,2,1500,1800.2,900,5000,64,1.0,0.1,1500,1600,1700,1800,2500,3000,4000,5000,5000,5000,5000\n\
,Aggregated,150,2,11,371.6,3,5000,1650,5.0,0.1,11,12,13,14,1500,2500,3000,5000,5000,5000,5000\n";
        let rows = parse_locust_stats(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].name, "POST /api/v1/quizzes/{id}/attempts");
        assert_eq!((rows[1].requests, rows[1].failures), (30, 2));
        assert_eq!(rows[1].p95_ms, Some(3000.0));
        assert_eq!(rows[2].name, "Aggregated");
        assert!(parse_locust_stats("a,b\n").is_err());
    }

    fn run(tool: Tool, load: ToolLoad, stop: Stop) -> ToolRun {
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

    fn get(url: &str) -> ToolLoad {
        ToolLoad::Fixed(FixedCall {
            method: "GET".into(),
            url: url.into(),
            headers: vec![("Cookie".into(), "qb_session=abc".into())],
            body: vec![],
            name: "GET /x".into(),
        })
    }

    fn journey() -> ToolLoad {
        ToolLoad::Journey {
            host: "http://127.0.0.1:8000".into(),
            locustfile: PathBuf::from("/repo/loadtests/locustfile.py"),
            think: (Duration::from_millis(500), Duration::from_secs(2)),
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builds_hey_commands() {
        let d = Stop::Duration(Duration::from_millis(1500));
        let r = run(Tool::Hey, get("http://h:1/x"), Stop::Requests(100));
        assert_eq!(
            hey_command(&r, None).unwrap(),
            strs(&[
                "hey",
                "-c",
                "4",
                "-n",
                "100",
                "-t",
                "3",
                "-m",
                "GET",
                "-H",
                "Cookie: qb_session=abc",
                "http://h:1/x"
            ])
        );
        let r = run(Tool::Hey, get("http://h:1/x"), d);
        let c = hey_command(&r, None).unwrap();
        assert_eq!(&c[3..5], &strs(&["-z", "1500ms"]), "a duration is -z");
        assert!(!c.contains(&"-n".to_string()));
        // a POST body goes through a file, with a JSON content type
        let mut post = run(Tool::Hey, get("http://h:1/login"), Stop::Requests(8));
        if let ToolLoad::Fixed(c) = &mut post.load {
            c.method = "post".into();
            c.body = br#"{"a":1}"#.to_vec();
        }
        let c = hey_command(&post, Some(Path::new("/tmp/body"))).unwrap();
        let at = |flag: &str| c[c.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(at("-m"), "POST");
        assert_eq!(at("-T"), "application/json");
        assert_eq!(at("-D"), "/tmp/body");
        assert!(hey_command(&post, None).is_err(), "the body needs a file");
        // hey refuses -n below -c; say so before running it
        let few = run(Tool::Hey, get("http://h:1/x"), Stop::Requests(3));
        assert!(hey_command(&few, None)
            .unwrap_err()
            .to_string()
            .contains("fewer requests"));
        assert!(hey_command(&run(Tool::Hey, journey(), d), None).is_err());
    }

    #[test]
    fn builds_wrk_commands() {
        let d = Stop::Duration(Duration::from_millis(1500));
        let r = run(Tool::Wrk, get("http://h:1/x"), d);
        assert_eq!(
            wrk_command(&r, None).unwrap(),
            strs(&[
                "wrk",
                "-t4",
                "-c4",
                "-d2s",
                "--timeout",
                "3s",
                "--latency",
                "-H",
                "Cookie: qb_session=abc",
                "http://h:1/x"
            ]),
            "threads at most one per connection; whole seconds, rounded up"
        );
        assert!(wrk_command(
            &run(Tool::Wrk, get("http://h:1/x"), Stop::Requests(10)),
            None
        )
        .unwrap_err()
        .to_string()
        .contains("duration"));
        let ToolLoad::Fixed(mut call) = get("http://h:1/x") else {
            unreachable!()
        };
        assert_eq!(wrk_script(&call), None, "a plain GET needs no script");
        call.method = "POST".into();
        call.body = b"{\"t\":\"a \\ b\"}\n".to_vec();
        let script = wrk_script(&call).unwrap();
        assert_eq!(
            script,
            "wrk.method = \"POST\"\nwrk.body = \"{\\034t\\034:\\034a \\092 b\\034}\\010\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        );
        let mut r = run(Tool::Wrk, ToolLoad::Fixed(call), d);
        r.threads = 2;
        let c = wrk_command(&r, Some(Path::new("/s/request.lua"))).unwrap();
        assert_eq!(
            &c[c.len() - 3..],
            &strs(&["-s", "/s/request.lua", "http://h:1/x"])
        );
        assert_eq!(c[1], "-t2");
    }

    #[test]
    fn builds_locust_commands() {
        let mut r = run(
            Tool::Locust,
            journey(),
            Stop::Duration(Duration::from_secs(90)),
        );
        r.program = PathBuf::from("/venv/bin/locust");
        let c = locust_command(&r, Path::new("/tmp/s/locust")).unwrap();
        assert_eq!(
            c,
            strs(&[
                "/venv/bin/locust",
                "-f",
                "/repo/loadtests/locustfile.py",
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "90s",
                "--csv",
                "/tmp/s/locust",
                "--host",
                "http://127.0.0.1:8000",
                "--only-summary",
                "--exit-code-on-error",
                "0",
                "--loglevel",
                "WARNING"
            ]),
            "without a spawn rate every user starts at once"
        );
        r.spawn_rate = Some(2.5);
        let c = locust_command(&r, Path::new("p")).unwrap();
        assert_eq!(c[c.iter().position(|a| a == "-r").unwrap() + 1], "2.5");
        assert_eq!(
            locust_env(&r),
            vec![
                ("QUIZLOAD_THINK_MIN".to_string(), "0.5".to_string()),
                ("QUIZLOAD_THINK_MAX".to_string(), "2".to_string())
            ]
        );
        let n = run(Tool::Locust, journey(), Stop::Requests(10));
        assert!(
            locust_command(&n, Path::new("p")).is_err(),
            "Locust has no request count"
        );
        let url = run(
            Tool::Locust,
            get("http://h/"),
            Stop::Duration(Duration::from_secs(1)),
        );
        assert!(locust_command(&url, Path::new("p"))
            .unwrap_err()
            .to_string()
            .contains("journey"));
        assert!(command_preview(&r)
            .unwrap()
            .contains(" --csv locust --host "));
    }

    #[test]
    fn scenario_calls_carry_the_session() {
        let c = scenario_call(
            ScenarioKind::SelectOptions,
            "http://127.0.0.1:8000/",
            Some("tok"),
            AuthMode::Cookie,
            "/static/style.css",
        )
        .unwrap();
        assert_eq!(
            c.url,
            "http://127.0.0.1:8000/api/v1/students/select-options"
        );
        assert_eq!(c.headers, vec![("Cookie".into(), "qb_session=tok".into())]);
        assert_eq!(c.name, "GET /api/v1/students/select-options");
        let g = scenario_call(
            ScenarioKind::Grade,
            "http://h",
            Some("t"),
            AuthMode::Bearer,
            "",
        )
        .unwrap();
        assert_eq!(g.method, "POST");
        assert!(g
            .headers
            .contains(&("Authorization".into(), "Bearer t".into())));
        assert!(g
            .headers
            .contains(&("Content-Type".into(), "application/json".into())));
        let body: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert!(body["text"].is_string());
        let l = scenario_call(ScenarioKind::Login, "http://h", None, AuthMode::Cookie, "").unwrap();
        let body: serde_json::Value = serde_json::from_slice(&l.body).unwrap();
        assert_eq!(body["username"], "student1");
        assert_eq!(body["password"], SEEDED_PASSWORD);
        let q = scenario_call(ScenarioKind::Quiz, "http://h", None, AuthMode::Cookie, "").unwrap();
        assert_eq!(
            (q.url.as_str(), q.name.as_str()),
            ("http://h/api/v1/quizzes/1", "GET /api/v1/quizzes/{id}")
        );
        let s = scenario_call(
            ScenarioKind::Static,
            "http://h",
            None,
            AuthMode::Cookie,
            "/static/a.js",
        )
        .unwrap();
        assert_eq!(s.url, "http://h/static/a.js");
        assert!(scenario_call(
            ScenarioKind::Journey,
            "http://h",
            None,
            AuthMode::Cookie,
            ""
        )
        .is_err());
        assert!(needs_session(ScenarioKind::Quizzes) && !needs_session(ScenarioKind::Login));
    }

    #[test]
    fn quotes_and_hints() {
        assert_eq!(
            shell_join(&strs(&[
                "hey",
                "-H",
                "Cookie: a=b",
                "it's",
                "http://h:1/x?a=1"
            ])),
            r"hey -H 'Cookie: a=b' 'it'\''s' 'http://h:1/x?a=1'"
        );
        let e = missing_tool(
            Tool::Hey,
            Path::new("hey"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(e.to_string().contains("apt-get install hey"), "{e}");
        assert!(Tool::Locust.install_hint().contains("pip install locust"));
        assert!(Tool::Wrk.install_hint().contains("apt-get install wrk"));
    }

    #[test]
    fn tool_figures_fill_the_tables() {
        let text = "Summary:\n  Total:\t1.0 secs\n  Slowest:\t0.0300 secs\n  Fastest:\t0.0010 secs\n  Average:\t0.0100 secs\n  Requests/sec:\t100.0\n\nLatency distribution:\n  50% in 0.0090 secs\n  95% in 0.0200 secs\n\nStatus code distribution:\n  [200]\t95 responses\n  [503]\t5 responses\n";
        let h = hey_import(&parse_hey(text).unwrap(), "GET /x", "hey ...");
        assert_eq!(h.all.requests, 100);
        assert_eq!(h.all.successes, 95);
        assert_eq!(h.all.errors.status.get(&503), Some(&5));
        assert_eq!(h.all.success_rate, 95.0);
        assert!((h.all.latency_ms.p95 - 20.0).abs() < 1e-9);
        assert_eq!(h.endpoints, vec![h.all.clone()]);
        let rows = parse_locust_stats(
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s\n\
GET,/a,10,1,5,6,1,20,0,2.0\nPOST,/b,30,0,7,8,2,40,0,6.0\n",
        )
        .unwrap();
        let l = locust_import(&rows, "x");
        assert_eq!(l.endpoints.len(), 2);
        assert_eq!(l.endpoints[0].name, "GET /a");
        // no Aggregated row: summed, mean weighted by requests
        assert_eq!((l.all.requests, l.all.errors.total), (40, 1));
        assert_eq!(l.rps, 8.0);
        assert!((l.all.latency_ms.mean - 7.5).abs() < 1e-9);
        assert_eq!((l.all.latency_ms.min, l.all.latency_ms.max), (1.0, 40.0));
    }

    #[test]
    fn parses_wrk_report() {
        let text = "Running 5s test @ http://127.0.0.1:18080/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.95ms    1.27ms  12.30ms   87.36%
    Req/Sec    37.41k     6.71k   51.54k    70.00%
  Latency Distribution
     50%  638.00us
     75%    1.02ms
     90%    2.00ms
     99%    6.12ms
  373722 requests in 5.03s, 53.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:  74270.49
Transfer/sec:     10.55MB
";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 373_722);
        assert_eq!(r.rps, 74_270.49);
        assert!((r.seconds - 5.03).abs() < 1e-9);
        assert_eq!(r.latency_avg_ms, Some(0.95));
        assert_eq!(r.latency_max_ms, Some(12.3));
        assert_eq!(
            r.percentiles_ms,
            vec![(50.0, 0.638), (75.0, 1.02), (90.0, 2.0), (99.0, 6.12)]
        );
        assert_eq!(r.non_2xx, 12);
        assert_eq!(r.socket_errors, [0, 2, 0, 7]);
        assert!(parse_wrk("hello").is_err());
        assert_eq!(to_ms("250.00us"), Some(0.25));
        assert_eq!(to_ms("1.50s"), Some(1500.0));
    }
}

//! Locust: its headless command line ([`locust_command`]) and environment
//! (the journey's think time, read by `locustfile.py`), the parser of its
//! `--csv` stats file ([`parse_locust_stats`]) and the importer into
//! quizload's tables ([`locust_import`]). Locust runs the journey of
//! `locustfile.py`, closed model, for a duration only. It builds and
//! parses; it does not spawn Locust (the process module does).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::{imported_endpoint, whole_secs, ToolLoad, ToolRun};
use crate::analysis::report::ImportReport;
use crate::generator::engine::Stop;
use crate::stats::{EndpointSummary, ErrorSummary, LatencySummary};

/// One row of Locust's `*_stats.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocustRow {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    /// Its response times; a percentile column the file lacks is 0 and
    /// Locust gives no standard deviation.
    pub latency_ms: LatencySummary,
}

/// Parses Locust's `--csv PREFIX` stats file (`PREFIX_stats.csv`): one row
/// per endpoint plus the `Aggregated` row. Locust rounds response times
/// above 100 ms to two significant digits, so its percentiles are coarse.
pub fn parse_locust_stats(text: &str) -> anyhow::Result<Vec<LocustRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .context("unreadable Locust stats file")?
        .clone();
    if header.is_empty() {
        bail!("empty Locust stats file");
    }
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
    for record in reader.records() {
        let f = record.context("malformed Locust stats row")?;
        if f.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let opt = |i: Option<usize>| {
            i.and_then(|i| f.get(i))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let num = |i: usize| opt(Some(i)).unwrap_or(0.0);
        let text = |i: usize| f.get(i).unwrap_or_default().to_string();
        let requests = num(c_req) as u64;
        let pct = |i: Option<usize>| opt(i).unwrap_or(0.0);
        rows.push(LocustRow {
            method: text(c_type),
            name: text(c_name),
            requests,
            failures: num(c_fail) as u64,
            rps: num(c_rps),
            latency_ms: LatencySummary {
                count: requests,
                mean: num(c_avg),
                stdev: 0.0,
                min: num(c_min),
                p50: num(c_med),
                p90: pct(c90),
                p95: pct(c95),
                p99: pct(c99),
                p999: pct(c999),
                max: num(c_max),
            },
        });
    }
    Ok(rows)
}

fn locust_endpoint(r: &LocustRow, name: &str) -> EndpointSummary {
    imported_endpoint(
        name,
        r.requests,
        r.failures,
        r.rps,
        r.latency_ms.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::command_preview;
    use crate::tools::test_support::{get, journey, run, strs};
    use crate::tools::Tool;
    use std::time::Duration;

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
        assert_eq!(rows[1].latency_ms.p95, 3000.0);
        assert_eq!(
            (rows[1].latency_ms.p50, rows[1].latency_ms.mean),
            (1500.0, 1800.2)
        );
        assert_eq!(rows[2].name, "Aggregated");
        assert!(parse_locust_stats("a,b\n").is_err());
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
    fn locust_figures_fill_the_tables() {
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
}

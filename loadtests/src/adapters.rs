//! Adapters for the load tools users already know: run them and parse their
//! output into quizload's own shapes, so their results print in the same
//! tables (`quizload import`). wrk is also run directly by
//! `quizload calibrate --vs-wrk` to check the generator against wrk on the
//! same target; hey's text report and Locust's `--csv` stats file are parsed.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

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
        .context("cannot run wrk (is it installed? apt-get install wrk)")?;
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

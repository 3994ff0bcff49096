//! hey: its command line ([`hey_command`], the body through a file), the
//! parser of its text report ([`parse_hey`]) and the importer into
//! quizload's tables ([`hey_import`]). hey's percentiles come from its own
//! bucketing, and its `-q` rate limit is per worker. It builds and parses;
//! it does not spawn hey (the process module does).

use std::path::Path;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::{fixed, imported_endpoint, whole_secs, ToolRun};
use crate::analysis::report::ImportReport;
use crate::generator::engine::Stop;
use crate::stats::{failed_statuses, ConnectionErrors, ErrorSummary, LatencySummary};

/// hey's text report, in quizload's units (ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeyResult {
    pub rps: f64,
    pub total_s: f64,
    pub latency_ms: LatencySummary,
    pub status_codes: std::collections::BTreeMap<u16, u64>,
    /// Requests that got no response (hey's error distribution).
    pub errors: u64,
    /// The same, by cause (read from the error messages).
    #[serde(default)]
    pub connection: ConnectionErrors,
}

/// Adds `n` errors to `c` under the cause a Go error message names.
fn count_error(c: &mut ConnectionErrors, message: &str, n: u64) {
    let m = message.to_ascii_lowercase();
    let slot = if m.contains("connection refused") {
        &mut c.refused
    } else if m.contains("connection reset")
        || m.contains("broken pipe")
        || m.contains("eof")
        || m.contains("server closed")
    {
        &mut c.reset
    } else if m.contains("timeout") || m.contains("deadline exceeded") {
        &mut c.timeout
    } else if m.contains("no such host") || m.contains("lookup ") {
        &mut c.dns
    } else {
        &mut c.other
    };
    *slot += n;
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
        latency_ms: LatencySummary::default(),
        status_codes: Default::default(),
        errors: 0,
        connection: ConnectionErrors::default(),
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
                    let n = a.parse::<u64>().unwrap_or(0);
                    r.errors += n;
                    count_error(&mut r.connection, b, n);
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

/// hey's figures as an endpoint table.
pub fn hey_import(h: &HeyResult, name: &str, source: &str) -> ImportReport {
    let responses: u64 = h.status_codes.values().sum();
    let failed = failed_statuses(&h.status_codes);
    let errors = ErrorSummary {
        total: failed.values().sum::<u64>() + h.errors,
        io: h.errors,
        status: failed,
        connection: h.connection.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::test_support::{get, journey, run, strs};
    use crate::tools::{Tool, ToolLoad};
    use std::time::Duration;

    #[test]
    fn parses_hey_report() {
        let text = "\nSummary:\n  Total:\t0.0528 secs\n  Slowest:\t0.0213 secs\n  Fastest:\t0.0003 secs\n  Average:\t0.0079 secs\n  Requests/sec:\t3786.5693\n  \n  Total data:\t1800 bytes\n  Size/request:\t9 bytes\n\nResponse time histogram:\n  0.000 [1]\t|\n\nLatency distribution:\n  10% in 0.0011 secs\n  50% in 0.0069 secs\n  90% in 0.0157 secs\n  95% in 0.0178 secs\n  99% in 0.0206 secs\n\nDetails (average, fastest, slowest):\n  DNS+dialup:\t0.0021 secs, 0.0003 secs, 0.0213 secs\n\nStatus code distribution:\n  [200]\t190 responses\n  [500]\t10 responses\n\nError distribution:\n  [3]\tGet \"http://x\": dial tcp: connect: connection refused\n  [2]\tGet \"http://x\": read tcp 127.0.0.1:5->127.0.0.1:8: read: connection reset by peer\n  [1]\tGet \"http://x\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)\n  [4]\tGet \"http://nohost:1\": dial tcp: lookup nohost on 127.0.0.53:53: no such host\n";
        let r = parse_hey(text).unwrap();
        assert_eq!(r.rps, 3786.5693);
        assert!((r.latency_ms.mean - 7.9).abs() < 1e-9);
        assert!((r.latency_ms.max - 21.3).abs() < 1e-9);
        assert!((r.latency_ms.p50 - 6.9).abs() < 1e-9);
        assert!((r.latency_ms.p99 - 20.6).abs() < 1e-9);
        assert_eq!(r.status_codes.get(&500), Some(&10));
        assert_eq!(r.errors, 10);
        assert_eq!(
            r.connection,
            ConnectionErrors {
                refused: 3,
                reset: 2,
                timeout: 1,
                dns: 4,
                other: 0
            }
        );
        assert_eq!(r.latency_ms.count, 200);
        assert!(parse_hey("nothing").is_err());
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
    fn tool_figures_fill_the_tables() {
        let text = "Summary:\n  Total:\t1.0 secs\n  Slowest:\t0.0300 secs\n  Fastest:\t0.0010 secs\n  Average:\t0.0100 secs\n  Requests/sec:\t100.0\n\nLatency distribution:\n  50% in 0.0090 secs\n  95% in 0.0200 secs\n\nStatus code distribution:\n  [200]\t95 responses\n  [503]\t5 responses\n";
        let h = hey_import(&parse_hey(text).unwrap(), "GET /x", "hey ...");
        assert_eq!(h.all.requests, 100);
        assert_eq!(h.all.successes, 95);
        assert_eq!(h.all.errors.status.get(&503), Some(&5));
        assert_eq!(h.all.success_rate, 95.0);
        assert!((h.all.latency_ms.p95 - 20.0).abs() < 1e-9);
        assert_eq!(h.endpoints, vec![h.all.clone()]);
    }
}

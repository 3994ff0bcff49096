//! wrk: its command line ([`wrk_command`], a Lua script for a method other
//! than GET or a body), the parser of its report ([`parse_wrk`]) and the
//! importer into quizload's tables ([`wrk_import`]), and the plain GET of
//! `calibrate --vs-wrk` ([`plain_command`]). wrk runs for a duration only.
//! It builds and parses; it does not spawn wrk (the process module does).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::{fixed, imported_endpoint, whole_secs, FixedCall, ToolRun};
use crate::analysis::report::ImportReport;
use crate::generator::engine::Stop;
use crate::stats::{ConnectionErrors, ErrorSummary, LatencySummary};

/// What wrk's default report says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    /// Its mean, standard deviation and maximum; the 50/90/99 %
    /// percentiles with `wrk --latency` (its 75 % has no place, and it
    /// gives no minimum, p95 or p99.9): 0 where wrk did not say.
    pub latency_ms: LatencySummary,
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
    let mut latency = LatencySummary::default();
    let mut non_2xx = 0;
    let mut socket = [0u64; 4];
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if line.starts_with("Latency ") && !line.starts_with("Latency Distribution") {
            let f: Vec<&str> = line.split_whitespace().collect();
            let ms = |i: usize| f.get(i).and_then(|v| to_ms(v)).unwrap_or(0.0);
            (latency.mean, latency.stdev, latency.max) = (ms(1), ms(2), ms(3));
        } else if let Some((p, v)) = line
            .split_once('%')
            .filter(|(p, _)| p.parse::<f64>().is_ok())
        {
            // `wrk --latency`: "     99%    3.22ms"
            let slot = match p {
                "50" => &mut latency.p50,
                "90" => &mut latency.p90,
                "99" => &mut latency.p99,
                _ => continue,
            };
            *slot = to_ms(v).unwrap_or(0.0);
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
    latency.count = requests;
    Ok(WrkResult {
        requests,
        seconds: seconds.unwrap_or(0.0),
        rps,
        latency_ms: latency,
        non_2xx,
        socket_errors: socket,
    })
}

/// `wrk -t THREADS -c CONNS -d SECONDS URL`: the plain GET of `calibrate
/// --vs-wrk` (at most one thread per connection; whole seconds, rounded
/// down, at least 1).
pub fn plain_command(
    url: &str,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> Vec<String> {
    vec![
        "wrk".into(),
        format!("-t{}", threads.max(1).min(connections.max(1))),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs().max(1)),
        url.into(),
    ]
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
        // wrk does not say why a connect failed; a read or write error
        // is the connection breaking mid-exchange.
        connection: ConnectionErrors {
            reset: read + write,
            timeout,
            other: connect,
            ..ConnectionErrors::default()
        },
    };
    let all = imported_endpoint(
        name,
        w.requests,
        errors.total,
        w.rps,
        w.latency_ms.clone(),
        errors,
        Default::default(),
    );
    ImportReport {
        tool: "wrk".into(),
        source: source.into(),
        rps: w.rps,
        endpoints: vec![all.clone()],
        all,
        caveat: "wrk is closed-loop only; percentiles only with `wrk --latency` (50/75/90/99: no p95); no minimum; non-2xx responses are not broken down by code; its connect errors have no cause (counted as other), read and write errors count as resets".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::test_support::{get, run, strs};
    use crate::tools::{Tool, ToolLoad};

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
        let l = &r.latency_ms;
        assert_eq!(
            (l.count, l.mean, l.stdev, l.max),
            (373_722, 0.95, 1.27, 12.3)
        );
        assert_eq!((l.p50, l.p90, l.p99), (0.638, 2.0, 6.12));
        assert_eq!((l.min, l.p95), (0.0, 0.0), "wrk gives neither");
        assert_eq!(r.non_2xx, 12);
        assert_eq!(r.socket_errors, [0, 2, 0, 7]);
        assert!(parse_wrk("hello").is_err());
        assert_eq!(to_ms("250.00us"), Some(0.25));
        assert_eq!(to_ms("1.50s"), Some(1500.0));
    }
}

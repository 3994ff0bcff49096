//! The `quizload` binary end to end: `run`, `sweep` and `calibrate` print
//! their tables and write JSON with a top-level `rps`; a target that
//! refuses ends a run at once, thresholds and bad usage have their exit
//! statuses, and no printed line holds a session token (against the real
//! server, with quizload and with wrk).

mod common;

use std::time::Duration;

use common::quizload::scratch;
use common::{Reply, TestServer};

fn quizload(args: &[&str]) -> (String, String) {
    common::quizload::ok(args, None)
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `run URL -c -n --json` prints a summary and writes JSON with `rps` and
/// the rest of the report.
#[test]
fn run_writes_json_with_rps() {
    let srv = TestServer::start(|req| {
        if req.header("x-test") == Some("yes") {
            Reply::ok("ok")
        } else {
            Reply::status(400, "")
        }
    });
    let scratch = scratch("cli");
    let json = scratch.path().join("run.json");
    let (stdout, _) = quizload(&[
        "run",
        &srv.url("/hello"),
        "-c",
        "4",
        "-n",
        "200",
        "-H",
        "X-Test: yes",
        "--threads",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("Requests/sec:"), "{stdout}");
    assert!(stdout.contains("[200]\t200 responses"), "{stdout}");
    let v = read_json(&json);
    assert!(v["rps"].as_f64().unwrap() > 0.0);
    assert_eq!(v["requests"], 200);
    assert_eq!(v["successes"], 200);
    assert_eq!(v["settings"]["concurrency"], 4);
    assert_eq!(v["endpoints"][0]["name"], "GET /hello");
    for k in [
        "p50", "p90", "p95", "p99", "p999", "mean", "stdev", "min", "max",
    ] {
        assert!(v["latency_ms"][k].is_number(), "latency_ms.{k}");
    }
    assert!(v["generator"]["saturated"].is_boolean());
    assert!(!v["timeseries"].as_array().unwrap().is_empty());
}

/// `run --rate` (open model) reports the schedule and service time.
#[test]
fn open_run_reports_schedule() {
    let srv = TestServer::start(|_| Reply::ok("ok"));
    let scratch = scratch("cli");
    let json = scratch.path().join("open.json");
    let (stdout, _) = quizload(&[
        "run",
        &srv.url("/"),
        "--rate",
        "100",
        "-d",
        "1s",
        "-c",
        "5",
        "--arrival",
        "poisson",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("coordinated-omission corrected"),
        "{stdout}"
    );
    let v = read_json(&json);
    let intended = v["open_model"]["intended"].as_u64().unwrap();
    assert!((50..=160).contains(&intended), "{intended}");
    assert!(v["service_time_ms"]["p50"].is_number());
    assert_eq!(v["settings"]["model"], "open");
}

/// `sweep --concurrency a,b,c` prints document 004's table and writes one
/// row per level.
#[test]
fn sweep_prints_table_and_json() {
    let srv = TestServer::start(|_| Reply::ok("ok").delay(Duration::from_millis(2)));
    let scratch = scratch("cli");
    let json = scratch.path().join("sweep.json");
    let (stdout, _) = quizload(&[
        "sweep",
        &srv.url("/"),
        "--concurrency",
        "1,2,4",
        "-n",
        "40",
        "--pause",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains(
            "| Concurrent Connections | Requests/Second | Avg Response Time | p99 | Success Rate |"
        ),
        "{stdout}"
    );
    let v = read_json(&json);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["level"], 4.0);
    assert_eq!(rows[1]["report"]["requests"], 40);
    assert!(v["rps"].as_f64().unwrap() > 0.0);
}

/// `calibrate` against the in-process target reports a maximum rate.
#[test]
fn calibrate_reports_rate() {
    let scratch = scratch("cli");
    let json = scratch.path().join("cal.json");
    let (stdout, _) = quizload(&[
        "calibrate",
        "-c",
        "2,8",
        "-d",
        "300ms",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("Maximum measured:"), "{stdout}");
    let v = read_json(&json);
    assert!(v["rps"].as_f64().unwrap() > 100.0, "{v}");
    assert_eq!(v["tries"].as_array().unwrap().len(), 2);
    assert_eq!(v["target"], "in-process");
}

/// Bad input is refused with a message and the bad-usage status (2), not a
/// panic.
#[test]
fn bad_arguments_fail_cleanly() {
    for args in [
        vec!["run"],
        vec!["run", "https://127.0.0.1:1/"],
        vec!["run", "http://127.0.0.1:1/", "-c", "0"],
        vec!["run", "http://127.0.0.1:1/", "-d", "10parsecs"],
        vec!["run", "http://127.0.0.1:1/", "-H", "NoColon"],
        vec!["run", "http://127.0.0.1:1/", "--tool", "wrk", "--rate", "5"],
        vec!["sweep", "http://127.0.0.1:1/", "-c", "1,2", "--rate", "5,6"],
    ] {
        let out = common::quizload::run(&args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.is_empty());
    }
}

/// The documented exit statuses (`quizload --help`).
const USAGE: i32 = 2;
const ERROR: i32 = 1;
const THRESHOLDS: i32 = 99;

/// A port where nothing listens: every way of running against it ends
/// within seconds, with the error status and an error naming the URL.
#[test]
fn a_closed_port_fails_fast_naming_the_url() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let url = format!("http://{addr}/quizzes");
    let base = format!("http://{addr}");
    for (args, names) in [
        (vec!["run", url.as_str(), "-d", "30s"], &url),
        (
            vec!["run", url.as_str(), "--rate", "100", "-d", "30s"],
            &url,
        ),
        (
            vec!["run", "--scenario", "quizzes", "--base", &base, "-d", "30s"],
            &base,
        ),
        // The tools are not reached: `true` stands in for them.
        (
            vec![
                "run",
                url.as_str(),
                "--tool",
                "wrk",
                "--tool-bin",
                "true",
                "-d",
                "30s",
            ],
            &url,
        ),
        (
            vec![
                "run",
                "--scenario",
                "quiz",
                "--base",
                &base,
                "--tool",
                "hey",
                "--tool-bin",
                "true",
            ],
            &base,
        ),
        (vec!["sweep", url.as_str(), "-c", "1,2", "-d", "30s"], &url),
    ] {
        let started = std::time::Instant::now();
        let out = common::quizload::run(&args, None);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(ERROR), "{args:?}: {err}");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
        assert!(err.contains(names.as_str()), "{args:?}: {err}");
        assert!(err.contains("refused"), "{args:?}: {err}");
        let tool = if args.contains(&"wrk") {
            "wrk"
        } else if args.contains(&"hey") {
            "hey"
        } else {
            "quizload"
        };
        assert!(
            err.contains(&format!("{tool}: connect to")),
            "{args:?}: {err}"
        );
    }
}

/// `--threshold`: held ones exit 0, a broken one exits 99 and says which;
/// the JSON carries each threshold's figure; a bad one is bad usage.
#[test]
fn thresholds_set_the_exit_status() {
    let srv = TestServer::start(|req| {
        if req.path == "/fail" {
            Reply::status(500, "")
        } else {
            Reply::ok("ok")
        }
    });
    let scratch = scratch("cli");
    let json = scratch.path().join("t.json");
    let ok_url = srv.url("/");
    let base = [
        "run",
        ok_url.as_str(),
        "-c",
        "2",
        "-n",
        "50",
        "--threads",
        "1",
    ];
    let held = [
        &base[..],
        &["--threshold", "p99<10s", "--threshold", "errors<=0"],
    ]
    .concat();
    let (stdout, _) = quizload(&[&held[..], &["--json", json.to_str().unwrap()]].concat());
    assert!(stdout.contains("ok     p99<10s"), "{stdout}");
    let v = read_json(&json);
    assert_eq!(v["thresholds"][1]["threshold"], "errors<=0");
    assert_eq!(v["thresholds"][1]["passed"], true);
    assert_eq!(v["thresholds"][1]["actual"], 0.0);
    assert!(v["rps"].as_f64().unwrap() > 0.0);

    let broken = [
        &base[..],
        &["--threshold", "rps>1000000000", "--threshold", "p99<10s"],
    ]
    .concat();
    let out = common::quizload::run(&broken, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(THRESHOLDS), "{stdout}");
    assert!(stdout.contains("BROKEN rps>1000000000"), "{stdout}");
    assert!(stdout.contains("ok     p99<10s"), "{stdout}");

    let fail_url = srv.url("/fail");
    let out = common::quizload::run(
        &[
            "run",
            &fail_url,
            "-c",
            "2",
            "-n",
            "20",
            "-q",
            "--threshold",
            "errors<0.1%",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(THRESHOLDS));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BROKEN errors<0.1% (actual 100.000%)"),
        "quiet still says which: {err}"
    );

    let out = common::quizload::run(&[&base[..], &["--threshold", "p99<10"]].concat(), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{err}");
    assert!(err.contains("a latency needs a unit"), "{err}");
    let (help, _) = quizload(&["run", "--help"]);
    for line in [
        "Exit status:",
        "  2   bad usage",
        "  99  the run finished and at least one --threshold was broken",
    ] {
        assert!(help.contains(line), "{help}");
    }
}

/// `-H` reaches every request of a scenario, its login included.
#[test]
fn headers_reach_every_request_of_a_scenario() {
    let srv = TestServer::start(|req| {
        if req.header("accept-encoding") != Some("gzip") {
            return Reply::status(400, "no header");
        }
        match req.path.as_str() {
            "/api/v1/auth/login" => Reply::ok(r#"{"token":"t1","user":{"id":1}}"#)
                .header("Set-Cookie", "qb_session=t1; Path=/; HttpOnly"),
            "/api/v1/quizzes" if req.header("cookie") == Some("qb_session=t1") => Reply::ok("[]"),
            _ => Reply::status(401, ""),
        }
    });
    let scratch = scratch("cli");
    let json = scratch.path().join("h.json");
    let base = srv.url("");
    quizload(&[
        "run",
        "--scenario",
        "quizzes",
        "--base",
        &base,
        "-c",
        "2",
        "-n",
        "20",
        "-H",
        "Accept-Encoding: gzip",
        "--threshold",
        "errors<=0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(srv.hits("POST /api/v1/auth/login"), 2);
    assert_eq!(srv.hits("GET /api/v1/quizzes"), 20);
    assert_eq!(read_json(&json)["successes"], 20);
}

/// A session token of the real server: 43 URL-safe characters.
fn token_like(text: &str) -> Option<String> {
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            run.push(c);
        } else {
            if run.len() >= 43 {
                return Some(run);
            }
            run.clear();
        }
    }
    None
}

/// Against the real server, a scenario that logs in and sends the session
/// prints no token: not with quizload, not with wrk (whose command line,
/// echoed and kept as the report's source, carries the cookie), not in the
/// JSON; the cookie shows masked.
#[test]
fn no_printed_line_holds_a_session_token() {
    let server = common::quizbench::Quizbench::start();
    let base = server.base();
    let scratch = scratch("cli");
    let json = scratch.path().join("s.json");
    let mut runs = vec![vec![
        "run",
        "--scenario",
        "quizzes",
        "--base",
        &base,
        "-c",
        "2",
        "-n",
        "40",
        "--threshold",
        "errors<=0",
    ]];
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if wrk {
        runs.push(vec![
            "run",
            "--scenario",
            "quizzes",
            "--base",
            &base,
            "-c",
            "2",
            "-d",
            "1s",
            "--tool",
            "wrk",
            "-H",
            "Accept-Encoding: gzip",
            "--threshold",
            "errors<=0",
        ]);
    } else {
        eprintln!("wrk is not installed (apt-get install wrk; scripts/test.sh installs it): its run is skipped");
    }
    for args in runs {
        let args = [&args[..], &["--json", json.to_str().unwrap()]].concat();
        let (stdout, stderr) = quizload(&args);
        let written = std::fs::read_to_string(&json).unwrap();
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("JSON", &written)] {
            assert_eq!(
                token_like(text),
                None,
                "{args:?}: a token in {what}:\n{text}"
            );
        }
        if args.contains(&"wrk") {
            assert!(
                stderr.contains("-H 'Cookie: qb_session=***'"),
                "the cookie is shown masked: {stderr}"
            );
            assert!(stderr.contains("-H 'Accept-Encoding: gzip'"), "{stderr}");
            assert!(written.contains("qb_session=***"), "{written}");
        }
        assert!(read_json(&json)["successes"].as_u64().unwrap() > 0);
    }
}

/// `import` turns wrk, hey and Locust output into quizload's table and
/// JSON with `rps`.
#[test]
fn import_other_tools() {
    let scratch = scratch("cli");
    let wrk = scratch.path().join("wrk.txt");
    std::fs::write(
        &wrk,
        "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 10 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   180.00us   50.00us   2.00ms   90.00%\n    Req/Sec    25.00k     1.00k   27.00k    70.00%\n  50000 requests in 1.00s, 7.00MB read\nRequests/sec:  50000.00\nTransfer/sec:      7.00MB\n",
    )
    .unwrap();
    let json = scratch.path().join("imp.json");
    let (stdout, _) = quizload(&[
        "import",
        "wrk",
        wrk.to_str().unwrap(),
        "--name",
        "GET /",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("GET /"), "{stdout}");
    let v = read_json(&json);
    assert_eq!(v["rps"], 50000.0);
    assert_eq!(v["endpoints"][0]["latency_ms"]["max"], 2.0);

    let csv = scratch.path().join("locust_stats.csv");
    std::fs::write(
        &csv,
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\nGET,GET /api/v1/user,10,1,12,15.0,5,40,100,2.5,0.25,12,13,14,15,20,30,40,40,40,40,40\n,Aggregated,10,1,12,15.0,5,40,100,2.5,0.25,12,13,14,15,20,30,40,40,40,40,40\n",
    )
    .unwrap();
    let (stdout, _) = quizload(&[
        "import",
        "locust",
        csv.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("GET /api/v1/user"), "{stdout}");
    let v = read_json(&json);
    assert_eq!(v["rps"], 2.5);
    assert_eq!(v["endpoints"][0]["errors"]["total"], 1);
}

//! The `quizload` binary end to end: `run`, `sweep` and `calibrate` print
//! their tables and write JSON with a top-level `rps`; a target that
//! refuses ends a run at once, thresholds and bad usage have their exit
//! statuses, and no printed line holds a session token (against the real
//! server, with quizload and with wrk).

mod common;

use std::time::Duration;

use common::quizload::{quoted, scratch, words};
use common::{Reply, TestServer};

/// Runs `quizload LINE` (a shell-quoted command line), which must succeed:
/// its stdout and stderr.
fn quizload(line: &str) -> (String, String) {
    common::quizload::ok(&words(line), None)
}

/// Runs `quizload LINE`, whatever its exit status.
fn quizload_status(line: &str) -> std::process::Output {
    common::quizload::run(&words(line), None)
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs `quizload LINE --json FILE` (FILE in a fresh scratch folder),
/// which must succeed: its stdout and the JSON it wrote.
fn quizload_json(line: &str) -> (String, serde_json::Value) {
    let scratch = scratch("cli");
    let json = scratch.path().join("out.json");
    let (stdout, _) = quizload(&format!("{line} --json {}", quoted(&json)));
    (stdout, read_json(&json))
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
    let url = srv.url("/hello");
    let (stdout, v) = quizload_json(&format!(
        "run {url} -c 4 -n 200 -H 'X-Test: yes' --threads 2"
    ));
    assert!(stdout.contains("Requests/sec:"), "{stdout}");
    assert!(stdout.contains("[200]\t200 responses"), "{stdout}");
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
    let url = srv.url("/");
    let (stdout, v) = quizload_json(&format!(
        "run {url} --rate 100 -d 1s -c 5 --arrival poisson"
    ));
    assert!(
        stdout.contains("coordinated-omission corrected"),
        "{stdout}"
    );
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
    let url = srv.url("/");
    let (stdout, v) = quizload_json(&format!("sweep {url} --concurrency 1,2,4 -n 40 --pause 0s"));
    assert!(
        stdout.contains(
            "| Concurrent Connections | Requests/Second | Avg Response Time | p99 | Success Rate |"
        ),
        "{stdout}"
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["level"], 4.0);
    assert_eq!(rows[1]["report"]["requests"], 40);
    assert!(v["rps"].as_f64().unwrap() > 0.0);
}

/// `calibrate` against the in-process target reports a maximum rate.
#[test]
fn calibrate_reports_rate() {
    let (stdout, v) = quizload_json("calibrate -c 2,8 -d 300ms");
    assert!(stdout.contains("Maximum measured:"), "{stdout}");
    assert!(v["rps"].as_f64().unwrap() > 100.0, "{v}");
    assert_eq!(v["tries"].as_array().unwrap().len(), 2);
    assert_eq!(v["target"], "in-process");
}

/// Bad input is refused with a message and the bad-usage status (2), not a
/// panic.
#[test]
fn bad_arguments_fail_cleanly() {
    for args in [
        "run",
        "run https://127.0.0.1:1/",
        "run http://127.0.0.1:1/ -c 0",
        "run http://127.0.0.1:1/ -d 10parsecs",
        "run http://127.0.0.1:1/ -H NoColon",
        "run http://127.0.0.1:1/ --tool wrk --rate 5",
        "sweep http://127.0.0.1:1/ -c 1,2 --rate 5,6",
    ] {
        let out = quizload_status(args);
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
        (format!("run {url} -d 30s"), &url),
        (format!("run {url} --rate 100 -d 30s"), &url),
        (
            format!("run --scenario quizzes --base {base} -d 30s"),
            &base,
        ),
        // The tools are not reached: `true` stands in for them.
        (format!("run {url} --tool wrk --tool-bin true -d 30s"), &url),
        (
            format!("run --scenario quiz --base {base} --tool hey --tool-bin true"),
            &base,
        ),
        (format!("sweep {url} -c 1,2 -d 30s"), &url),
    ] {
        let started = std::time::Instant::now();
        let out = quizload_status(&args);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(ERROR), "{args:?}: {err}");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
        assert!(err.contains(names.as_str()), "{args:?}: {err}");
        assert!(err.contains("refused"), "{args:?}: {err}");
        let tool = if args.contains("--tool wrk") {
            "wrk"
        } else if args.contains("--tool hey") {
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
    let base = format!("run {} -c 2 -n 50 --threads 1", srv.url("/"));
    let (stdout, v) = quizload_json(&format!(
        "{base} --threshold 'p99<10s' --threshold 'errors<=0'"
    ));
    assert!(stdout.contains("ok     p99<10s"), "{stdout}");
    assert_eq!(v["thresholds"][1]["threshold"], "errors<=0");
    assert_eq!(v["thresholds"][1]["passed"], true);
    assert_eq!(v["thresholds"][1]["actual"], 0.0);
    assert!(v["rps"].as_f64().unwrap() > 0.0);

    let out = quizload_status(&format!(
        "{base} --threshold 'rps>1000000000' --threshold 'p99<10s'"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(THRESHOLDS), "{stdout}");
    assert!(stdout.contains("BROKEN rps>1000000000"), "{stdout}");
    assert!(stdout.contains("ok     p99<10s"), "{stdout}");

    let fail_url = srv.url("/fail");
    let out = quizload_status(&format!(
        "run {fail_url} -c 2 -n 20 -q --threshold 'errors<0.1%'"
    ));
    assert_eq!(out.status.code(), Some(THRESHOLDS));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BROKEN errors<0.1% (actual 100.000%)"),
        "quiet still says which: {err}"
    );

    let out = quizload_status(&format!("{base} --threshold 'p99<10'"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{err}");
    assert!(err.contains("a latency needs a unit"), "{err}");
    let (help, _) = quizload("run --help");
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
    let base = srv.url("");
    let (_, v) = quizload_json(&format!(
        "run --scenario quizzes --base {base} -c 2 -n 20 -H 'Accept-Encoding: gzip' --threshold 'errors<=0'"
    ));
    assert_eq!(srv.hits("POST /api/v1/auth/login"), 2);
    assert_eq!(srv.hits("GET /api/v1/quizzes"), 20);
    assert_eq!(v["successes"], 20);
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
    let scenario = format!("run --scenario quizzes --base {base} -c 2");
    let mut runs = vec![format!("{scenario} -n 40 --threshold 'errors<=0'")];
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if wrk {
        runs.push(format!(
            "{scenario} -d 1s --tool wrk -H 'Accept-Encoding: gzip' --threshold 'errors<=0'"
        ));
    } else {
        eprintln!("wrk is not installed (apt-get install wrk; scripts/test.sh installs it): its run is skipped");
    }
    for args in runs {
        let args = format!("{args} --json {}", quoted(&json));
        let (stdout, stderr) = quizload(&args);
        let written = std::fs::read_to_string(&json).unwrap();
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("JSON", &written)] {
            assert_eq!(
                token_like(text),
                None,
                "{args:?}: a token in {what}:\n{text}"
            );
        }
        if args.contains("--tool wrk") {
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

/// `import` turns wrk and Locust output (tests/fixtures/) into
/// quizload's table and JSON with `rps`.
#[test]
fn import_other_tools() {
    let fixture = |name: &str| {
        quoted(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
    };
    let (stdout, v) = quizload_json(&format!("import wrk {} --name 'GET /'", fixture("wrk.txt")));
    assert!(stdout.contains("GET /"), "{stdout}");
    assert_eq!(v["rps"], 50000.0);
    assert_eq!(v["endpoints"][0]["latency_ms"]["max"], 2.0);

    let (stdout, v) = quizload_json(&format!("import locust {}", fixture("locust_stats.csv")));
    assert!(stdout.contains("GET /api/v1/user"), "{stdout}");
    assert_eq!(v["rps"], 2.5);
    assert_eq!(v["endpoints"][0]["errors"]["total"], 1);
}

//! The `quizload` binary end to end: `run`, `sweep` and `calibrate` print
//! their tables and write JSON with a top-level `rps`.

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

/// Bad input is refused with a message, not a panic.
#[test]
fn bad_arguments_fail_cleanly() {
    for args in [
        vec!["run"],
        vec!["run", "https://127.0.0.1:1/"],
        vec!["run", "http://127.0.0.1:1/", "-c", "0"],
        vec!["run", "http://127.0.0.1:1/", "-d", "10parsecs"],
        vec!["sweep", "http://127.0.0.1:1/", "-c", "1,2", "--rate", "5,6"],
    ] {
        let out = common::quizload::run(&args, None);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.is_empty());
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

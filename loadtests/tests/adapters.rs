//! `quizload run --tool hey|locust` end to end with stand-in tools: shell
//! scripts that log the command line and environment they were given and
//! print (hey) or write (Locust's `--csv` file) a canned report, so the
//! launching, the login before a scenario, the parsing and the JSON are
//! exercised without the real tools installed. A missing tool is a clear
//! error that says how to install it.

mod common;

use std::path::Path;

use common::quizload::{quoted, scratch, words};
use common::{Reply, TestServer};

fn script(path: &Path, body: &str) {
    common::quizload::write_script(path, &format!("#!/bin/sh\n{body}"));
}

/// Runs `quizload LINE` (a shell-quoted command line), whatever its exit
/// status.
fn quizload(line: &str) -> std::process::Output {
    common::quizload::run(&words(line), None)
}

/// Runs `quizload LINE`, which must succeed: its stdout and stderr.
fn ok(line: &str) -> (String, String) {
    common::quizload::ok(&words(line), None)
}

const HEY_REPORT: &str = "
Summary:
  Total:\t0.5000 secs
  Slowest:\t0.0400 secs
  Fastest:\t0.0010 secs
  Average:\t0.0050 secs
  Requests/sec:\t40.0000

Latency distribution:
  50% in 0.0040 secs
  90% in 0.0080 secs
  95% in 0.0100 secs
  99% in 0.0300 secs

Status code distribution:
  [200]\t19 responses
  [500]\t1 responses
";

/// hey gets the scenario's request with the session cookie the login
/// returned, and its report becomes a run report with `rps`.
#[test]
fn hey_runs_a_scenario_with_a_session() {
    let scratch = scratch("hey");
    let d = scratch.path();
    let srv = TestServer::start(|req| match req.path.as_str() {
        "/api/v1/auth/login" if req.method == "POST" => {
            Reply::ok(r#"{"token":"tok-1","user":{"id":1}}"#)
        }
        _ => Reply::status(404, ""),
    });
    let fake = d.join("hey");
    std::fs::write(d.join("report.txt"), HEY_REPORT).unwrap();
    script(
        &fake,
        &format!(
            "printf '%s\\n' \"$@\" >> '{log}'\ncat '{report}'\n",
            log = d.join("args.log").display(),
            report = d.join("report.txt").display()
        ),
    );
    let json = d.join("out.json");
    let (stdout, stderr) = ok(&format!(
        "run --tool hey --tool-bin {} --scenario select-options --base {} -c 2 -n 20 --json {}",
        quoted(&fake),
        srv.url(""),
        quoted(&json)
    ));
    let args: Vec<String> = std::fs::read_to_string(d.join("args.log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let url = srv.url("/api/v1/students/select-options");
    let expected = words(&format!(
        "-c 2 -n 20 -t 10 -m GET -H 'Cookie: qb_session=tok-1' {url}"
    ));
    assert_eq!(args, expected, "hey gets the session");
    assert!(
        stderr.contains("running ") && stderr.contains("-H 'Cookie: qb_session=***'"),
        "the echoed command masks it: {stderr}"
    );
    let printed = format!(
        "{stdout}{stderr}{}",
        std::fs::read_to_string(&json).unwrap()
    );
    assert!(!printed.contains("tok-1"), "{printed}");
    assert_eq!(srv.hits("POST /api/v1/auth/login"), 1, "one login first");
    assert!(
        stdout.contains("GET /api/v1/students/select-options"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["tool"], "hey");
    assert_eq!(v["rps"], 40.0);
    assert_eq!(v["requests"], 20);
    assert_eq!(v["successes"], 19);
    assert_eq!(v["errors"]["status"]["500"], 1);
    assert_eq!(v["latency_ms"]["p95"], 10.0);
    assert_eq!(v["settings"]["concurrency"], 2);
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("measured by hey"));
}

/// Locust runs the journey headless with the CSV prefix quizload reads
/// back, the user count, spawn rate, run time and think time asked for.
#[test]
fn locust_runs_the_journey_and_its_csv_is_read() {
    let scratch = scratch("locust");
    let d = scratch.path();
    let fake = d.join("locust");
    // Writes PREFIX_stats.csv for the --csv PREFIX it was given.
    script(
        &fake,
        &format!(
            r#"echo "$@" > '{args}'
echo "$QUIZLOAD_THINK_MIN $QUIZLOAD_THINK_MAX" > '{env}'
while [ $# -gt 0 ]; do
  if [ "$1" = "--csv" ]; then prefix="$2"; fi
  shift
done
cat > "${{prefix}}_stats.csv" <<'EOF'
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,POST /api/v1/auth/login,3,0,40,42.5,30,60,100,1.5,0.0,40,45,50,55,60,60,60,60,60,60,60
GET,GET /api/v1/quizzes,9,1,5,6.0,2,20,2048,4.5,0.5,5,6,7,8,10,20,20,20,20,20,20
,Aggregated,12,1,6,15.1,2,60,1560,6.0,0.5,6,7,8,9,40,60,60,60,60,60,60
EOF
"#,
            args = d.join("args.log").display(),
            env = d.join("env.log").display()
        ),
    );
    let json = d.join("out.json");
    // Only its address is used: quizload connects once before the run.
    let srv = TestServer::start(|_| Reply::ok(""));
    let host = srv.url("");
    let (stdout, _) = ok(&format!(
        "run --tool locust --tool-bin {} --locustfile /somewhere/locustfile.py \
         --scenario journey --base {host} -c 3 --spawn-rate 1.5 -d 2s --think 1s..2s --json {}",
        quoted(&fake),
        quoted(&json)
    ));
    let args = std::fs::read_to_string(d.join("args.log")).unwrap();
    assert!(
        args.starts_with("-f /somewhere/locustfile.py --headless -u 3 -r 1.5 -t 2s --csv "),
        "{args}"
    );
    assert!(args.contains(&format!("--host {host}")), "{args}");
    assert_eq!(
        std::fs::read_to_string(d.join("env.log")).unwrap().trim(),
        "1 2"
    );
    assert!(stdout.contains("GET /api/v1/quizzes"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["tool"], "locust");
    assert_eq!(v["rps"], 6.0);
    assert_eq!(v["requests"], 12, "the Aggregated row");
    assert_eq!(v["latency_ms"]["p50"], 6.0);
    let names: Vec<&str> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["POST /api/v1/auth/login", "GET /api/v1/quizzes"]);
    assert_eq!(v["endpoints"][1]["errors"]["total"], 1);
}

/// A tool that is not there: an error naming how to install it, and no
/// result written.
#[test]
fn missing_tools_say_how_to_install_them() {
    let scratch = scratch("missing");
    let d = scratch.path();
    let json = d.join("out.json");
    for (tool, hint, extra) in [
        ("hey", "apt-get install hey", "http://127.0.0.1:9/ -n 10"),
        ("wrk", "apt-get install wrk", "http://127.0.0.1:9/ -d 1s"),
        ("locust", "pip install locust", "--scenario journey -d 1s"),
    ] {
        let bin = d.join(format!("no-{tool}"));
        let out = quizload(&format!(
            "run --tool {tool} --tool-bin {} -c 2 --json {} {extra}",
            quoted(&bin),
            quoted(&json)
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tool}");
        assert!(stderr.contains(hint), "{tool}: {stderr}");
        assert!(!json.exists());
    }
    // What a tool cannot do is refused before anything runs.
    let out = quizload("run --tool hey http://127.0.0.1:9/ --rate 10");
    assert!(String::from_utf8_lossy(&out.stderr).contains("open model"));
    let out = quizload("run --tool locust http://127.0.0.1:9/ -d 1s");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scenario journey"));
}

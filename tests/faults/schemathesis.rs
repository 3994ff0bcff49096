//! A schemathesis run against the real binary's /openapi.json, with a
//! bearer token (tests/faults/schemathesis_hooks.py logs in, and again
//! after a 401), checking `not_a_server_error`: any 500 fails the test.
//!
//! schemathesis is a Python tool: `pip install schemathesis` (scripts/test.sh
//! installs it into ~/.cache/quizbench/venv). It is looked for at `$SCHEMATHESIS`, then
//! `.run/venv/bin/schemathesis`, then on PATH. Without it this test fails,
//! unless `QB_SKIP_SCHEMATHESIS=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

const INSTALL: &str =
    "install it with: python3 -m venv .run/venv && .run/venv/bin/pip install schemathesis \
     (or set SCHEMATHESIS=/path/to/schemathesis; QB_SKIP_SCHEMATHESIS=1 skips this test)";

fn find_schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".run/venv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Path::new(d).join("schemathesis"))
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let Some(bin) = find_schemathesis() else {
        if std::env::var("QB_SKIP_SCHEMATHESIS").as_deref() == Ok("1") {
            eprintln!("schemathesis not found; skipped (QB_SKIP_SCHEMATHESIS=1)");
            return;
        }
        panic!("schemathesis not found: {INSTALL}");
    };
    let _serial = serial().await;
    let db = TestDb::new().await;
    // Throttling off: the fuzzer fails many logins from one address, and
    // its own login must keep working (throttling is tested elsewhere).
    let server = Server::start(&db.url, &redis_url(), &[("LOGIN_MAX_FAILURES", "0")]);
    let user = unique("fuzz");
    let password = unique("pw-");
    let res = server
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({"username": user, "password": password}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let work = std::env::temp_dir().join(unique("qb-schemathesis-"));
    std::fs::create_dir_all(&work).unwrap();
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/schemathesis_hooks.py");
    let max_examples = std::env::var("QB_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let mut child = Command::new(&bin)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", &max_examples])
        .args(["--workers", "2"])
        .args(["--request-timeout", "10"])
        .args(["--suppress-health-check", "all"])
        .args(["--warnings", "off"])
        .current_dir(&work)
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("QB_FUZZ_BASE", &server.base)
        .env("QB_FUZZ_USER", &user)
        .env("QB_FUZZ_PASSWORD", &password)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", bin.display()));
    // Bounded: the run is killed after 150 s.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: String = text
        .lines()
        .rev()
        .take(80)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let status = status.unwrap_or_else(|| panic!("schemathesis ran over 150 s:\n{tail}"));
    let errors = server.error_lines();
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{tail}\nserver errors:\n{}",
        errors.join("\n")
    );
    let m = server.metrics().await;
    // The run was authenticated: authenticated routes answered 200.
    for route in ["/api/v1/user", "/api/v1/progress"] {
        let ok = m.sum(
            "quizbench_http_requests_total",
            &[("route", route), ("status", "200")],
        );
        assert!(
            ok > 0.0,
            "no authenticated 200 on {route}: the token did not work"
        );
    }
    let fives = m.status(500);
    assert_eq!(
        fives,
        0,
        "the server answered 500 {fives} times:\n{}",
        errors.join("\n")
    );
    eprintln!("{tail}");
}

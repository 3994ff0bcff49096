//! `APP_CPU_COST_US` on the real binary (a child process on a random
//! port): an API request burns about the cost in CPU time, a response from
//! the content cache burns none of it. Measured as the server process's
//! CPU time (`/proc/PID/stat`), which another test's load on the machine
//! does not change.

use std::time::Duration;

use crate::common::{redis_url, HttpApi, ServeOptions, Served, TestDb};

/// The server's CPU time so far (user + system, all threads).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_sec)
}

const COST: Duration = Duration::from_millis(40);
const REQUESTS: u32 = 8;

#[tokio::test]
async fn an_api_request_burns_the_cost_and_a_cached_response_does_not() {
    let db = TestDb::new().await;
    let cost = COST.as_micros().to_string();
    let server = Served::start(
        &db.url,
        &redis_url(),
        ServeOptions {
            defaults: &[],
            vars: &[("APP_CPU_COST_US", &cost), ("CACHE_MODE", "redis")],
            log_cap: 1000,
            timeout: Some(Duration::from_secs(30)),
        },
    );
    let token = server.token("student3").await;
    let used_since = |from: Duration| cpu_time(server.pid()) - from;

    // The current user: a view every time.
    let before = cpu_time(server.pid());
    for _ in 0..REQUESTS {
        let res = server.get("/api/v1/user", Some(&token)).await;
        assert_eq!(res.status(), 200);
    }
    let paid = used_since(before);
    let expected = COST * REQUESTS;
    assert!(
        paid >= expected.mul_f64(0.95) && paid <= expected.mul_f64(1.5),
        "{REQUESTS} views with {COST:?} each used {paid:?} of CPU"
    );

    // The quiz list: built once (a miss pays), then served from the cache.
    let miss = server.get("/api/v1/quizzes", None).await;
    assert_eq!(miss.headers()["x-cache"], "miss");
    let before = cpu_time(server.pid());
    for _ in 0..REQUESTS {
        let res = server.get("/api/v1/quizzes", None).await;
        assert_eq!(res.headers()["x-cache"], "hit");
    }
    let cached = used_since(before);
    assert!(
        cached < expected / 4,
        "{REQUESTS} cached responses used {cached:?} of CPU ({COST:?} a view)"
    );
}

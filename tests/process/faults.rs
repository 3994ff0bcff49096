//! The supervisor under faults and signals, each bounded in time: kill -9
//! of a worker, SIGTERM, SIGHUP (rolling restart from the binary's path,
//! also onto a build that does not boot), recycling (MAX_REQUESTS,
//! MAX_LIFETIME_SECS, MAX_RSS_MB), SIGTTIN/SIGTTOU, SIGKILL of the
//! supervisor, and a worker that panics at boot.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::vars;
use crate::harness::{self, Options, Server};
use crate::load::{Load, LoadSpec};

const RESTARTS: &str = "quizbench_worker_restarts_total";

/// Index of the first log line containing all of `needles`.
fn line_index(server: &Server, needles: &[&str]) -> Option<usize> {
    server
        .log
        .lines()
        .iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
}

/// Every replacement was ready before the worker it replaced was told to
/// drain: in the log, "replacement ready ... old_pid=X" precedes X's
/// "SIGTERM: draining".
fn assert_ready_before_drain(server: &Server, expected: usize) {
    let ready = server.log.events("replacement ready");
    assert!(
        ready.len() >= expected,
        "{} replacements, expected {expected}",
        ready.len()
    );
    for ev in ready {
        let old = ev["old_pid"].as_u64().expect("old pid");
        let new = ev["pid"].as_u64().unwrap();
        let ready_at = line_index(server, &["replacement ready", &format!("\"pid\":{new},")])
            .expect("ready line");
        let drain_at = line_index(server, &["SIGTERM: draining", &format!("\"pid\":{old}}}")]);
        if let Some(drain_at) = drain_at {
            assert!(
                ready_at < drain_at,
                "worker {old} drained before its replacement {new} was ready"
            );
        }
    }
}

async fn kill9_under_load(listener: &str) {
    let server = Server::start(&[("PROCESSES", "2"), ("LISTENER", listener)]).await;
    let keep = Load::start(LoadSpec::get(server.addr, 8, true, "/healthz"));
    let fresh = Load::start(LoadSpec::get(server.addr, 4, false, "/healthz"));
    keep.wait_requests(300, Duration::from_secs(10)).await;
    let before = server.workers();
    let victim = before[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    let killed_at = Instant::now();
    let after = server.wait_workers(2, &[victim], Duration::from_secs(5));
    let replacement = *after.iter().find(|p| !before.contains(p)).unwrap();
    let n = keep.snapshot().len();
    keep.wait_requests(n + 400, Duration::from_secs(10)).await;
    // Which worker accepts a new connection is the kernel's choice (on a
    // shared socket, whichever wakes first; the survivor is already busy
    // accepting): give the replacement time to get some, rather than a
    // fixed number of requests.
    fresh
        .wait_served_by(replacement, Duration::from_secs(10))
        .await;
    let (keep, fresh) = (keep.stop().await, fresh.stop().await);
    // Only requests that were on the killed worker may fail: keep-alive
    // connections it served, and new connections it had accepted when it
    // died. Everything started afterwards, queued on its slot's socket
    // meanwhile, is served by the replacement.
    for o in keep.failed().into_iter().chain(fresh.failed()) {
        assert!(
            o.conn_pid == Some(victim) || (o.conn_pid.is_none() && o.started <= killed_at),
            "a request not on the killed worker failed: {o:?}; {} / {}",
            keep.summary(),
            fresh.summary()
        );
    }
    assert!(
        keep.failed().len() + fresh.failed().len() <= 12,
        "at most the killed worker's connections fail: {} / {}",
        keep.summary(),
        fresh.summary()
    );
    let served: BTreeSet<u32> = keep.pids().union(&fresh.pids()).copied().collect();
    assert!(
        served.contains(&replacement),
        "the replacement serves: {}",
        fresh.summary()
    );
    let metrics = server.metrics();
    assert_eq!(metrics.sum(RESTARTS, &[("reason", "crash")]), 1.0);
    let died = &server.log.events("worker died; respawning")[0];
    assert_eq!(died["pid"], victim);
    assert_eq!(died["backoff_ms"], 0, "a first crash is respawned at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_under_load_reuseport() {
    kill9_under_load("reuseport").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_under_load_shared_socket() {
    kill9_under_load("shared").await;
}

/// A server with the variables `env`, and `connections` clients grading
/// on it (slow requests, on the CPU pool).
async fn grading_load(env: &str, connections: usize) -> (Server, Load) {
    let server = Server::start(&vars(env)).await;
    let token = server.login();
    let slow = Load::start(LoadSpec::grading(server.addr, connections, &token));
    (server, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_what_was_accepted() {
    // Slow requests (grading on the CPU pool) so some are in flight at the
    // signal, and fast ones.
    let (mut server, slow) = grading_load(
        "PROCESSES=2 GRACEFUL_TIMEOUT_SECS=5 GRADE_COST=3000 CPU_POOL_THREADS=2",
        4,
    )
    .await;
    let fast = Load::start(LoadSpec::get(server.addr, 6, true, "/healthz"));
    // And a new connection for every request: some sit in the kernel's
    // accept queue when the signal comes.
    let fresh = Load::start(LoadSpec::get(server.addr, 4, false, "/healthz"));
    slow.wait_requests(8, Duration::from_secs(15)).await;
    fast.wait_requests(200, Duration::from_secs(10)).await;
    fresh.wait_requests(100, Duration::from_secs(10)).await;
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let code = server.wait_exit(Duration::from_secs(12));
    let stopped_after = signalled.elapsed();
    // Let the clients meet the closed port before stopping them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (slow, fast, fresh) = (slow.stop().await, fast.stop().await, fresh.stop().await);
    assert_eq!(code, Some(Some(0)), "exit 0; log:\n{}", server.log.dump());
    assert!(
        stopped_after < Duration::from_secs(5),
        "stopped within the graceful timeout ({stopped_after:?})"
    );
    let all = || {
        slow.outcomes
            .iter()
            .chain(&fast.outcomes)
            .chain(&fresh.outcomes)
    };
    for o in all() {
        if o.accepted_before(signalled) {
            assert!(
                o.ok(),
                "a request accepted before SIGTERM failed: {o:?}; {} / {} / {}",
                slow.summary(),
                fast.summary(),
                fresh.summary()
            );
        }
    }
    // Once stopped, the port refuses at once: nothing waits in a queue.
    assert!(
        fresh
            .outcomes
            .iter()
            .any(|o| o.started > signalled + stopped_after
                && o.failure == Some(crate::load::Failure::Refused)),
        "{}",
        fresh.summary()
    );
    let in_flight = slow
        .outcomes
        .iter()
        .filter(|o| o.ok() && o.started < signalled && o.finished > signalled)
        .count();
    assert!(
        in_flight > 0,
        "some grading requests were in flight at the signal and finished: {}",
        slow.summary()
    );
    assert!(
        harness::descendants(server.pid).len() <= 1,
        "no worker left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_serves_the_connections_queued_in_the_backlog() {
    // With CONCURRENCY_CAP=1 and a slow request in flight the worker stops
    // accepting, so new connections wait in the kernel's accept queue. At
    // SIGTERM the worker takes them before it closes the socket (which
    // would reset them) and answers them.
    let env = "SUPERVISOR=true CONCURRENCY_CAP=1 GRADE_COST=20000 GRACEFUL_TIMEOUT_SECS=10";
    let (mut server, slow) = grading_load(env, 1).await;
    slow.wait_requests(1, Duration::from_secs(20)).await;
    let queued = Load::start(LoadSpec::get(server.addr, 4, false, "/healthz"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let code = server.wait_exit(Duration::from_secs(15));
    let (slow, queued) = (slow.stop().await, queued.stop().await);
    assert_eq!(code, Some(Some(0)), "log:\n{}", server.log.dump());
    let waiting: Vec<_> = queued
        .outcomes
        .iter()
        .filter(|o| o.accepted_before(signalled))
        .collect();
    assert!(
        waiting.len() >= 4,
        "connections were queued at the signal: {}",
        queued.summary()
    );
    for o in waiting {
        assert!(
            o.ok(),
            "a queued connection was dropped: {o:?}; {}",
            queued.summary()
        );
    }
    for o in &slow.outcomes {
        if o.accepted_before(signalled) {
            assert!(o.ok(), "{}", slow.summary());
        }
    }
}

async fn sighup_under_load(listener: &str) {
    let server = Server::start(&[("PROCESSES", "2"), ("LISTENER", listener)]).await;
    let listening = harness::listening_inodes(server.addr.port());
    let keep = Load::start(LoadSpec::get(server.addr, 6, true, "/healthz"));
    let fresh = Load::start(LoadSpec::get(server.addr, 4, false, "/healthz"));
    fresh.wait_requests(200, Duration::from_secs(10)).await;
    let before = server.workers();
    server.signal(Signal::SIGHUP);
    server
        .log
        .wait_for("rolling restart complete", 1, Duration::from_secs(20));
    let after = server.wait_workers(2, &before, Duration::from_secs(10));
    let n = fresh.snapshot().len();
    fresh.wait_requests(n + 200, Duration::from_secs(10)).await;
    let (keep, fresh) = (keep.stop().await, fresh.stop().await);
    assert!(
        keep.failed().is_empty() && fresh.failed().is_empty(),
        "no refused, reset or unanswered request during the rolling restart: {} / {}",
        keep.summary(),
        fresh.summary()
    );
    for pid in &after {
        assert!(fresh.pids().contains(pid) || keep.pids().contains(pid));
    }
    assert_ready_before_drain(&server, 2);
    assert_eq!(server.metrics().sum(RESTARTS, &[("reason", "hup")]), 2.0);
    // The new workers took over the same sockets.
    assert_eq!(harness::listening_inodes(server.addr.port()), listening);
    for ev in server.log.events("replacement ready") {
        assert_eq!(ev["exec"], true, "SIGHUP executes the binary");
    }
    // The stats view shows the new workers, serving (the old ones, which
    // drained after them, did not overwrite their slots).
    let workers = server.runtime()["workers"].as_array().unwrap().clone();
    let shown: BTreeSet<u32> = workers
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(shown, after.iter().copied().collect(), "{workers:?}");
    for w in &workers {
        assert!(w["state"] == "idle" || w["state"] == "busy", "{workers:?}");
        assert_eq!(w["restarts_by_reason"]["hup"], 1);
        assert!(w["boot_ms"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_refuses_nothing_reuseport() {
    sighup_under_load("reuseport").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_refuses_nothing_shared_socket() {
    sighup_under_load("shared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_executes_the_binary_from_its_path() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = harness::TempPath::new("bin");
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("quizbench");
    std::fs::copy(harness::BIN, &path).unwrap();
    let first = std::fs::metadata(&path).unwrap().ino();
    let server = Server::start_with(Options {
        vars: &[("PROCESSES", "2"), ("WORKER_SPAWN", "fork")],
        binary: Some(&path),
        ready_workers: 2,
        ..Options::default()
    })
    .await;
    let before = server.workers();
    for pid in &before {
        assert_eq!(harness::exe_inode(*pid), Some(first));
    }
    // A "new build" replaces the file at the same path.
    let staged = dir.0.join("quizbench.new");
    std::fs::copy(harness::BIN, &staged).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let second = std::fs::metadata(&path).unwrap().ino();
    assert_ne!(first, second);
    server.signal(Signal::SIGHUP);
    server
        .log
        .wait_for("rolling restart complete", 1, Duration::from_secs(20));
    let after = server.wait_workers(2, &before, Duration::from_secs(10));
    for pid in &after {
        assert_eq!(
            harness::exe_inode(*pid),
            Some(second),
            "worker {pid} runs the new file"
        );
    }
    assert_eq!(harness::exe_inode(server.pid), Some(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_onto_a_build_that_cannot_boot_keeps_the_old_workers() {
    let flag = harness::TempPath::new("broken");
    let flag_str = flag.text();
    let server = Server::start(&[
        ("PROCESSES", "2"),
        ("QUIZBENCH_TEST_BOOT_PANIC_FILE", &flag_str),
    ])
    .await;
    let before = server.workers();
    std::fs::write(&flag.0, b"broken build").unwrap();
    server.signal(Signal::SIGHUP);
    server
        .log
        .wait_for("rolling restart abandoned", 1, Duration::from_secs(20));
    assert_eq!(server.workers(), before, "the running workers keep serving");
    let load = Load::start(LoadSpec::get(server.addr, 4, false, "/healthz"));
    load.wait_requests(100, Duration::from_secs(10)).await;
    let report = load.stop().await;
    assert!(report.failed().is_empty(), "{}", report.summary());
    // Fixed build: the next SIGHUP goes through.
    std::fs::remove_file(&flag.0).unwrap();
    server.signal(Signal::SIGHUP);
    server
        .log
        .wait_for("rolling restart complete", 1, Duration::from_secs(20));
    server.wait_workers(2, &before, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_recycles_under_keep_alive_load_without_failures() {
    let env = vars("PROCESSES=2 MAX_REQUESTS=200 MAX_REQUESTS_JITTER=20");
    let server = Server::start(&env).await;
    let load = Load::start(LoadSpec::get(server.addr, 8, true, "/healthz"));
    server
        .log
        .wait_for("replacement ready", 4, Duration::from_secs(25));
    let report = load.stop().await;
    assert!(
        report.failed().is_empty(),
        "recycling drops nothing: {}",
        report.summary()
    );
    assert!(report.pids().len() >= 4, "{}", report.summary());
    let metrics = server.metrics();
    assert!(metrics.sum(RESTARTS, &[("reason", "max_requests")]) >= 4.0);
    assert_eq!(metrics.sum(RESTARTS, &[("reason", "crash")]), 0.0);
    for ev in server.log.events("MAX_REQUESTS reached") {
        let limit = ev["limit"].as_u64().unwrap();
        assert!((200..=220).contains(&limit), "limit with jitter: {limit}");
    }
    assert_ready_before_drain(&server, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_recycles_without_failures() {
    let server = Server::start(&[("PROCESSES", "2"), ("MAX_LIFETIME_SECS", "1")]).await;
    let load = Load::start(LoadSpec {
        pause: Duration::from_millis(5),
        ..LoadSpec::get(server.addr, 4, true, "/healthz")
    });
    server
        .log
        .wait_for("replacement ready", 3, Duration::from_secs(15));
    let report = load.stop().await;
    assert!(report.failed().is_empty(), "{}", report.summary());
    assert!(server.metrics().sum(RESTARTS, &[("reason", "lifetime")]) >= 3.0);
    assert_ready_before_drain(&server, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rss_recycles_a_worker_that_grew() {
    // A fresh debug worker has ~20 MB; loading a 64 MB classifier model
    // takes it past 48 MB.
    let env = vars("SUPERVISOR=true MAX_RSS_MB=48 GRADE_MODEL_MB=64 GRADE_COST=1");
    let server = Server::start(&env).await;
    assert_eq!(server.log.count("below the memory of a fresh worker"), 0);
    let before = server.workers();
    let token = server.login();
    let res = harness::http_request(
        server.addr,
        "POST",
        "/api/v1/grade",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        br#"{"text":"a mutex guards shared memory"}"#,
        harness::HTTP_TIMEOUT,
    )
    .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let ready = server
        .log
        .wait_for("replacement ready", 1, Duration::from_secs(15));
    assert_eq!(ready[0]["reason"], "memory");
    server.wait_workers(1, &before, Duration::from_secs(10));
    assert_eq!(server.metrics().sum(RESTARTS, &[("reason", "memory")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigttin_adds_and_sigttou_removes_a_worker() {
    let server = Server::start(&[("PROCESSES", "2")]).await;
    let port = server.addr.port();
    assert_eq!(harness::listening_inodes(port).len(), 2);
    server.signal(Signal::SIGTTIN);
    server
        .log
        .wait_for("worker ready", 3, Duration::from_secs(10));
    let three = server.wait_workers(3, &[], Duration::from_secs(5));
    assert_eq!(harness::listening_inodes(port).len(), 3);
    let load = Load::start(LoadSpec::get(server.addr, 8, false, "/healthz"));
    load.wait_requests(300, Duration::from_secs(10)).await;
    let report = load.stop().await;
    assert_eq!(
        report.pids(),
        three.iter().copied().collect(),
        "{}",
        report.summary()
    );
    server.signal(Signal::SIGTTOU);
    server
        .log
        .wait_for("removed worker has stopped", 1, Duration::from_secs(10));
    server.wait_workers(2, &[], Duration::from_secs(5));
    assert_eq!(harness::listening_inodes(port).len(), 2);
    server.wait_healthy(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_supervisor_leaves_no_worker_behind() {
    let server = Server::start(&[("PROCESSES", "2"), ("THREADS", "2")]).await;
    let load = Load::start(LoadSpec::get(server.addr, 4, true, "/healthz"));
    load.wait_requests(200, Duration::from_secs(10)).await;
    let workers = server.workers();
    assert_eq!(workers.len(), 2);
    server.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let gone = |pid: &u32| harness::proc_state(*pid).is_none_or(|s| s == 'Z');
    while !workers.iter().all(gone) && killed.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = killed.elapsed();
    let _ = load.stop().await;
    assert!(
        workers.iter().all(gone),
        "workers still running 3 s after the supervisor was killed: {workers:?}"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "workers took {elapsed:?} to die"
    );
    // They died by the kernel's parent-death signal (SIGKILL), not by
    // noticing it themselves; as their subreaper we collect their status.
    for pid in &workers {
        use nix::sys::wait::{waitpid, WaitStatus};
        let status = waitpid(Pid::from_raw(*pid as i32), None).unwrap();
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
            "worker {pid}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_panics_at_boot_stops_the_supervisor() {
    let flag = harness::TempPath::new("panic");
    std::fs::write(&flag.0, b"panic").unwrap();
    let flag_str = flag.text();
    let started = Instant::now();
    let mut server = Server::spawn(Options {
        vars: &[
            ("PROCESSES", "2"),
            ("QUIZBENCH_TEST_BOOT_PANIC_FILE", &flag_str),
        ],
        ..Options::default()
    })
    .await;
    // Watch it exit (zombie, not yet reaped) to read its CPU time.
    while harness::proc_state(server.pid).is_some_and(|s| s != 'Z')
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = harness::cpu_seconds(server.pid).unwrap_or(0.0);
    let code = server.wait_exit(Duration::from_secs(2));
    assert_eq!(
        code,
        Some(Some(1)),
        "a failure exit; log:\n{}",
        server.log.dump()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        server.log.count("worker started"),
        2,
        "no respawn of a worker that cannot boot"
    );
    assert!(
        server
            .log
            .lines()
            .iter()
            .any(|l| l.contains("could not boot") && l.contains("stopping the supervisor")),
        "a clear message; log:\n{}",
        server.log.dump()
    );
    assert!(
        server
            .log
            .lines()
            .iter()
            .any(|l| l.contains("panicking at boot")),
        "the panic message is shown"
    );
    assert!(cpu < 3.0, "no busy loop: {cpu} s of CPU");
}

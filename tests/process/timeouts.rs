//! Three distinct timeouts: the supervisor's heartbeat (a worker whose
//! event loop is blocked is killed and replaced), the request deadline (a
//! slow request gets 503 while its worker serves on), and the header-read
//! and keep-alive timeouts of a connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::vars;
use crate::harness::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_timeout_kills_a_worker_whose_event_loop_is_blocked() {
    // 5 s of CPU work run inline on a single event loop blocks it: the
    // request timeout cannot fire (the loop that would fire it is blocked),
    // the supervisor's heartbeat does. (The spin hook's length does not
    // depend on the machine or the build, as a grading request's does.)
    let env = vars(
        "SUPERVISOR=true THREADS=1 CPU_OFFLOAD=inline QUIZBENCH_TEST_HOOKS=1 \
         HEARTBEAT_TIMEOUT_SECS=1 REQUEST_TIMEOUT_SECS=1",
    );
    let server = Server::start(&env).await;
    let before = server.workers();
    let sent = Instant::now();
    let addr = server.addr;
    let result = tokio::task::spawn_blocking(move || {
        let s = harness::http_get(addr, "/__test/spin?ms=5000");
        (s, sent.elapsed())
    })
    .await
    .unwrap();
    let (outcome, took) = result;
    assert!(
        outcome.is_err(),
        "the request on the killed worker gets no response: {outcome:?}"
    );
    assert!(took < Duration::from_secs(4), "killed after {took:?}");
    let killed = &server.log.events("stopped ticking")[0];
    assert!(killed["silent_ms"].as_u64().unwrap() >= 1000);
    server.wait_workers(1, &before, Duration::from_secs(5));
    server.wait_healthy(Duration::from_secs(5));
    assert_eq!(
        server.metrics().sum(
            "quizbench_worker_restarts_total",
            &[("reason", "heartbeat")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_answers_503_and_the_worker_serves_on() {
    let env = vars("THREADS=1 CPU_OFFLOAD=pool REQUEST_TIMEOUT_SECS=1 QUIZBENCH_TEST_HOOKS=1");
    let server = Server::start(&env).await;
    let addr = server.addr;
    let started = Instant::now();
    // 3 s of CPU-pool work: longer than the timeout on any machine (a
    // grading request's length depended on the machine and build).
    let slow = tokio::task::spawn_blocking(move || harness::http_get(addr, "/__test/spin?ms=3000"));
    // Meanwhile the event loop answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let health = harness::http_get(server.addr, "/healthz").unwrap();
    assert_eq!(health.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the event loop answered while the slow request ran on the pool"
    );
    let res = slow.await.unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.body.contains("\"timeout\""), "{}", res.body);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    assert_eq!(
        harness::http_get(server.addr, "/runtime").unwrap().status,
        200
    );
    assert!(
        server
            .metrics()
            .sum("quizbench_request_timeouts_total", &[])
            >= 1.0
    );
}

/// Reads until the peer closes; returns how long that took.
fn time_until_closed(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_read_and_keep_alive_timeouts_close_connections() {
    let env = vars("HEADER_READ_TIMEOUT_MS=300 KEEPALIVE_TIMEOUT_SECS=1");
    let server = Server::start(&env).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // A client that sends half a request head and stops.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let closed = time_until_closed(slow, Duration::from_secs(5)).expect("closed");
        assert!(
            closed >= Duration::from_millis(250) && closed < Duration::from_millis(2000),
            "slow header closed after {closed:?}"
        );
        // A keep-alive connection left idle after a response.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let closed = time_until_closed(idle, Duration::from_secs(5)).expect("closed");
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_millis(3000),
            "idle keep-alive closed after {closed:?}"
        );
    })
    .await
    .unwrap();
}

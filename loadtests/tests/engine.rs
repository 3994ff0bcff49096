//! Engine tests against the in-test server: latency of a known handler,
//! coordinated omission (open vs closed under a server stall), exact counts
//! and error classification, response framings, reconnects, and scenarios
//! with login and session cookies.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Framing, Reply, Stall, TestServer};
use loadtests::analysis::report::RunReport;
use loadtests::generator::engine::{self, Model, RunConfig, Stop};
use loadtests::generator::http::{HttpUrl, RequestBuilder};
use loadtests::generator::scenarios::{
    AuthMode, FixedRequest, JourneyWeights, Quizbench, QuizbenchOptions, ScenarioFactory,
    ScenarioKind,
};
use loadtests::generator::schedule::{Arrival, Stage};

fn closed(addr: std::net::SocketAddr, c: usize, stop: Stop) -> RunConfig {
    RunConfig {
        addr,
        threads: 2,
        concurrency: c,
        stop,
        model: Model::Closed {
            ramp: Duration::ZERO,
            spawn_rate: None,
        },
        timeout: Duration::from_secs(5),
        seed: 1,
        progress: loadtests::generator::engine::Progress::Off,
        settle: None,
    }
}

fn fixed(url: &str, method: &str, body: &[u8]) -> Arc<dyn ScenarioFactory> {
    let u = HttpUrl::parse(url).unwrap();
    let b = RequestBuilder::new(u.host_header.clone(), vec![]);
    Arc::new(FixedRequest::new(&b, method, &u.path, body))
}

fn run(cfg: &RunConfig, s: Arc<dyn ScenarioFactory>) -> RunReport {
    let out = engine::run(cfg, s).unwrap();
    RunReport::new(cfg, &out, "test", "url", SystemTime::now())
}

/// `requests` GETs of `path` on `srv` by `users` closed-model users.
fn get(srv: &TestServer, path: &str, users: usize, requests: u64) -> RunReport {
    run(
        &closed(srv.addr, users, Stop::Requests(requests)),
        fixed(&srv.url(path), "GET", b""),
    )
}

/// Count of recorded latencies at or above `ms`.
fn count_at_least(r: &RunReport, ms: f64) -> u64 {
    r.histogram_us
        .iter()
        .filter(|[v, _]| *v as f64 >= ms * 1000.0)
        .map(|[_, n]| n)
        .sum()
}

/// A handler that sleeps 20 ms gives a median near 20 ms, and exactly the
/// requested number of requests is sent.
#[test]
fn twenty_ms_handler_median() {
    let srv = TestServer::start(|_| Reply::ok("ok").delay(Duration::from_millis(20)));
    let r = get(&srv, "/sleep", 10, 200);
    assert_eq!(r.requests, 200);
    assert_eq!(r.successes, 200);
    assert_eq!(srv.total.load(std::sync::atomic::Ordering::SeqCst), 200);
    assert!(
        r.latency_ms.p50 >= 19.5 && r.latency_ms.p50 < 35.0,
        "p50 {}",
        r.latency_ms.p50
    );
    assert!(r.latency_ms.min >= 19.5, "min {}", r.latency_ms.min);
    // 10 users at ~20 ms each: well under 10 * 50 req/s
    assert!(r.rps > 100.0 && r.rps <= 500.0, "rps {}", r.rps);
    assert_eq!(r.status_codes.get(&200), Some(&200));
    assert!(!r.generator.saturated, "{:?}", r.generator);
}

/// A server that stalls for 1 s after its 100th request.
fn stalling_server() -> TestServer {
    let stall = Stall::new(100, Duration::from_secs(1));
    TestServer::start(move |_| {
        let mut r = Reply::ok("ok");
        r.until = stall.until();
        r
    })
}

/// Open model with a 1 s server stall: requests that were due during the
/// stall carry it in their latency (p99 well above 500 ms), while the
/// service time (from the actual send) and the schedule counters show why.
#[test]
fn open_model_sees_stall() {
    let srv = stalling_server();
    let mut cfg = closed(srv.addr, 50, Stop::Duration(Duration::from_secs(3)));
    cfg.model = Model::Open {
        stages: vec![Stage {
            seconds: f64::INFINITY,
            rate: 200.0,
        }],
        arrival: Arrival::Uniform,
        max_lag: Duration::from_secs(1),
    };
    let r = run(&cfg, fixed(&srv.url("/"), "GET", b""));
    let m = r.open_model.as_ref().unwrap();
    assert!((598..=602).contains(&m.intended), "intended {}", m.intended);
    assert_eq!(m.sent + m.dropped, m.intended);
    assert_eq!(r.requests, m.sent);
    assert!(
        m.late > 50,
        "requests due during the stall were late: {m:?}"
    );
    assert!(r.latency_ms.p99 > 500.0, "p99 {}", r.latency_ms.p99);
    assert!(r.latency_ms.max >= 900.0, "max {}", r.latency_ms.max);
    // many requests, not just the in-flight few, saw the stall
    assert!(
        count_at_least(&r, 250.0) > 60,
        "{}",
        count_at_least(&r, 250.0)
    );
    let service = r.service_time_ms.as_ref().unwrap();
    assert!(service.p50 < r.latency_ms.p99);
}

/// The same stall in the closed model shows only in the few requests that
/// were in flight: exactly one per VU is slow, p99 stays low (what hey and
/// wrk would report).
#[test]
fn closed_model_hides_stall() {
    let srv = stalling_server();
    let cfg = closed(srv.addr, 2, Stop::Duration(Duration::from_secs(3)));
    let r = run(&cfg, fixed(&srv.url("/"), "GET", b""));
    assert!(r.requests > 200, "requests {}", r.requests);
    assert_eq!(count_at_least(&r, 500.0), 2, "{:?}", r.histogram_us);
    assert!(r.latency_ms.max >= 900.0);
    assert!(r.latency_ms.p99 < 500.0, "p99 {}", r.latency_ms.p99);
}

/// Status codes, connect refusals, timeouts and resets are counted exactly
/// and by kind.
#[test]
fn error_classification_is_exact() {
    let srv = TestServer::start(|req| match req.path.as_str() {
        "/500" => Reply::status(500, "boom"),
        "/404" => Reply::status(404, ""),
        "/hang" => Reply::ok("").framing(Framing::Hang),
        "/reset" => Reply::ok("").framing(Framing::Reset),
        _ => Reply::ok("ok"),
    });

    let r = get(&srv, "/500", 3, 37);
    assert_eq!((r.requests, r.responses, r.successes), (37, 37, 0));
    assert_eq!(r.errors.total, 37);
    assert_eq!(r.errors.status.get(&500), Some(&37));
    assert_eq!(r.success_rate, 0.0);

    let r = get(&srv, "/404", 2, 11);
    assert_eq!(r.errors.status.get(&404), Some(&11));

    let mut cfg = closed(srv.addr, 2, Stop::Requests(4));
    cfg.timeout = Duration::from_millis(300);
    let r = run(&cfg, fixed(&srv.url("/hang"), "GET", b""));
    assert_eq!((r.requests, r.errors.timeout, r.responses), (4, 4, 0));
    assert!(
        r.elapsed_s >= 0.55,
        "two rounds of 300 ms timeouts: {}",
        r.elapsed_s
    );

    let r = get(&srv, "/reset", 2, 6);
    assert_eq!((r.requests, r.errors.io, r.errors.total), (6, 6, 6));
    assert_eq!(r.errors.connection.reset, 6, "{:?}", r.errors);

    // a port with nothing listening
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let r = run(
        &closed(dead_addr, 2, Stop::Requests(10)),
        fixed(&format!("http://{dead_addr}/"), "GET", b""),
    );
    assert_eq!((r.requests, r.errors.connect, r.responses), (10, 10, 0));
    assert_eq!(
        (r.errors.connection.refused, r.errors.connection.other),
        (10, 0),
        "fewer failures than the connect circuit's limit are measured"
    );
}

/// A target where nothing listens ends a 30 s run at once: the connect
/// circuit opens after its limit of failed connects (none succeeded) and
/// the run's error says where it connected and which requests failed.
#[test]
fn a_refusing_target_opens_the_connect_circuit() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let started = std::time::Instant::now();
    let e = engine::run(
        &closed(dead_addr, 4, Stop::Duration(Duration::from_secs(30))),
        fixed(&format!("http://{dead_addr}/x"), "GET", b""),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let trip = e
        .downcast_ref::<loadtests::generator::client::CircuitTrip>()
        .expect("the circuit's error");
    assert_eq!(trip.addr, dead_addr);
    assert!(trip.failures >= 20, "{trip:?}");
    assert!(trip.first_error.contains("refused"), "{trip:?}");
    let text = e.to_string();
    assert!(
        text.contains("GET /x") && text.contains(&dead_addr.to_string()),
        "{text}"
    );
}

/// A server that dies mid-run is measured, not aborted: once a connect has
/// succeeded the circuit stays closed, and the refused connects after the
/// death are counted as such.
#[test]
fn a_server_dying_mid_run_is_measured_as_errors() {
    let srv = TestServer::start(|_| Reply::ok("ok"));
    let (addr, url) = (srv.addr, srv.url("/"));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        drop(srv);
    });
    let mut cfg = closed(addr, 2, Stop::Duration(Duration::from_millis(1200)));
    cfg.threads = 1;
    let r = run(&cfg, fixed(&url, "GET", b""));
    killer.join().unwrap();
    assert!(r.successes > 0, "{:?}", r.errors);
    assert!(r.errors.connection.refused > 20, "{:?}", r.errors);
    assert_eq!(
        r.errors.total,
        r.requests - r.successes,
        "every failure is counted"
    );
}

/// Chunked and Content-Length responses parse; wire bytes are counted
/// exactly; `Connection: close` makes the client reconnect for each request.
#[test]
fn framings_and_reconnects() {
    let srv = TestServer::start(|req| match req.path.as_str() {
        "/chunked" => Reply::ok("hello chunked world").framing(Framing::Chunked),
        "/close" => Reply::ok("bye").framing(Framing::Close),
        _ => Reply::ok("hello"),
    });
    let r = get(&srv, "/chunked", 2, 20);
    assert_eq!(r.successes, 20);
    // "HTTP/1.1 200 X\r\n" (16) + "Transfer-Encoding: chunked\r\n\r\n" (30)
    // + 7 chunks of "3\r\nxxx\r\n" (8 each) - 19 bytes = 6x3 + 1x1:
    // 6*8 + (3+1+2) = 54, + "0\r\n\r\n" (5) = 105 per response.
    assert_eq!(r.bytes_received, 20 * 105);

    let r = get(&srv, "/len", 2, 20);
    // "HTTP/1.1 200 X\r\n" (16) + "Content-Length: 5\r\n\r\n" (21) + 5
    assert_eq!(r.bytes_received, 20 * 42);
    assert_eq!(r.connections.opened, 2, "keep-alive: one connection per VU");
    assert!(r.setup.is_none(), "nothing to set up for a fixed URL");

    let r = get(&srv, "/close", 1, 10);
    assert_eq!(r.successes, 10);
    assert_eq!(
        r.connections.opened, 10,
        "one connection per closed response"
    );
    assert_eq!(r.errors.total, 0);
}

/// POST bodies and methods reach the server as given.
#[test]
fn post_body_is_sent() {
    let srv = TestServer::start(|req| {
        if req.method == "POST"
            && req.body == b"{\"a\":1}"
            && req.header("content-length") == Some("7")
        {
            Reply::status(201, "")
        } else {
            Reply::status(400, "")
        }
    });
    let r = run(
        &closed(srv.addr, 2, Stop::Requests(5)),
        fixed(&srv.url("/p"), "POST", b"{\"a\":1}"),
    );
    assert_eq!(r.status_codes.get(&201), Some(&5));
}

/// Threads get exact shares of the request budget, and per-thread
/// recorders merge into exact totals.
#[test]
fn request_budget_is_exact_over_threads() {
    let srv = TestServer::start(|_| Reply::ok("ok"));
    for (threads, c, n) in [(1, 1, 1), (2, 3, 1001), (3, 7, 50)] {
        let mut cfg = closed(srv.addr, c, Stop::Requests(n));
        cfg.threads = threads;
        let before = srv.total.load(std::sync::atomic::Ordering::SeqCst);
        let r = run(&cfg, fixed(&srv.url("/"), "GET", b""));
        let after = srv.total.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(r.requests, n);
        assert_eq!(after - before, n);
        let series: u64 = r.timeseries.iter().map(|s| s.responses).sum();
        assert_eq!(series, n);
        assert_eq!(r.latency_ms.count, n);
    }
}

/// A mock quizbench: login sets a session cookie; every other API route
/// requires it (401 otherwise); quizzes have two questions; an attempt is
/// checked against the quiz.
fn mock_quizbench() -> TestServer {
    TestServer::start(|req| {
        let path = req.path.as_str();
        if req.method == "POST" && path == "/api/v1/auth/login" {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let user = v["username"].as_str().unwrap_or("");
            if v["password"] != "quizbench" || !user.starts_with("student") {
                return Reply::status(401, "{}");
            }
            return Reply::ok(&format!(
                r#"{{"token":"tok-{user}","user":{{"username":"{user}"}}}}"#
            ))
            .header(
                "Set-Cookie",
                &format!("qb_session=tok-{user}; Path=/; HttpOnly"),
            );
        }
        let authed = req
            .header("cookie")
            .is_some_and(|c| c.starts_with("qb_session=tok-student"))
            || req
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok-student"));
        if !authed {
            return Reply::status(401, r#"{"error":{"code":"unauthorized","message":"no"}}"#);
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["api", "v1", "user"]) => Reply::ok("{}"),
            ("GET", ["api", "v1", "progress"]) => Reply::ok("[]"),
            ("GET", ["api", "v1", "quizzes"]) => Reply::ok("[]"),
            ("GET", ["api", "v1", "students", "select-options"]) => Reply::ok("[]"),
            ("GET", ["api", "v1", "quizzes", id]) => {
                let id: u32 = id.parse().unwrap();
                Reply::ok(&format!(
                    r#"{{"id":{id},"title":"q","questions":[
                    {{"id":{a},"position":1,"kind":"single","prompt":"p","choices":[{{"id":{c1},"text":"x"}},{{"id":{c2},"text":"y"}}]}},
                    {{"id":{b},"position":2,"kind":"text","prompt":"p","choices":[]}}]}}"#,
                    a = id * 10,
                    b = id * 10 + 1,
                    c1 = id * 100,
                    c2 = id * 100 + 1
                ))
                .framing(Framing::Chunked)
            }
            ("GET", ["api", "v1", "quizzes", _, "attempts"]) => Reply::ok("[]"),
            ("POST", ["api", "v1", "quizzes", id, "attempts"]) => {
                let id: i64 = id.parse().unwrap();
                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let a = &v["answers"];
                let ok = a[0]["question_id"] == id * 10
                    && [id * 100, id * 100 + 1]
                        .contains(&a[0]["choice_ids"][0].as_i64().unwrap_or(0))
                    && a[1]["question_id"] == id * 10 + 1
                    && a[1]["text"] == "answer";
                if ok {
                    Reply::status(201, r#"{"id":1,"score":1,"max_score":2}"#)
                } else {
                    Reply::status(422, "{}")
                }
            }
            _ => Reply::status(404, "{}"),
        }
    })
}

fn quizbench(
    srv: &TestServer,
    kind: ScenarioKind,
    measured_login: bool,
) -> Arc<dyn ScenarioFactory> {
    let u = HttpUrl::parse(&srv.url("/")).unwrap();
    Arc::new(Quizbench::new(
        QuizbenchOptions {
            kind,
            auth: AuthMode::Cookie,
            think: (Duration::from_millis(1), Duration::from_millis(5)),
            weights: JourneyWeights::default(),
            static_path: "/static/style.css".into(),
            measured_login,
            student_offset: 0,
        },
        RequestBuilder::new(u.host_header, vec![]),
    ))
}

/// select-options: each VU logs in once during setup (not measured) as a
/// different student and sends its cookie on every request.
#[test]
fn select_options_with_session() {
    let srv = mock_quizbench();
    let cfg = closed(srv.addr, 5, Stop::Requests(50));
    let out = engine::run(&cfg, quizbench(&srv, ScenarioKind::SelectOptions, false)).unwrap();
    let r = RunReport::new(&cfg, &out, "t", "select-options", SystemTime::now());
    assert_eq!(r.requests, 50);
    assert_eq!(r.successes, 50, "{:?}", r.status_codes);
    assert_eq!(r.endpoints.len(), 1);
    assert_eq!(r.endpoints[0].name, "GET /api/v1/students/select-options");
    let setup = r.setup.as_ref().unwrap();
    assert_eq!(setup.endpoints[0].name, "POST /api/v1/auth/login");
    assert_eq!(setup.endpoints[0].successes, 5);
    assert_eq!(srv.hits("POST /api/v1/auth/login"), 5);
}

/// The journey logs in (measured) once per VU, follows weighted tasks with
/// think time, and submits attempts built from the fetched quizzes, all
/// accepted by the server.
#[test]
fn journey_runs_against_mock() {
    let srv = mock_quizbench();
    let mut cfg = closed(srv.addr, 4, Stop::Duration(Duration::from_secs(2)));
    cfg.model = Model::Closed {
        ramp: Duration::ZERO,
        spawn_rate: Some(20.0),
    };
    let out = engine::run(&cfg, quizbench(&srv, ScenarioKind::Journey, true)).unwrap();
    let r = RunReport::new(&cfg, &out, "t", "journey", SystemTime::now());
    assert_eq!(r.errors.total, 0, "{:?}", r.status_codes);
    assert_eq!(srv.hits("POST /api/v1/auth/login"), 4);
    let names: Vec<&str> = r.endpoints.iter().map(|e| e.name.as_str()).collect();
    for n in [
        "POST /api/v1/auth/login",
        "GET /api/v1/quizzes",
        "GET /api/v1/quizzes/{id}",
        "POST /api/v1/quizzes/{id}/attempts",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let submit = r
        .endpoints
        .iter()
        .find(|e| e.name == "POST /api/v1/quizzes/{id}/attempts")
        .unwrap();
    assert!(submit.successes > 0);
    assert_eq!(
        submit.status_codes.keys().copied().collect::<Vec<_>>(),
        vec![201]
    );
    // think time of 1-5 ms bounds the rate per VU
    assert!(r.requests > 50, "{}", r.requests);
}

/// Staged open-model rates: the schedule follows each stage, and the time
/// series shows the step.
#[test]
fn staged_rates_follow_stages() {
    let srv = TestServer::start(|_| Reply::ok("ok"));
    let mut cfg = closed(srv.addr, 8, Stop::Duration(Duration::from_secs(2)));
    cfg.model = Model::Open {
        stages: vec![
            Stage {
                seconds: 1.0,
                rate: 50.0,
            },
            Stage {
                seconds: 1.0,
                rate: 150.0,
            },
        ],
        arrival: Arrival::Uniform,
        max_lag: Duration::from_secs(1),
    };
    let r = run(&cfg, fixed(&srv.url("/"), "GET", b""));
    let m = r.open_model.as_ref().unwrap();
    assert_eq!(m.intended, 200, "{m:?}");
    assert_eq!(m.dropped, 0);
    assert_eq!(r.requests, 200);
    let s = &r.timeseries;
    assert!((40..=60).contains(&s[0].responses), "{s:?}");
    assert!((140..=160).contains(&s[1].responses), "{s:?}");
}

/// Closed-model ramp: VUs start spread over the ramp, so the first second
/// carries fewer requests than the last with a fixed-latency server.
#[test]
fn ramp_spreads_vu_starts() {
    let srv = TestServer::start(|_| Reply::ok("ok").delay(Duration::from_millis(10)));
    let mut cfg = closed(srv.addr, 10, Stop::Duration(Duration::from_secs(2)));
    cfg.model = Model::Closed {
        ramp: Duration::from_secs(1),
        spawn_rate: None,
    };
    let r = run(&cfg, fixed(&srv.url("/"), "GET", b""));
    let s = &r.timeseries;
    assert!(s.len() >= 2);
    // ~half the users on average in second 0, all of them in second 1
    assert!(
        (s[0].responses as f64) < 0.8 * s[1].responses as f64,
        "{:?}",
        s.iter().map(|x| x.responses).collect::<Vec<_>>()
    );
    // every VU connected once, after the clock started
    assert_eq!(r.connections.opened, 10);
    assert!(r.setup.is_none());
}

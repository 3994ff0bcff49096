//! Overload and slow clients against the real binary: shedding beyond the
//! in-flight limit, a login flood against the bounded hashing pool, slow
//! and silent connections, the connection cap, an exhausted DB pool and the
//! request deadline. Requests are held in flight by a real lock on a real
//! table (the test locks `progress`), not by a sleep hook.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::harness::*;

/// Holds `ACCESS EXCLUSIVE` on a table until released: every query that
/// touches it waits (and keeps its request in flight).
pub struct TableLock(Option<PgConnection>);

impl TableLock {
    pub async fn take(url: &str, table: &str) -> TableLock {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query("begin").execute(&mut conn).await.unwrap();
        sqlx::query(&format!("lock table {table} in access exclusive mode"))
            .execute(&mut conn)
            .await
            .unwrap();
        TableLock(Some(conn))
    }

    pub async fn release(mut self) {
        if let Some(mut conn) = self.0.take() {
            sqlx::query("commit").execute(&mut conn).await.unwrap();
            let _ = conn.close().await;
        }
    }
}

/// Far more concurrent requests than MAX_IN_FLIGHT: exactly the limit is
/// admitted and served once unblocked, the rest get 503 + Retry-After at
/// once (counted as shed), and probes are exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_shed() {
    let (_serial, db, server) = serial_server(&[
        ("MAX_IN_FLIGHT", "8"),
        ("DB_POOL_MAX", "12"),
        ("REQUEST_TIMEOUT_SECS", "20"),
    ])
    .await;
    let token = server.token("student1").await;
    let lock = TableLock::take(&db.url, "progress").await;
    let progress = || server.request(Method::GET, "/api/v1/progress", Some(&token));
    let tasks: Vec<_> = (0..60).map(|_| spawn_request(progress())).collect();
    // Wait until the admitted ones are in flight and the rest answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tasks.iter().filter(|t| t.is_finished()).count() < 52 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Probes are exempt from shedding while the limit is reached.
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    assert_eq!(server.get("/readyz", None).await.status(), 200);
    // Shed requests do not wait for the admitted ones.
    let metrics_while_full = server.get("/metrics", None).await.status();
    assert_eq!(metrics_while_full, 503, "/metrics is not exempt");
    let released = Instant::now();
    lock.release().await;
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let Answer {
            status,
            retry_after,
            body,
            at,
            ..
        } = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(retry_after, "503 without Retry-After");
                assert!(at < released, "a shed request waited for the admitted ones");
                assert!(body.contains("\"overloaded\""), "{body}");
                shed += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 8, "exactly MAX_IN_FLIGHT requests admitted");
    assert_eq!(shed, 52);
    let m = server.metrics().await;
    // The /metrics request shed above counts too.
    assert_eq!(m.count("quizbench_shed_total"), shed + 1);
}

/// A login flood at over 10x the hashing pool's capacity (1 thread + 2
/// queued, OWASP argon2id): logins beyond it get 503 at once, while the
/// quiz list keeps answering 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_is_refused_by_the_pool_and_reads_keep_answering() {
    let (_serial, _db, server) = serial_server(&[
        ("ARGON2_MEMORY_KIB", "19456"),
        ("ARGON2_ITERATIONS", "2"),
        ("CPU_POOL_THREADS", "1"),
        ("CPU_POOL_QUEUE", "2"),
        ("LOGIN_MAX_FAILURES", "0"),
    ])
    .await;
    assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);
    let logins: Vec<_> = (0..40)
        .map(|i| {
            let body = json!({"username": format!("flood{i}"), "password": "wrong password"});
            spawn_request(
                server
                    .request(Method::POST, "/api/v1/auth/login", None)
                    .json(&body),
            )
        })
        .collect();
    let mut reads = Vec::new();
    for _ in 0..4 {
        let (http, url) = (server.http.clone(), server.url("/api/v1/quizzes"));
        reads.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                statuses.push(http.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        }));
    }
    let (mut refused, mut hashed) = (0, 0);
    for t in logins {
        let a = t.await.unwrap();
        match a.status {
            401 => hashed += 1,
            503 => {
                assert!(a.retry_after);
                assert!(a.body.contains("\"unavailable\""), "{}", a.body);
                refused += 1;
            }
            other => panic!("login answered {other}: {}", a.body),
        }
    }
    for t in reads {
        assert!(
            t.await.unwrap().iter().all(|s| *s == 200),
            "a quiz-list read failed"
        );
    }
    assert!(refused > 0, "the pool never refused ({hashed} hashed)");
    assert!(hashed >= 3, "the pool hashed only {hashed}");
    assert_eq!(refused + hashed, 40);
}

/// Hundreds of connections that trickle a request head or send nothing are
/// closed at the header timeout; healthy clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_cut_at_the_header_timeout() {
    let (_serial, _db, server) = serial_server(&[
        ("HEADER_READ_TIMEOUT_MS", "1000"),
        ("KEEPALIVE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let started = Instant::now();
    // An idle keep-alive connection is closed after the keep-alive timeout.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut slow = Vec::new();
    for i in 0..300 {
        let addr = server.addr;
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let trickle = i % 2 == 0;
            if trickle {
                let head = b"GET /api/v1/quizzes HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let (mut r, mut w) = s.into_split();
                let writer = tokio::spawn(async move {
                    for b in head.iter().chain(std::iter::repeat(&b'z')) {
                        if w.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
                let mut buf = [0u8; 1024];
                let res = tokio::time::timeout(Duration::from_secs(8), async {
                    loop {
                        match tokio::io::AsyncReadExt::read(&mut r, &mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                writer.abort();
                res.is_ok()
            } else {
                read_until_close(&mut s, Duration::from_secs(8))
                    .await
                    .closed
            }
        }));
    }
    // Healthy clients, meanwhile.
    for _ in 0..20 {
        assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut closed = 0;
    for t in slow {
        if t.await.unwrap() {
            closed += 1;
        }
    }
    assert_eq!(closed, 300, "slow connections left open");
    let r = read_until_close(&mut idle, Duration::from_secs(4)).await;
    assert_eq!(r.status(), Some(200));
    assert!(r.closed, "idle keep-alive connection left open");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);
    // Only the metrics scrape's own connection is still open.
    let m = server.metrics().await;
    assert!(
        m.count("quizbench_open_connections") <= 2,
        "{}",
        m.count("quizbench_open_connections")
    );
}

/// Beyond MAX_CONNECTIONS a new connection waits in the kernel backlog (it
/// is neither refused nor reset) and is served once a slot frees.
#[tokio::test]
async fn connections_beyond_the_cap_wait_in_the_backlog() {
    let (_serial, _db, server) = serial_server(&[("MAX_CONNECTIONS", "6")]).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let r = read_until_close(&mut s, Duration::from_millis(500)).await;
        assert_eq!(r.status(), Some(200));
        assert!(!r.closed, "keep-alive connection closed");
        held.push(s);
    }
    // The 7th: connects (backlog), gets no answer while the cap is full.
    let mut waiting = TcpStream::connect(server.addr)
        .await
        .expect("refused at the cap");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = read_until_close(&mut waiting, Duration::from_millis(800)).await;
    assert!(
        r.bytes.is_empty() && !r.closed,
        "served or closed beyond the cap: {r:?}"
    );
    // Free one slot: the waiting connection is accepted and served.
    drop(held.pop());
    let r = read_until_close(&mut waiting, Duration::from_secs(5)).await;
    assert_eq!(r.status(), Some(200), "{r:?}");
}

/// DB_POOL_MAX=1 with its connection held by a slow request: other DB
/// requests get 503 within DB_ACQUIRE_TIMEOUT_MS (while the slow one is
/// still running), cached reads still answer, and a request over
/// REQUEST_TIMEOUT_SECS gets a 503 `timeout` (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_and_request_deadline() {
    let (_serial, db, server) = serial_server(&[
        ("DB_POOL_MAX", "1"),
        ("DB_ACQUIRE_TIMEOUT_MS", "300"),
        ("REQUEST_TIMEOUT_SECS", "3"),
        ("DB_STATEMENT_TIMEOUT_MS", "20000"),
        ("CACHE_MODE", "local"),
    ])
    .await;
    let token = server.token("student1").await;
    assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);
    let lock = TableLock::take(&db.url, "progress").await;
    let slow = {
        let (http, url, token) = (
            server.http.clone(),
            server.url("/api/v1/progress"),
            token.clone(),
        );
        tokio::spawn(async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let res = server.get("/api/v1/quizzes/1/attempts", Some(&token)).await;
        assert!(res.headers().contains_key("retry-after"));
        let body = assert_error(res, 503, "unavailable").await;
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database"));
        assert!(
            !slow.is_finished(),
            "the slow request should still hold the connection"
        );
    }
    // Cached common content does not need the pool.
    let res = server.get("/api/v1/quizzes", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-cache"], "hit");
    // The slow request reaches the request deadline.
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"timeout\""), "{body}");
    assert_eq!(
        server
            .metrics()
            .await
            .count("quizbench_request_timeouts_total"),
        1
    );
    lock.release().await;
    // Recovered: the pool's connection is usable again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.get("/api/v1/progress", Some(&token)).await.status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the lock: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.assert_no_500s().await;
}

//! Dependency faults against the real binary: a hung PostgreSQL (a proxy
//! that stops answering), PostgreSQL down at start and restarted under a
//! submit load (then a check that no acknowledged attempt is lost or
//! duplicated), Redis paused and stopped under load, a hot cache key
//! expiring under load, and a response lost after the work was done.
//! Dependencies that are stopped or paused are private instances started
//! by the test, never the machine's shared ones.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::harness::*;

fn socket_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.rsplit('@').next().unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}").parse().unwrap()
}

/// The same URL with its host and port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}/{path}")
}

/// PostgreSQL stops answering (a proxy holds every byte): DB routes get a
/// 503 at the request deadline or the acquire timeout, liveness stays 200,
/// and the service recovers by itself once bytes flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_postgres_is_a_503_at_the_deadline_then_recovers() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    let proxy = Proxy::start(socket_of(&db.url)).await;
    let server = Server::start(
        &via(&db.url, proxy.addr),
        &redis_url(),
        &[
            ("REQUEST_TIMEOUT_SECS", "2"),
            ("DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("DB_POOL_MAX", "4"),
            ("CACHE_MODE", "off"),
        ],
    );
    let token = server.token("student1").await;
    assert_eq!(
        server.get("/api/v1/progress", Some(&token)).await.status(),
        200
    );
    // Let the pool take its connection back (sqlx returns it from a task),
    // so a request gets it and hangs on it until the deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(HANG);
    let mut tasks = Vec::new();
    for path in [
        "/api/v1/progress",
        "/api/v1/quizzes",
        "/api/v1/quizzes/1",
        "/api/v1/quizzes/1/attempts",
        "/api/v1/progress",
        "/api/v1/quizzes",
    ] {
        tasks.push(spawn_request(server.request(
            Method::GET,
            path,
            Some(&token),
        )));
    }
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    for t in tasks {
        let Answer {
            status,
            retry_after,
            body,
            ..
        } = t.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(retry_after);
        assert!(
            body.contains("\"timeout\"") || body.contains("\"unavailable\""),
            "{body}"
        );
    }
    assert_eq!(server.get("/readyz", None).await.status(), 503);
    assert!(
        server
            .metrics()
            .await
            .count("quizbench_request_timeouts_total")
            >= 1
    );
    proxy.set(FORWARD);
    server.wait_ready(200, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = server.get("/api/v1/progress", Some(&token)).await.status();
        let q = server.get("/api/v1/quizzes", None).await.status();
        if p == 200 && q == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {p} {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.assert_no_500s().await;
}

/// What one load client saw.
#[derive(Default)]
struct Ledger {
    /// (user, key) -> attempt id, for every 201.
    acked: BTreeMap<(i64, String), i64>,
    /// Keys sent, acknowledged or not.
    sent: HashSet<(i64, String)>,
    statuses: Statuses,
    unexpected: Vec<String>,
}

/// Submits attempts with Idempotency-Keys, retrying each key after a 503 or
/// a transport error until it is acknowledged, until `stop`.
async fn submit_load(
    base: String,
    token: String,
    user_id: i64,
    body: Value,
    until: Instant,
    ledger: Arc<Mutex<Ledger>>,
) {
    let http = client();
    let url = format!("{base}/api/v1/quizzes/1/attempts");
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let key = format!("load-{user_id}-{n}-{}", unique(""));
        ledger.lock().unwrap().sent.insert((user_id, key.clone()));
        // A key is retried until acknowledged (bounded).
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            let res = http
                .post(&url)
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .timeout(Duration::from_secs(8))
                .json(&body)
                .send()
                .await;
            // What happened, then the ledger (no lock across an await).
            let (label, done, acked, unexpected) = match res {
                Ok(res) if res.status() == 201 => {
                    let v: Value = res.json().await.unwrap();
                    ("201".to_string(), true, v["id"].as_i64(), None)
                }
                Ok(res) if res.status() == 503 => ("503".to_string(), false, None, None),
                Ok(res) => {
                    let status = res.status().as_u16();
                    let text = res.text().await.unwrap_or_default();
                    (
                        status.to_string(),
                        true,
                        None,
                        Some(format!("{status}: {text}")),
                    )
                }
                Err(e) => {
                    let kind = if e.is_timeout() { "timeout" } else { "error" };
                    (format!("transport {kind}"), false, None, None)
                }
            };
            {
                let mut l = ledger.lock().unwrap();
                l.statuses.add(label);
                if let Some(id) = acked {
                    if let Some(prev) = l.acked.insert((user_id, key.clone()), id) {
                        assert_eq!(prev, id, "one key acknowledged with two ids");
                    }
                }
                if let Some(u) = unexpected {
                    l.unexpected.push(u);
                }
            }
            if done {
                break;
            }
            if Instant::now() > give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every acknowledged attempt exists exactly once under its key, no key
/// has two rows, every row of the run was acknowledged, and progress
/// counts match the attempts.
async fn check_ledger(db_url: &str, ledger: &Ledger) {
    let mut conn = PgConnection::connect(db_url).await.unwrap();
    for ((user, key), id) in &ledger.acked {
        let rows: Vec<(i64,)> =
            sqlx::query_as("select id from attempts where user_id = $1 and idempotency_key = $2")
                .bind(user)
                .bind(key)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            rows,
            vec![(*id,)],
            "acknowledged attempt {key} of user {user}"
        );
    }
    let stored: Vec<(i64, String, i64)> = sqlx::query_as(
        "select user_id, idempotency_key, count(*) from attempts \
         where idempotency_key like 'load-%' group by 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (user, key, n) in &stored {
        assert_eq!(*n, 1, "key {key} of user {user} has {n} rows");
        assert!(
            ledger.sent.contains(&(*user, key.clone())),
            "a row nobody sent: {key}"
        );
        assert!(
            ledger.acked.contains_key(&(*user, key.clone())),
            "row {key} stored but never acknowledged (its retries gave up)"
        );
    }
    assert_eq!(stored.len(), ledger.acked.len());
    let mismatched: i64 = sqlx::query_scalar(
        "select count(*) from progress p where p.attempt_count <> \
         (select count(*) from attempts a where a.user_id = p.user_id and a.quiz_id = p.quiz_id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(mismatched, 0, "progress counts differ from attempts");
    let _ = conn.close().await;
}

/// PostgreSQL down when the server starts: it starts, liveness 200,
/// readiness and DB routes 503; it recovers by itself when PostgreSQL
/// comes up. Then PostgreSQL is restarted under a submit load with
/// retried Idempotency-Keys: the load sees 503s, nothing else, and every
/// acknowledged attempt exists exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_at_start_and_restarted_under_load() {
    let _serial = serial().await;
    let mut pg = PrivatePg::init();
    pg.start().await;
    let url = pg.url("quizbench");
    migrate_and_seed(&url).await;
    pg.stop();

    let server = Server::start(
        &url,
        &redis_url(),
        &[
            ("DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("DB_POOL_MAX", "4"),
            ("REQUEST_TIMEOUT_SECS", "5"),
            ("CACHE_MODE", "local"),
        ],
    );
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    let res = server.get("/readyz", None).await;
    assert_eq!(res.status(), 503);
    let ready: Value = res.json().await.unwrap();
    assert_eq!(ready["postgres"], "unavailable");
    assert_eq!(ready["redis"], "ok");
    let res = server.get("/api/v1/quizzes", None).await;
    res.expect_error(503, "unavailable").await;
    let res = server.try_login("student1", "quizbench").await;
    res.expect_error(503, "unavailable").await;

    pg.start().await;
    server.wait_ready(200, Duration::from_secs(10)).await;
    assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);

    // The restart under load.
    let body = answers_for(&server.quiz(1).await);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let until = Instant::now() + Duration::from_secs(5);
    let mut clients = Vec::new();
    for user in 1..=6i64 {
        let token = server.token(&format!("student{user}")).await;
        clients.push(tokio::spawn(submit_load(
            server.base.clone(),
            token,
            user,
            body.clone(),
            until,
            ledger.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        std::thread::sleep(Duration::from_millis(800));
        pg
    })
    .await
    .unwrap();
    pg.start().await;
    for c in clients {
        c.await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    eprintln!("submit load across the restart: {:?}", ledger.statuses.0);
    assert!(
        ledger.unexpected.is_empty(),
        "unexpected answers: {:?}",
        ledger.unexpected
    );
    assert!(
        ledger.statuses.get("503") > 0,
        "the restart was not noticed: {:?}",
        ledger.statuses.0
    );
    assert!(
        ledger.acked.len() > 12,
        "too little load: {:?}",
        ledger.statuses.0
    );
    check_ledger(&url, &ledger).await;
    server.assert_no_500s().await;
}

/// A response lost after the attempt was committed (the proxy in front of
/// the server closes the connection instead of relaying it): the retry
/// with the same Idempotency-Key replays, and there is exactly one row.
#[tokio::test]
async fn retry_after_a_dropped_response_is_one_row() {
    let (_serial, db, server) = serial_server(&[]).await;
    let proxy = Proxy::start(server.addr).await;
    let token = server.token("student2").await;
    let body = answers_for(&server.quiz(2).await);
    let through_proxy = || {
        client()
            .post(format!("http://{}/api/v1/quizzes/2/attempts", proxy.addr))
            .bearer_auth(&token)
            .header("idempotency-key", "dropped-1")
            .json(&body)
            .send()
    };
    proxy.set(DROP_RESPONSES);
    assert!(
        through_proxy().await.is_err(),
        "the response should have been dropped"
    );
    let count = || {
        scalar(
            &db.url,
            "select count(*) from attempts where idempotency_key = 'dropped-1'",
        )
    };
    assert_eq!(count().await, 1, "the dropped request was committed");
    proxy.set(FORWARD);
    let res = through_proxy().await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    // Concurrent duplicates of a new key: one row, the others replay.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let req = server
            .request(Method::POST, "/api/v1/quizzes/2/attempts", Some(&token))
            .header("idempotency-key", "dup-2")
            .json(&body);
        tasks.push(spawn_request(req));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let a = t.await.unwrap();
        ids.insert(a.json()["id"].as_i64().unwrap());
        fresh += usize::from(!a.replayed);
    }
    assert_eq!(
        ids.len(),
        1,
        "concurrent duplicates stored different attempts"
    );
    assert_eq!(fresh, 1);
    assert_eq!(count().await, 1);
    assert_eq!(
        scalar(
            &db.url,
            "select count(*) from attempts where idempotency_key = 'dup-2'"
        )
        .await,
        1
    );
}

/// Redis paused (CLIENT PAUSE) and then stopped under load, with
/// CACHE_MODE=redis: authenticated routes answer 503 (never 401, never an
/// unauthenticated 200), the quiz list stays 200 marked `X-Cache: bypass`,
/// readiness stays 200; all recover when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_and_stopped_under_load() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    let mut redis = PrivateRedis::start().await;
    let server = Server::start(
        &db.url,
        &redis.url(),
        &[
            ("CACHE_MODE", "redis"),
            ("REDIS_TIMEOUT_MS", "300"),
            ("CACHE_TTL_SECS", "60"),
        ],
    );
    let token = server.token("student1").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Statuses::default()));
    let mut load = Vec::new();
    for i in 0..4 {
        let (http, base, token, stop, seen) = (
            server.http.clone(),
            server.base.clone(),
            token.clone(),
            stop.clone(),
            seen.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (path, auth) = match i {
                    0 => ("/api/v1/user", true),
                    1 => ("/api/v1/progress", false),
                    2 => ("/api/v1/quizzes", false),
                    _ => ("/readyz", false),
                };
                let mut req = http.get(format!("{base}{path}"));
                if auth {
                    req = req.bearer_auth(&token);
                }
                let res = req.send().await.unwrap();
                let cache = res
                    .headers()
                    .get("x-cache")
                    .map(|v| format!(" x-cache={}", v.to_str().unwrap()))
                    .unwrap_or_default();
                let label = format!(
                    "{path}{} {}{cache}",
                    if auth { " (token)" } else { "" },
                    res.status().as_u16()
                );
                seen.lock().unwrap().add(label);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.pause(1500).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // Unpaused: sessions are intact.
    assert_eq!(server.get("/api/v1/user", Some(&token)).await.status(), 200);
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = server.try_login("student2", "quizbench").await;
    res.expect_error(503, "unavailable").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    eprintln!("under Redis faults: {:?}", seen.0);
    for (label, n) in &seen.0 {
        let ok = matches!(
            label.as_str(),
            "/api/v1/user (token) 200"
                | "/api/v1/user (token) 503"
                | "/api/v1/progress 401"
                | "/readyz 200"
                | "/api/v1/quizzes 200 x-cache=hit"
                | "/api/v1/quizzes 200 x-cache=miss"
                | "/api/v1/quizzes 200 x-cache=bypass"
        );
        assert!(ok, "unexpected under Redis faults: {label} (x{n})");
    }
    assert!(seen.get("/api/v1/user (token) 503") > 0, "{:?}", seen.0);
    assert!(
        seen.get("/api/v1/quizzes 200 x-cache=bypass") > 0,
        "{:?}",
        seen.0
    );
    let m = server.metrics().await;
    assert!(m.count("quizbench_cache_bypass_total") > 0);

    // Back (empty: the sessions are gone with the data).
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = loop {
        let res = server.try_login("student1", "quizbench").await;
        if res.status() == 200 {
            let v: Value = res.json().await.unwrap();
            break v["token"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "login did not recover: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(server.get("/api/v1/user", Some(&token)).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = server.get("/api/v1/quizzes", None).await;
        assert_eq!(res.status(), 200);
        if res.headers()["x-cache"] != "bypass" {
            break;
        }
        assert!(Instant::now() < deadline, "the cache did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.assert_no_500s().await;
}

/// A hot key expiring under load (CACHE_MODE=redis, 1 s TTL, 32 clients):
/// PostgreSQL sees about one rebuild per expiry (cache misses), not one
/// per waiting request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_key_expiry_is_single_flight() {
    let env = vars("CACHE_MODE=redis CACHE_TTL_SECS=1 THREADS=2");
    let (_serial, _db, server) = serial_server(&env).await;
    let run_for = Duration::from_millis(3200);
    let until = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, url) = (server.http.clone(), server.url("/api/v1/quizzes"));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let res = http.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 200);
                let _ = res.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut requests = 0;
    for t in tasks {
        requests += t.await.unwrap();
    }
    let m = server.metrics().await;
    let misses = m.count("quizbench_cache_misses_total");
    let hits = m.count("quizbench_cache_hits_total");
    eprintln!("{requests} requests: {misses} misses (rebuilds), {hits} hits");
    assert_eq!(m.count("quizbench_cache_bypass_total"), 0);
    assert_eq!(misses + hits, requests);
    // One rebuild at the start and one per expiry (1 s TTL over 3.2 s),
    // with one of slack.
    let expiries = run_for.as_secs() + 1;
    assert!(
        misses <= expiries + 1,
        "{misses} rebuilds for {expiries} expiries"
    );
    // A corrupt cached value is a miss (rebuilt), never served.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let version: Option<u64> = redis::cmd("GET")
        .arg(format!("{}content:version", server.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let key = format!("{}content:v{}:quizzes", server.prefix, version.unwrap_or(0));
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(b"{\"truncated\": [1, 2".as_slice())
        .arg("EX")
        .arg(30)
        .query_async(&mut conn)
        .await
        .unwrap();
    let res = server.get("/api/v1/quizzes", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-cache"],
        "miss",
        "a corrupt value was not a miss"
    );
    let list: Value = res.json().await.unwrap();
    assert!(list.as_array().is_some_and(|a| !a.is_empty()), "{list}");
    assert!(
        requests > 10 * misses,
        "too little load to tell ({requests} requests)"
    );
}

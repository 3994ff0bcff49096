//! Authentication cases the in-process API suite (tests/api/auth.rs) does
//! not cover, against the real binary: concurrent duplicate registration,
//! the dummy hash counted in /metrics, throttling per address that stops
//! hashing, a planted (never issued) session token, absolute expiry.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// Ten registrations of one username at once: one 201, nine 409, one row.
#[tokio::test]
async fn concurrent_duplicate_registration_creates_one_user() {
    let (_serial, db, server) = serial_server(&[]).await;
    let before = scalar(&db.url, "select count(*) from users").await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let body = json!({"username": "twin", "password": format!("password {i}")});
        let req = server.request(Method::POST, "/api/v1/auth/register", None);
        tasks.push(spawn_request(req.json(&body)));
    }
    let mut created = 0;
    for t in tasks {
        let a = t.await.unwrap();
        let (status, body) = (a.status, a.json());
        match status {
            201 => created += 1,
            409 => assert_eq!(body["error"]["code"], "conflict"),
            other => panic!("registration answered {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        scalar(&db.url, "select count(*) from users").await,
        before + 1
    );
    assert_eq!(
        scalar(
            &db.url,
            "select count(*) from users where username = 'twin'"
        )
        .await,
        1
    );
}

async fn login(server: &Server, username: &str, password: &str) -> reqwest::Response {
    server
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"username": username, "password": password}),
        )
        .await
}

/// Unknown user and wrong password: same status and body, a dummy hash
/// counted for the unknown user only. Throttling: per username, then per
/// address (5x the username allowance); while throttled nothing is hashed.
#[tokio::test]
async fn dummy_hash_and_throttling_per_username_and_address() {
    let (_serial, _db, server) = serial_server(&[("LOGIN_MAX_FAILURES", "2")]).await;
    let dummies = |m: &Metrics| m.count("quizbench_dummy_hash_verifications_total");

    let d0 = dummies(&server.metrics().await);
    let wrong = login(&server, "student1", "not the password").await;
    assert_eq!(
        dummies(&server.metrics().await),
        d0,
        "a known user needs no dummy hash"
    );
    let unknown = login(&server, "nosuchuser", "not the password").await;
    assert_eq!(
        dummies(&server.metrics().await),
        d0 + 1,
        "the unknown user costs a dummy hash"
    );
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let wrong_headers = wrong.headers().clone();
    let unknown_headers = unknown.headers().clone();
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
    for h in ["content-type", "retry-after", "set-cookie"] {
        assert_eq!(wrong_headers.get(h), unknown_headers.get(h), "{h}");
    }

    // Per username: the second failure reaches the limit; then 429 even
    // with the right password, and no hash is computed.
    assert_eq!(
        login(&server, "nosuchuser", "again wrong").await.status(),
        401
    );
    let d = dummies(&server.metrics().await);
    for _ in 0..3 {
        let res = login(&server, "nosuchuser", "still wrong").await;
        assert!(res.headers().contains_key("retry-after"));
        assert_error(res, 429, "too_many_requests").await;
    }
    assert_eq!(
        dummies(&server.metrics().await),
        d,
        "hashing while throttled"
    );
    assert_eq!(
        login(&server, "student1", "not it either").await.status(),
        401
    );
    let res = login(&server, "student1", "quizbench").await;
    assert_error(res, 429, "too_many_requests").await;
    // Another user is not affected.
    assert_eq!(login(&server, "student2", "quizbench").await.status(), 200);

    // Per address: 5 x 2 failures from 127.0.0.1 across usernames (4 so
    // far), then every login from it is refused, unhashed.
    for i in 0..6 {
        assert_eq!(
            login(&server, &format!("ghost{i}"), "wrong password")
                .await
                .status(),
            401
        );
    }
    let d = dummies(&server.metrics().await);
    let res = login(&server, "ghost-new", "wrong password").await;
    assert_error(res, 429, "too_many_requests").await;
    let res = login(&server, "student3", "quizbench").await;
    assert_error(res, 429, "too_many_requests").await;
    assert_eq!(
        dummies(&server.metrics().await),
        d,
        "hashing while throttled"
    );
}

/// A token the server never issued, planted as a cookie before login
/// (session fixation), never authenticates: login issues a new one.
/// A session ends at its absolute expiry however busy it is.
#[tokio::test]
async fn planted_tokens_and_absolute_expiry() {
    let (_serial, _db, server) = serial_server(&[
        ("SESSION_ABSOLUTE_SECS", "2"),
        ("SESSION_IDLE_SECS", "60"),
        ("LOG_LEVEL", "debug"),
        ("ACCESS_LOG", "true"),
    ])
    .await;
    let planted = "fixatedfixatedfixatedfixatedfixatedfixated1".to_string();
    assert_eq!(planted.len(), 43);
    let res = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .header("cookie", format!("qb_session={planted}"))
        .json(&json!({"username": "student4", "password": "quizbench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_ne!(token, planted);
    assert!(
        set_cookie.starts_with(&format!("qb_session={token};")),
        "{set_cookie}"
    );
    for auth in [
        ("cookie", format!("qb_session={planted}")),
        ("authorization", format!("Bearer {planted}")),
    ] {
        let res = server
            .http
            .get(server.url("/api/v1/user"))
            .header(auth.0, auth.1)
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "unauthorized").await;
    }

    // Passwords, tokens and cookies never reach the log (debug level and
    // access log on).
    let password = unique("secret-");
    let res = server
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({"username": "logcheck", "password": password}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = login(&server, "logcheck", &password).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let secret_token = v["token"].as_str().unwrap().to_string();
    let res = server
        .http
        .get(server.url("/api/v1/user"))
        .header("cookie", format!("qb_session={secret_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        server
            .get("/api/v1/user", Some(&secret_token))
            .await
            .status(),
        200
    );
    let log = server.log_text();
    assert!(log.contains("/api/v1/user"), "the access log is on");
    for secret in [&password, &secret_token, &token, &planted] {
        assert!(!log.contains(secret.as_str()), "the log contains {secret}");
    }

    // Used every 300 ms (so never idle), it still ends after 2 s.
    let started = Instant::now();
    let mut ended = None;
    while started.elapsed() < Duration::from_secs(5) {
        let status = server
            .get("/api/v1/user", Some(&token))
            .await
            .status()
            .as_u16();
        match status {
            200 => {}
            401 => {
                ended = Some(started.elapsed());
                break;
            }
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ended = ended.expect("the session outlived its absolute expiry");
    assert!(
        ended >= Duration::from_millis(900),
        "ended too early: {ended:?}"
    );
}

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Expect, HttpApi, TestApp};

/// Register, then log in with the new account by bearer token and cookie.
#[tokio::test]
async fn register_login_me_logout() {
    let app = TestApp::spawn().await;
    let body =
        json!({"username": "newbie", "password": "a good password", "display_name": "New Bie"});
    let user = app.register(&body).await.expect_json(201).await;
    assert_eq!(user["username"], "newbie");
    assert_eq!(user["role"], "student");
    assert!(user.get("password_hash").is_none());

    let (token, cookie) = app.login("newbie", "a good password").await;
    assert!(cookie.starts_with("qb_session="));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"));
    let me = app.get_json("/api/v1/user", Some(&token)).await;
    assert_eq!(me["display_name"], "New Bie");

    // The cookie alone also authenticates.
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(cookie_pair, format!("qb_session={token}"));
    let res = app.get_with_cookie("/api/v1/user", &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");

    let res = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = app.get("/api/v1/user", Some(&token)).await;
    res.expect_error(401, "unauthorized").await;
}

/// Duplicate usernames are 409; bad input is 422 with a JSON error.
#[tokio::test]
async fn registration_validation() {
    let app = TestApp::spawn().await;
    let dup = json!({"username": "student1", "password": "long enough"});
    app.register(&dup).await.expect_error(409, "conflict").await;
    let cases = [
        (
            json!({"username": "ab", "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "has space", "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "x".repeat(10_000), "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "nul\u{0}byte", "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "okname", "password": "short"}),
            "invalid_password",
        ),
        (
            json!({"username": "okname", "password": "p".repeat(200)}),
            "invalid_password",
        ),
        (
            json!({"username": "okname", "password": "long enough", "cohort_id": 999}),
            "unknown_cohort",
        ),
        (
            json!({"username": 5, "password": "long enough"}),
            "invalid_body",
        ),
        (json!({"password": "long enough"}), "invalid_body"),
    ];
    for (body, code) in cases {
        app.register(&body).await.expect_error(422, code).await;
    }
    let stored = "select count(*) from users where username = 'okname'";
    assert_eq!(app.count(stored).await, 0);
}

/// An unknown user and a wrong password get the same status and body, and
/// the unknown user costs a (dummy) hash verification.
#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = TestApp::spawn().await;
    let before = app.worker.state.slot.dummy_hash_count();
    let wrong = app.try_login("student1", "not it at all").await;
    let unknown = app.try_login("nobody", "not it at all").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(app.worker.state.slot.dummy_hash_count(), before + 1);
}

/// Failed logins are throttled per username with 429 and Retry-After.
#[tokio::test]
async fn brute_force_is_throttled() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    for _ in 0..3 {
        let res = app.try_login("student2", "guess guess").await;
        assert_eq!(res.status(), 401);
    }
    let res = app.try_login("student2", "quizbench").await;
    assert!(res.headers().contains_key("retry-after"));
    res.expect_error(429, "too_many_requests").await;
    // Other users are not affected.
    app.login("student3", "quizbench").await;
}

/// A password change revokes the user's other sessions, keeps this one,
/// and the new password works.
#[tokio::test]
async fn password_change_revokes_other_sessions() {
    let app = TestApp::spawn().await;
    let a = app.token("student4").await;
    let b = app.token("student4").await;
    let change = |current: &str| {
        app.request(Method::PUT, "/api/v1/user/password", Some(&a))
            .json(&json!({"current_password": current, "new_password": "brand new password"}))
            .send()
    };
    let res = change("wrong one!").await.unwrap();
    res.expect_error(403, "forbidden").await;
    assert_eq!(change("quizbench").await.unwrap().status(), 204);
    assert_eq!(app.get("/api/v1/user", Some(&a)).await.status(), 200);
    let res = app.get("/api/v1/user", Some(&b)).await;
    res.expect_error(401, "unauthorized").await;
    app.login("student4", "brand new password").await;
}

/// Logging in with a session cookie already set ends that session
/// (rotation), so a planted cookie never becomes authenticated.
#[tokio::test]
async fn login_rotates_the_session() {
    let app = TestApp::spawn().await;
    let (old, _) = app.login("student5", "quizbench").await;
    let res = app
        .with_cookie(Method::POST, "/api/v1/auth/login", &old)
        .json(&json!({"username": "student5", "password": "quizbench"}))
        .send()
        .await
        .unwrap();
    let new = res.expect_json(200).await;
    assert_ne!(new["token"].as_str().unwrap(), old);
    assert_eq!(app.get("/api/v1/user", Some(&old)).await.status(), 401);
    assert_eq!(
        app.get("/api/v1/user", new["token"].as_str())
            .await
            .status(),
        200
    );
}

/// Missing, garbage and expired sessions are all 401.
#[tokio::test]
async fn auth_failures() {
    let app = TestApp::spawn_with(&[("SESSION_IDLE_SECS", "1")]).await;
    let forged = "A".repeat(43);
    for token in [None, Some("garbage"), Some(forged.as_str())] {
        let res = app.get("/api/v1/progress", token).await;
        res.expect_error(401, "unauthorized").await;
    }
    let token = app.token("student6").await;
    app.get_json("/api/v1/progress", Some(&token)).await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let res = app.get("/api/v1/progress", Some(&token)).await;
    res.expect_error(401, "unauthorized").await;
}

/// Cookie-authenticated writes from another site are refused.
#[tokio::test]
async fn cross_site_cookie_writes_are_refused() {
    let app = TestApp::spawn().await;
    let (token, _) = app.login("student7", "quizbench").await;
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://evil.example"),
    ] {
        let res = app
            .with_cookie(Method::POST, "/api/v1/quizzes/1/attempts", &token)
            .header(header, value)
            .json(&json!({"answers": [{"question_id": 1, "choice_ids": [1]}]}))
            .send()
            .await
            .unwrap();
        res.expect_error(403, "forbidden").await;
    }
    assert_eq!(
        app.count("select count(*) from attempts where user_id = 7 and id > 30")
            .await,
        0
    );
}

/// A login that carries another session's bearer token (a client serving
/// several users) leaves that session alone: only a cookie is rotated.
#[tokio::test]
async fn login_with_a_bearer_token_does_not_end_that_session() {
    let app = TestApp::spawn().await;
    let a = app.token("student15").await;
    let res = app
        .request(Method::POST, "/api/v1/auth/login", Some(&a))
        .json(&json!({"username": "student16", "password": "quizbench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/api/v1/user", Some(&a)).await.status(), 200);
}

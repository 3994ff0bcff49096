use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Expect, HttpApi, TestApp};

/// The list and the detail have the fixed shapes and never the answer keys.
#[tokio::test]
async fn list_and_detail_shapes() {
    let app = TestApp::spawn().await;
    let list = app.get_json("/api/v1/quizzes", None).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list[0]["id"].is_i64() && list[0]["title"].is_string());

    let text = app.get_text("/api/v1/quizzes/2", None).await;
    assert!(
        !text.contains("answer_key") && !text.contains("accepted") && !text.contains("correct")
    );
    let quiz: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(quiz["id"], 2);
    let questions = quiz["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 10);
    for (i, q) in questions.iter().enumerate() {
        assert_eq!(q["position"], i as i64 + 1);
        assert!(q["id"].is_i64() && q["prompt"].is_string() && q["kind"].is_string());
    }
    assert_eq!(questions[0]["choices"].as_array().unwrap().len(), 4);
    assert!(
        questions[0]["choices"][0]["id"].is_i64() && questions[0]["choices"][0]["text"].is_string()
    );
    assert_eq!(questions[9]["kind"], "text");
    assert!(questions[9]["choices"].as_array().unwrap().is_empty());
}

/// Unknown and malformed ids.
#[tokio::test]
async fn bad_ids() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/quizzes/999", None).await;
    res.expect_error(404, "not_found").await;
    for bad in ["abc", "-1", "0", "9223372036854775808", "1.5", "%00"] {
        let res = app.get(&format!("/api/v1/quizzes/{bad}"), None).await;
        res.expect_error(400, "invalid_id").await;
    }
    let res = app.get("/api/v1/nope", None).await;
    res.expect_error(404, "not_found").await;
    let res = app.request(Method::DELETE, "/api/v1/quizzes", None).send();
    let res = res.await.unwrap();
    res.expect_error(405, "method_not_allowed").await;
}

/// Every cache mode gives byte-identical bodies, and reports itself.
#[tokio::test]
async fn cache_modes_give_identical_bodies() {
    let mut bodies = Vec::new();
    for mode in ["off", "redis", "local"] {
        let app = TestApp::spawn_with(&[("CACHE_MODE", mode)]).await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let list = app.get("/api/v1/quizzes", None).await;
            let cache = list.headers()["x-cache"].to_str().unwrap().to_string();
            let list = list.text().await.unwrap();
            let one = app.get_text("/api/v1/quizzes/1", None).await;
            seen.push(cache);
            bodies.push((mode, list, one));
        }
        match mode {
            "off" => assert_eq!(seen, ["off", "off"]),
            _ => assert_eq!(seen, ["miss", "hit"], "{mode}"),
        }
    }
    for (mode, list, one) in &bodies[1..] {
        assert_eq!(list, &bodies[0].1, "{mode}");
        assert_eq!(one, &bodies[0].2, "{mode}");
    }
}

/// Requests `path` twice on a fresh cache: the first is a routed miss, the
/// second a hit with the miss's status, content headers and bytes. Returns
/// the hit's headers and the body.
async fn hit_answers_like_its_miss(
    app: &TestApp,
    path: &str,
) -> (reqwest::header::HeaderMap, bytes::Bytes) {
    let miss = app.get(path, None).await;
    assert_eq!(miss.headers()["x-cache"], "miss", "{path}");
    let miss_headers = miss.headers().clone();
    let miss_body = miss.bytes().await.unwrap();
    let hit = app.get(path, None).await;
    assert_eq!(hit.status(), 200, "{path}");
    assert_eq!(hit.headers()["x-cache"], "hit", "{path}");
    for name in ["content-type", "cache-control"] {
        assert_eq!(hit.headers()[name], miss_headers[name], "{path} {name}");
    }
    let hit_headers = hit.headers().clone();
    assert_eq!(hit.bytes().await.unwrap(), miss_body, "{path}");
    (hit_headers, miss_body)
}

/// In `local` mode a current hit is answered before the router: same body
/// and headers as the routed answer, counted as a hit, compressed when the
/// client asks and compression is on (the router's layer does it), and a
/// content-version bump in Redis (a re-seed) reaches it within the poll.
#[tokio::test]
async fn local_hits_answer_like_the_router_and_follow_the_version() {
    let vars = [("COMPRESSION", "gzip"), ("COMPRESSION_MIN_BYTES", "0")];
    let app = TestApp::spawn_with(&[("CACHE_MODE", "local"), vars[0], vars[1]]).await;
    let (hit_headers, _) = hit_answers_like_its_miss(&app, "/api/v1/quizzes").await;
    assert!(hit_headers.get("content-encoding").is_none());

    let gz = app
        .get_with("/api/v1/quizzes", "accept-encoding", "gzip")
        .await;
    assert_eq!(gz.headers()["x-cache"], "hit");
    assert_eq!(gz.headers()["content-encoding"], "gzip");

    let metrics = app.get_text("/metrics", None).await;
    let hits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("quizbench_cache_hits_total"))
        .and_then(|rest| rest.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cache hit counter in\n{metrics}"));
    assert_eq!(hits, 2.0, "the shortcut's hit and the compressed one");

    // One quiz likewise; unknown and malformed ids stay the router's.
    let (_, miss_body) = hit_answers_like_its_miss(&app, "/api/v1/quizzes/1").await;
    for _ in 0..2 {
        let res = app.get("/api/v1/quizzes/999", None).await;
        res.expect_error(404, "not_found").await;
    }
    for bad in ["0", "01x", "1/", "1%2F"] {
        let res = app.get(&format!("/api/v1/quizzes/{bad}"), None).await;
        assert_ne!(res.status(), 200, "{bad}");
    }
    // A percent-encoded id is the router's to decode: the same quiz.
    let encoded = app.get("/api/v1/quizzes/%31", None).await;
    assert_eq!(encoded.status(), 200);
    assert_eq!(encoded.bytes().await.unwrap(), miss_body);

    // A change in Postgres plus a version bump (what a re-seed does) is
    // served within the version poll, through the shortcut too.
    sqlx::query("update quizzes set title = 'Renamed by the test' where id = 1")
        .execute(
            &mut <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let client = redis::Client::open(crate::common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: u64 = redis::cmd("INCR")
        .arg(format!("{}content:version", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for path in ["/api/v1/quizzes", "/api/v1/quizzes/1"] {
        loop {
            let body = app.get(path, None).await.text().await.unwrap();
            if body.contains("Renamed by the test") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "stale {path}: {body}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

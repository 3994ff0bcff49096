use serde_json::Value;

use crate::helpers::{assert_error, HttpApi, TestApp};

/// The list and the detail have the fixed shapes and never the answer keys.
#[tokio::test]
async fn list_and_detail_shapes() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/quizzes", None).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list[0]["id"].is_i64() && list[0]["title"].is_string());

    let text = app
        .get("/api/v1/quizzes/2", None)
        .await
        .text()
        .await
        .unwrap();
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
    assert_error(app.get("/api/v1/quizzes/999", None).await, 404, "not_found").await;
    for bad in ["abc", "-1", "0", "9223372036854775808", "1.5", "%00"] {
        assert_error(
            app.get(&format!("/api/v1/quizzes/{bad}"), None).await,
            400,
            "invalid_id",
        )
        .await;
    }
    assert_error(app.get("/api/v1/nope", None).await, 404, "not_found").await;
    let res = app
        .http
        .delete(app.url("/api/v1/quizzes"))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "method_not_allowed").await;
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
            let one = app
                .get("/api/v1/quizzes/1", None)
                .await
                .text()
                .await
                .unwrap();
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

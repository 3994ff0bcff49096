use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{answers_for, Expect, HttpApi, TestApp};

/// Submit, list my attempts, and see progress updated.
#[tokio::test]
async fn submit_then_list_and_progress() {
    let app = TestApp::spawn().await;
    let me = app.session("student8").await;
    let body = answers_for(&app.quiz(1).await);
    let count_before = me
        .progress_of(1)
        .await
        .map_or(0, |p| p["attempt_count"].as_i64().unwrap());

    let created = me.submit_ok(1, &body).await;
    assert_eq!(created["max_score"], 10);
    let score = created["score"].as_i64().unwrap();
    assert!(
        (1..=10).contains(&score),
        "the text answer is right: {score}"
    );

    assert_eq!(me.attempts(1).await[0]["id"], created["id"]);
    let p = me.progress_of(1).await.unwrap();
    assert_eq!(p["attempt_count"].as_i64().unwrap(), count_before + 1);
    assert!(p["best_score"].as_i64().unwrap() >= score);
    assert!(p["quiz_title"].as_str().unwrap().starts_with("Quiz 1"));
}

/// A perfect attempt scores the maximum.
#[tokio::test]
async fn grading_is_server_side() {
    let app = TestApp::spawn().await;
    let me = app.session("student9").await;
    // The answer keys are in the database, not in the API.
    let mut answers = Vec::new();
    let rows = sqlx_keys(&app, 2).await;
    for (id, kind, key) in rows {
        if kind == "text" {
            answers.push(json!({"question_id": id, "text": "  SELECT "}));
        } else {
            answers.push(json!({"question_id": id, "choice_ids": key["choice_ids"]}));
        }
    }
    let v = me.submit_ok(2, &json!({"answers": answers})).await;
    assert_eq!(
        (v["score"].as_i64(), v["max_score"].as_i64()),
        (Some(10), Some(10))
    );
}

async fn sqlx_keys(app: &TestApp, quiz: i64) -> Vec<(i64, String, Value)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let rows: Vec<(i64, String, sqlx::types::Json<Value>)> = sqlx::query_as(
        "select id, kind, answer_key from questions where quiz_id = $1 order by position",
    )
    .bind(quiz)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|(i, k, j)| (i, k, j.0)).collect()
}

/// Bad submissions get their 4xx and store nothing.
#[tokio::test]
async fn invalid_submissions() {
    let app = TestApp::spawn().await;
    let me = app.session("student10").await;
    let rows_before = app.count("select count(*) from attempts").await;
    let post_raw = |body: &'static str, ct: &'static str| {
        me.request(Method::POST, "/api/v1/quizzes/1/attempts")
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let json = "application/json";
    for (body, ct, status, code) in [
        ("{\"answers\": [", json, 400, "malformed_json"),
        (
            "{\"answers\": []}",
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        ("{\"answers\": \"all\"}", json, 422, "invalid_body"),
        ("{\"answers\": []}", json, 422, "empty_answers"),
    ] {
        let res = post_raw(body, ct).await.unwrap();
        res.expect_error(status, code).await;
    }
    // Nesting thousands deep: refused (by type or by serde's depth limit).
    let deep = Box::leak(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_boxed_str());
    let res = post_raw(deep, json).await.unwrap();
    let status = res.status().as_u16();
    assert!(status == 400 || status == 422, "{status}");
    assert!(res.text().await.unwrap().starts_with("{\"error\""));
    let deep_value = Box::leak(
        format!(
            "{{\"answers\": [{{\"question_id\": 1, \"text\": \"x\", \"extra\": {}{}}}]}}",
            "[".repeat(5000),
            "]".repeat(5000)
        )
        .into_boxed_str(),
    );
    let res = post_raw(deep_value, json).await.unwrap();
    res.expect_error(422, "invalid_body").await;
    let huge = Box::leak(
        format!("{{\"answers\": [], \"pad\": \"{}\"}}", "x".repeat(100_000)).into_boxed_str(),
    );
    let res = post_raw(huge, json).await.unwrap();
    res.expect_error(413, "payload_too_large").await;

    // Unknown quiz; answers to another quiz's questions; bad choices.
    let other = answers_for(&app.quiz(2).await);
    let res = me.submit(999, &other).await;
    res.expect_error(404, "not_found").await;
    let first = app.quiz(1).await["questions"][0]["id"].clone();
    for (body, code) in [
        (other, "invalid_answers"),
        (
            json!({"answers": [{"question_id": first, "choice_ids": [99]}]}),
            "invalid_answers",
        ),
        (
            json!({"answers": [{"question_id": first, "choice_ids": [1]}, {"question_id": first, "choice_ids": [1]}]}),
            "invalid_answers",
        ),
        (
            json!({"answers": [{"question_id": "one", "choice_ids": [1]}]}),
            "invalid_body",
        ),
    ] {
        me.submit(1, &body).await.expect_error(422, code).await;
    }
    assert_eq!(
        app.count("select count(*) from attempts").await,
        rows_before
    );
}

/// The same Idempotency-Key replays; a different body with it is a 422.
#[tokio::test]
async fn idempotency_key() {
    let app = TestApp::spawn().await;
    let me = app.session("student11").await;
    let body = answers_for(&app.quiz(3).await);
    let send = |b: Value| {
        me.request(Method::POST, "/api/v1/quizzes/3/attempts")
            .header("idempotency-key", "submit-123")
            .json(&b)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.expect_json(201).await;
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = again.expect_json(201).await;
    assert_eq!(again["id"], first["id"]);
    let mut other = body.clone();
    other["answers"].as_array_mut().unwrap().pop();
    let res = send(other).await.unwrap();
    res.expect_error(422, "idempotency_key_reused").await;
    assert_eq!(
        app.count("select count(*) from attempts where idempotency_key = 'submit-123'")
            .await,
        1
    );
    assert_eq!(
        app.count("select attempt_count::bigint from progress where user_id = 11 and quiz_id = 3")
            .await
            - app
                .count("select count(*) from attempts where user_id = 11 and quiz_id = 3")
                .await,
        0
    );
}

/// One student never sees another's attempts or progress.
#[tokio::test]
async fn other_students_data_is_not_reachable() {
    let app = TestApp::spawn().await;
    let alice = app.session("student12").await;
    let bob = app.session("student13").await;
    let body = answers_for(&app.quiz(1).await);
    let created = alice.submit_ok(1, &body).await;
    let bobs = bob.attempts(1).await;
    assert!(bobs.iter().all(|a| a["id"] != created["id"]));
    assert_ne!(bob.progress().await, alice.progress().await);
}

/// Attempts survive a server restart.
#[tokio::test]
async fn attempts_survive_a_restart() {
    let app = TestApp::spawn().await;
    let body = answers_for(&app.quiz(1).await);
    let created = app.session("student14").await.submit_ok(1, &body).await;
    let (db, prefix, files) = app.stop().await;
    let app = TestApp::start(db, prefix, files, &[]).await;
    let mine = app.session("student14").await.attempts(1).await;
    assert_eq!(mine[0]["id"], created["id"]);
    assert_eq!(mine[0]["score"], created["score"]);
}

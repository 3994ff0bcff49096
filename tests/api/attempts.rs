use serde_json::{json, Value};

use crate::helpers::{answers_for, assert_error, HttpApi, TestApp};

async fn quiz(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v1/quizzes/{id}"), None)
        .await
        .json()
        .await
        .unwrap()
}

/// Submit, list my attempts, and see progress updated.
#[tokio::test]
async fn submit_then_list_and_progress() {
    let app = TestApp::spawn().await;
    let token = app.token("student8").await;
    let q = quiz(&app, 1).await;
    let body = answers_for(&q);
    let before_progress: Value = app
        .get("/api/v1/progress", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let count_before = before_progress
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["quiz_id"] == 1)
        .map_or(0, |p| p["attempt_count"].as_i64().unwrap());

    let res = app
        .post_json("/api/v1/quizzes/1/attempts", Some(&token), &body)
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["max_score"], 10);
    let score = created["score"].as_i64().unwrap();
    assert!(
        (1..=10).contains(&score),
        "the text answer is right: {score}"
    );

    let mine: Value = app
        .get("/api/v1/quizzes/1/attempts", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine[0]["id"], created["id"]);
    let progress: Value = app
        .get("/api/v1/progress", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let p = progress
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["quiz_id"] == 1)
        .unwrap()
        .clone();
    assert_eq!(p["attempt_count"].as_i64().unwrap(), count_before + 1);
    assert!(p["best_score"].as_i64().unwrap() >= score);
    assert!(p["quiz_title"].as_str().unwrap().starts_with("Quiz 1"));
}

/// A perfect attempt scores the maximum.
#[tokio::test]
async fn grading_is_server_side() {
    let app = TestApp::spawn().await;
    let token = app.token("student9").await;
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
    let res = app
        .post_json(
            "/api/v1/quizzes/2/attempts",
            Some(&token),
            &json!({"answers": answers}),
        )
        .await;
    let v: Value = res.json().await.unwrap();
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
    let token = app.token("student10").await;
    let rows_before = app.count("select count(*) from attempts").await;
    let url = app.url("/api/v1/quizzes/1/attempts");
    let post_raw = |body: &'static str, ct: &'static str| {
        app.http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_error(
        post_raw("{\"answers\": [", "application/json")
            .await
            .unwrap(),
        400,
        "malformed_json",
    )
    .await;
    assert_error(
        post_raw("{\"answers\": []}", "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        post_raw("{\"answers\": \"all\"}", "application/json")
            .await
            .unwrap(),
        422,
        "invalid_body",
    )
    .await;
    assert_error(
        post_raw("{\"answers\": []}", "application/json")
            .await
            .unwrap(),
        422,
        "empty_answers",
    )
    .await;
    // Nesting thousands deep: refused (by type or by serde's depth limit).
    let deep = Box::leak(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_boxed_str());
    let res = post_raw(deep, "application/json").await.unwrap();
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
    assert_error(
        post_raw(deep_value, "application/json").await.unwrap(),
        422,
        "invalid_body",
    )
    .await;
    let huge = Box::leak(
        format!("{{\"answers\": [], \"pad\": \"{}\"}}", "x".repeat(100_000)).into_boxed_str(),
    );
    assert_error(
        post_raw(huge, "application/json").await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;

    // Unknown quiz; answers to another quiz's questions; bad choices.
    let other = answers_for(&quiz(&app, 2).await);
    assert_error(
        app.post_json("/api/v1/quizzes/999/attempts", Some(&token), &other)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json("/api/v1/quizzes/1/attempts", Some(&token), &other)
            .await,
        422,
        "invalid_answers",
    )
    .await;
    let q1 = quiz(&app, 1).await;
    let first = q1["questions"][0]["id"].clone();
    let bad_choice = json!({"answers": [{"question_id": first, "choice_ids": [99]}]});
    assert_error(
        app.post_json("/api/v1/quizzes/1/attempts", Some(&token), &bad_choice)
            .await,
        422,
        "invalid_answers",
    )
    .await;
    let twice = json!({"answers": [{"question_id": first, "choice_ids": [1]}, {"question_id": first, "choice_ids": [1]}]});
    assert_error(
        app.post_json("/api/v1/quizzes/1/attempts", Some(&token), &twice)
            .await,
        422,
        "invalid_answers",
    )
    .await;
    let wrong_type = json!({"answers": [{"question_id": "one", "choice_ids": [1]}]});
    assert_error(
        app.post_json("/api/v1/quizzes/1/attempts", Some(&token), &wrong_type)
            .await,
        422,
        "invalid_body",
    )
    .await;
    assert_eq!(
        app.count("select count(*) from attempts").await,
        rows_before
    );
}

/// The same Idempotency-Key replays; a different body with it is a 422.
#[tokio::test]
async fn idempotency_key() {
    let app = TestApp::spawn().await;
    let token = app.token("student11").await;
    let body = answers_for(&quiz(&app, 3).await);
    let send = |b: Value| {
        app.http
            .post(app.url("/api/v1/quizzes/3/attempts"))
            .bearer_auth(&token)
            .header("idempotency-key", "submit-123")
            .json(&b)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let mut other = body.clone();
    other["answers"].as_array_mut().unwrap().pop();
    assert_error(send(other).await.unwrap(), 422, "idempotency_key_reused").await;
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
    let alice = app.token("student12").await;
    let bob = app.token("student13").await;
    let body = answers_for(&quiz(&app, 1).await);
    let created: Value = app
        .post_json("/api/v1/quizzes/1/attempts", Some(&alice), &body)
        .await
        .json()
        .await
        .unwrap();
    let bobs: Value = app
        .get("/api/v1/quizzes/1/attempts", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert!(bobs
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["id"] != created["id"]));
    let bob_progress = app
        .get("/api/v1/progress", Some(&bob))
        .await
        .text()
        .await
        .unwrap();
    let alice_progress = app
        .get("/api/v1/progress", Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    assert_ne!(bob_progress, alice_progress);
}

/// Attempts survive a server restart.
#[tokio::test]
async fn attempts_survive_a_restart() {
    let app = TestApp::spawn().await;
    let token = app.token("student14").await;
    let body = answers_for(&quiz(&app, 1).await);
    let created: Value = app
        .post_json("/api/v1/quizzes/1/attempts", Some(&token), &body)
        .await
        .json()
        .await
        .unwrap();
    let (db, prefix, files) = app.stop().await;
    let app = TestApp::start(db, prefix, files, &[]).await;
    let token = app.token("student14").await;
    let mine: Value = app
        .get("/api/v1/quizzes/1/attempts", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine[0]["id"], created["id"]);
    assert_eq!(mine[0]["score"], created["score"]);
}

use serde_json::json;

use crate::helpers::{Expect, HttpApi, TestApp};

/// select-options lists the caller's organization and cohort only.
#[tokio::test]
async fn select_options_of_my_cohort() {
    let app = TestApp::spawn().await;
    // Test seed: 5 students per cohort; student6..10 are cohort 2.
    let (token, _) = app.login("student7", "quizbench").await;
    let res = app
        .get_with_cookie("/api/v1/students/select-options", &token)
        .await;
    let opts = res.expect_json(200).await;
    let ids: Vec<i64> = opts
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![6, 7, 8, 9, 10]);
    assert_eq!(opts[0]["label"], "Student 6 (student6)");
    let res = app.get("/api/v1/students/select-options", None).await;
    res.expect_error(401, "unauthorized").await;
}

/// The classifier grades free text and requires a session.
#[tokio::test]
async fn grade_free_text() {
    let app = TestApp::spawn().await;
    let me = app.session("student1").await;
    let text = json!({"text": "select name from users where id = 3"});
    let v = me.post_json("/api/v1/grade", &text).await;
    let v = v.expect_json(200).await;
    assert_eq!(v["label"], "sql");
    assert!(v["score"].as_f64().unwrap() > 0.0);
    // With a short-text question: is it an accepted answer?
    let short = json!({"text": "Select", "question_id": 10});
    let v = me.post_json("/api/v1/grade", &short).await;
    assert_eq!(v.expect_json(200).await["matches_key"], true);
    for (token, body, status, code) in [
        (Some(&me.token), json!({"text": ""}), 422, "invalid_text"),
        (
            Some(&me.token),
            json!({"text": "x", "question_id": 99999}),
            404,
            "not_found",
        ),
        (None, json!({"text": "x"}), 401, "unauthorized"),
    ] {
        let res = app
            .post_json("/api/v1/grade", token.map(String::as_str), &body)
            .await;
        res.expect_error(status, code).await;
    }
}

/// Document 004's experiment runs select-options without the index that
/// serves it, so only `users_select_options_idx` may serve the statement's
/// filter (docs/database.md): with it dropped, and sequential scans
/// disabled so that the planner takes any index that can, no index scan
/// filters by organization or cohort.
#[tokio::test]
async fn only_users_select_options_idx_serves_select_options() {
    use sqlx::{Connection as _, Executor as _, PgConnection};
    let db = crate::common::TestDb::new().await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute("set enable_seqscan = off").await.unwrap();
    let with = index_scans_of_select_options(&mut conn).await;
    assert!(
        with.iter()
            .any(|(index, cond)| index == "users_select_options_idx" && cond.contains("cohort_id")),
        "{with:?}"
    );
    conn.execute("drop index users_select_options_idx")
        .await
        .unwrap();
    let without = index_scans_of_select_options(&mut conn).await;
    assert!(
        without
            .iter()
            .all(|(_, cond)| !cond.contains("cohort_id") && !cond.contains("organization_id")),
        "another index serves select-options: {without:?}"
    );
}

/// (index name, index condition) of each index scan in the plan of the
/// select-options statement (`db::users::select_options_json`).
async fn index_scans_of_select_options(conn: &mut sqlx::PgConnection) -> Vec<(String, String)> {
    let plan: serde_json::Value = sqlx::query_scalar(
        "explain (format json)
         select id, display_name || ' (' || username || ')' as label
           from users
          where organization_id = 1 and cohort_id = 2 and role = 'student'
          order by id
          limit 1000",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    let mut scans = Vec::new();
    let mut nodes = vec![&plan[0]["Plan"]];
    while let Some(node) = nodes.pop() {
        if let Some(index) = node["Index Name"].as_str() {
            let cond = node["Index Cond"].as_str().unwrap_or_default();
            scans.push((index.to_string(), cond.to_string()));
        }
        nodes.extend(node["Plans"].as_array().into_iter().flatten());
    }
    scans
}

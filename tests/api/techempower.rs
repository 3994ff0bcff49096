use serde_json::Value;

use crate::helpers::{HttpApi, TestApp};

/// `(id, randomNumber)` of every row a TechEmpower route answered.
async fn worlds(app: &TestApp, path: &str) -> Vec<(i64, i64)> {
    let rows: Value = app.get_json(path, None).await;
    let rows = rows.as_array().unwrap_or_else(|| panic!("{path}: {rows}"));
    rows.iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["randomNumber"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The TechEmpower routes answer per the benchmark's rules.
#[tokio::test]
async fn techempower_routes() {
    let app = TestApp::spawn().await;
    let res = app.get("/json", None).await;
    assert_eq!(res.headers()["server"], "quizbench");
    assert!(res.headers().contains_key("date"));
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Hello, World!"}"#);
    let res = app.get("/plaintext", None).await;
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "Hello, World!");

    let one = app.get_json("/db", None).await;
    assert!((1..=10_000).contains(&one["id"].as_i64().unwrap()));
    assert!(one["randomNumber"].is_i64());
    for (q, n) in [
        ("", 1),
        ("?queries=foo", 1),
        ("?queries=0", 1),
        ("?queries=20", 20),
        ("?queries=600", 500),
    ] {
        for route in ["/queries", "/updates"] {
            assert_eq!(worlds(&app, &format!("{route}{q}")).await.len(), n, "{q}");
        }
    }
    assert_eq!(worlds(&app, "/cached-queries?count=7").await.len(), 7);

    // Updates are persisted.
    let (id, number) = worlds(&app, "/updates?queries=1").await[0];
    assert_eq!(
        app.count(&format!(
            "select randomnumber::bigint from world where id = {id}"
        ))
        .await,
        number
    );

    let html = app.get_text("/fortunes", None).await;
    assert!(html.contains("<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"));
    assert!(html.contains("&lt;script&gt;alert(&quot;This should not be displayed"));
    assert!(html.contains("フレームワークのベンチマーク"));
    assert_eq!(html.matches("<tr>").count(), 14);
}

/// `/updates` stores what it answers: an id drawn twice in one request gets
/// one new number, in the response and in the table.
#[tokio::test]
async fn updates_store_what_they_answer_when_an_id_repeats() {
    let app = TestApp::spawn().await;
    // 500 draws from 10,000 ids repeat one with probability 1 - 4e-6 per
    // request; a few requests make a miss impossible in practice.
    for _ in 0..5 {
        let rows = worlds(&app, "/updates?queries=500").await;
        let distinct: std::collections::BTreeSet<i64> = rows.iter().map(|(id, _)| *id).collect();
        if distinct.len() == rows.len() {
            continue;
        }
        let values: Vec<String> = rows.iter().map(|(id, n)| format!("({id}, {n})")).collect();
        let differing = app
            .count(&format!(
                "select count(*) from (values {}) v (id, n) join world w on w.id = v.id
                  where w.randomnumber <> v.n",
                values.join(", ")
            ))
            .await;
        assert_eq!(
            differing,
            0,
            "{differing} of {} answered rows differ from the table ({} distinct ids)",
            rows.len(),
            distinct.len()
        );
        return;
    }
    panic!("no id repeated in 5 requests of 500 draws each");
}

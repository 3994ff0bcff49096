use crate::helpers::{HttpApi, TestApp};

/// HTML pages and static assets.
#[tokio::test]
async fn pages_and_assets() {
    let app = TestApp::spawn().await;
    let res = app.get("/", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("<form id=\"login\">"));

    let list = app.get("/quizzes", None).await.text().await.unwrap();
    assert!(list.contains("Quiz 1: SQL basics"));

    let res = app.get("/dashboard", None).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let (token, _) = app.login("student3", "quizbench").await;
    let res = app
        .http
        .get(app.url("/dashboard"))
        .header("cookie", format!("qb_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Signed in as student3"));

    let css = app.get("/static/style.css", None).await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let etag = css.headers()["etag"].clone();
    let res = app
        .http
        .get(app.url("/static/style.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(app.get("/static/nope.css", None).await.status(), 404);
}

/// With compression on, large responses are compressed by negotiation.
#[tokio::test]
async fn compression_by_negotiation() {
    let app = TestApp::spawn_with(&[
        ("COMPRESSION", "gzip,br,zstd"),
        ("COMPRESSION_MIN_BYTES", "100"),
    ])
    .await;
    for enc in ["gzip", "br", "zstd"] {
        let res = app
            .http
            .get(app.url("/static/style.css"))
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-encoding"], enc);
    }
    let plain = app.get("/static/style.css", None).await;
    assert!(plain.headers().get("content-encoding").is_none());
}

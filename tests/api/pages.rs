use crate::helpers::{Expect, HttpApi, TestApp};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use reqwest::Method;

/// Asserts the response's Content-Type starts with `prefix`.
fn assert_type(res: &reqwest::Response, prefix: &str) {
    let ct = crate::common::content_type(res);
    assert!(ct.starts_with(prefix), "{ct:?} is not {prefix}");
}

/// HTML pages and static assets.
#[tokio::test]
async fn pages_and_assets() {
    let app = TestApp::spawn().await;
    let page = app.get("/", None).await.expect_html(200).await;
    // The sign-in form posts without JavaScript.
    assert!(page.contains("<form id=\"login\" method=\"post\" action=\"/\">"));

    let list = app.get_text("/quizzes", None).await;
    assert!(list.contains("Quiz 1: SQL basics"));

    let res = app.get("/dashboard", None).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let (token, _) = app.login("student3", "quizbench").await;
    let page = app.get_with_cookie("/dashboard", &token).await;
    assert!(page
        .expect_html(200)
        .await
        .contains("Signed in as student3"));

    let css = app.get("/static/style.css", None).await;
    assert_eq!(css.status(), 200);
    assert_type(&css, "text/css");
    let etag = css.headers()["etag"].to_str().unwrap();
    let res = app
        .get_with("/static/style.css", "if-none-match", etag)
        .await;
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
            .get_with("/static/style.css", "accept-encoding", enc)
            .await;
        assert_eq!(res.headers()["content-encoding"], enc);
    }
    let plain = app.get("/static/style.css", None).await;
    assert!(plain.headers().get("content-encoding").is_none());
}

/// The value of hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Posts a form as a browser on this site does (its Origin).
async fn post_form<K: AsRef<str>, V: AsRef<str>>(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    origin: &str,
    fields: &[(K, V)],
) -> reqwest::Response {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut req = app
        .http
        .post(app.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, origin)
        .body(body);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

/// Signing in, submitting a quiz and signing out work as plain form posts;
/// a post from another site, or without the session's form token, is a 403
/// page and changes nothing; the same quiz form sent twice makes one
/// attempt; the API's cookie clients, which send no Origin, are unchanged.
#[tokio::test]
async fn form_posts_are_same_site_and_carry_the_session_token() {
    let app = TestApp::spawn().await;
    let ours = app.base.clone();
    let login = [
        ("username", "student4"),
        ("password", "quizbench"),
        ("next", "/quizzes/2"),
    ];
    let res = post_form(&app, "/", None, "http://evil.example", &login).await;
    assert!(res.headers().get("set-cookie").is_none());
    res.expect_html(403).await;

    let res = post_form(&app, "/", None, &ours, &login).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/quizzes/2");
    let set = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    let token = cookie.strip_prefix("qb_session=").unwrap();
    let page = app.get_with_cookie("/quizzes/2", token).await;
    let page = page.expect_html(200).await;
    let (csrf, key) = (hidden(&page, "csrf"), hidden(&page, "idempotency_key"));
    let question = page.split("name=\"q").nth(1).unwrap();
    let question_id: i64 = question[..question.find('"').unwrap()].parse().unwrap();
    let field = format!("q{question_id}");
    let answer = |token: &str| {
        [
            ("csrf", token.to_string()),
            ("idempotency_key", key.clone()),
            (field.as_str(), "1".to_string()),
        ]
    };
    let attempts = "select count(*) from attempts a join users u on u.id = a.user_id
                     where u.username = 'student4' and a.idempotency_key is not null";
    for (token, origin) in [
        ("forged", ours.as_str()),
        (csrf.as_str(), "http://evil.example"),
    ] {
        let res = post_form(&app, "/quizzes/2", Some(&cookie), origin, &answer(token)).await;
        assert_eq!(res.status(), 403, "{token:?} from {origin}");
    }
    assert_eq!(app.count(attempts).await, 0);
    let first = post_form(&app, "/quizzes/2", Some(&cookie), &ours, &answer(&csrf)).await;
    let again = post_form(&app, "/quizzes/2", Some(&cookie), &ours, &answer(&csrf)).await;
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()[LOCATION], again.headers()[LOCATION]);
    assert_eq!(
        app.count(attempts).await,
        1,
        "the same form twice: one attempt"
    );

    // The API's cookie client: no Origin, JSON, as Locust and quizload send.
    let res = app
        .with_cookie(Method::POST, "/api/v1/quizzes/2/attempts", token)
        .json(&serde_json::json!({"answers": [{"question_id": question_id, "choice_ids": [1]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let res = post_form(&app, "/logout", Some(&cookie), &ours, &[("csrf", "forged")]).await;
    assert_eq!(res.status(), 403);
    let res = post_form(&app, "/logout", Some(&cookie), &ours, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = app.get_with_cookie("/attempts", token).await;
    assert_eq!(res.status(), 303, "the session ended");
    assert_eq!(res.headers()[LOCATION], "/?next=%2Fattempts");
}

/// A browser gets the site's 404 page outside `/api/`; every other client,
/// and every `/api/` path, the JSON error; a page asked with another method
/// is a 405 page.
#[tokio::test]
async fn error_pages_for_browsers_json_for_the_api() {
    let app = TestApp::spawn().await;
    let browser = |path| app.get_with(path, "accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    let res = browser("/no/such/page").await;
    assert!(res.expect_html(404).await.contains("Page not found"));
    let res = browser("/api/v1/nope").await;
    res.expect_error(404, "not_found").await;
    let res = app.get("/no/such/page", None).await;
    res.expect_error(404, "not_found").await;
    let res = browser("/quizzes/abc").await;
    assert_eq!(res.status(), 303, "signed out: sign in first");
    let res = app.request(Method::DELETE, "/quizzes", None).send().await;
    res.unwrap().expect_html(405).await;
}

/// The quiz list page shows what the API lists: every quiz, linked, with
/// its title escaped into the HTML (pages render typed rows, never the
/// cache's JSON).
#[tokio::test]
async fn the_quiz_list_page_lists_every_quiz_the_api_lists() {
    let app = TestApp::spawn_with(&[("CACHE_MODE", "local")]).await;
    let page = app.get("/quizzes", None).await.text().await.unwrap();
    let api: serde_json::Value = app.get("/api/v1/quizzes", None).await.json().await.unwrap();
    let quizzes = api.as_array().unwrap();
    assert!(!quizzes.is_empty());
    for q in quizzes {
        let link = format!(
            "<a class=\"title\" href=\"/quizzes/{}\">{}</a>",
            q["id"],
            q["title"].as_str().unwrap()
        );
        assert!(page.contains(&link), "{link} missing from the page");
    }
    assert_eq!(page.matches("class=\"title\"").count(), quizzes.len());
}

//! HTTP helpers over reqwest, shared by every suite that talks to a server
//! with a base URL: requests with or without a session ([`HttpApi`]), a
//! signed-in user ([`Session`]), and what a response must be
//! ([`Expect`]). Each helper asserts what it reads (status, content type,
//! JSON), so a test fails at the step that broke.

use std::time::Duration;

use quizbench::seed;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

/// A client that follows no redirect (the tests check them), bounded per
/// request by `timeout` when given.
pub fn client(timeout: Option<Duration>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().unwrap()
}

/// The session cookie header value for `token`.
pub fn session_cookie(token: &str) -> String {
    format!("qb_session={token}")
}

/// Requests over reqwest to a server that has a base URL and a client.
pub trait HttpApi {
    /// `http://ADDR` and the client that talks to it.
    fn endpoint(&self) -> (&str, &reqwest::Client);

    fn base(&self) -> &str {
        self.endpoint().0
    }

    fn http(&self) -> &reqwest::Client {
        self.endpoint().1
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `method path`, with the bearer `token` when given.
    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self.http().request(method, self.url(path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// `method path` with the session cookie of `token` (as a browser and
    /// the load tools' cookie clients send it).
    fn with_cookie(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http()
            .request(method, self.url(path))
            .header("cookie", session_cookie(token))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    /// GET with one more header.
    async fn get_with(&self, path: &str, header: &str, value: &str) -> Response {
        let req = self.request(Method::GET, path, None).header(header, value);
        req.send().await.unwrap()
    }

    /// GET with the session cookie of `token`.
    async fn get_with_cookie(&self, path: &str, token: &str) -> Response {
        self.with_cookie(Method::GET, path, token)
            .send()
            .await
            .unwrap()
    }

    /// GET that must answer 200 with JSON; the body.
    async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        self.get(path, token).await.expect_json(200).await
    }

    /// GET that must answer 200; the body's text.
    async fn get_text(&self, path: &str, token: Option<&str>) -> String {
        self.get(path, token).await.expect_text(200).await
    }

    async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST /api/v1/auth/login, whatever it answers.
    async fn try_login(&self, username: &str, password: &str) -> Response {
        let body = json!({"username": username, "password": password});
        self.post_json("/api/v1/auth/login", None, &body).await
    }

    /// POST /api/v1/auth/register, whatever it answers.
    async fn register(&self, body: &Value) -> Response {
        self.post_json("/api/v1/auth/register", None, body).await
    }

    /// Logs in; returns (token, set-cookie header).
    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let res = self.try_login(username, password).await;
        let cookie = res
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.expect_json(200).await;
        let token = body["token"].as_str().unwrap().to_string();
        (token, cookie.expect("session cookie"))
    }

    /// Logs in a seeded user; returns the bearer token.
    async fn token(&self, username: &str) -> String {
        self.login(username, seed::SEED_PASSWORD).await.0
    }

    /// A seeded user, signed in.
    async fn session(&self, username: &str) -> Session<'_, Self>
    where
        Self: Sized,
    {
        let token = self.token(username).await;
        Session { app: self, token }
    }

    /// Signs in a seeded user and opens `path` with its session cookie,
    /// which must answer `status` with an HTML page.
    async fn page_as(&self, username: &str, path: &str, status: u16) -> String {
        let token = self.token(username).await;
        let res = self.get_with_cookie(path, &token).await;
        res.expect_html(status).await
    }

    /// A quiz's public detail (`GET /api/v1/quizzes/{id}`).
    async fn quiz(&self, id: i64) -> Value {
        self.get_json(&format!("/api/v1/quizzes/{id}"), None).await
    }
}

/// A signed-in user of a server: requests carry its bearer token.
pub struct Session<'a, A> {
    pub app: &'a A,
    pub token: String,
}

impl<A: HttpApi> Session<'_, A> {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app.request(method, path, Some(&self.token))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.app.get(path, Some(&self.token)).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.app.get_json(path, Some(&self.token)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.app.post_json(path, Some(&self.token), body).await
    }

    /// Submits `body` as an attempt at quiz `quiz`, whatever it answers.
    pub async fn submit(&self, quiz: i64, body: &Value) -> Response {
        let path = format!("/api/v1/quizzes/{quiz}/attempts");
        self.post_json(&path, body).await
    }

    /// Submits `body`, which must be stored (201); the attempt.
    pub async fn submit_ok(&self, quiz: i64, body: &Value) -> Value {
        self.submit(quiz, body).await.expect_json(201).await
    }

    /// My attempts at quiz `quiz`, newest first.
    pub async fn attempts(&self, quiz: i64) -> Vec<Value> {
        let list = self
            .get_json(&format!("/api/v1/quizzes/{quiz}/attempts"))
            .await;
        list.as_array().expect("an attempt list").clone()
    }

    /// My progress rows.
    pub async fn progress(&self) -> Vec<Value> {
        let list = self.get_json("/api/v1/progress").await;
        list.as_array().expect("a progress list").clone()
    }

    /// My progress row for quiz `quiz`, if any.
    pub async fn progress_of(&self, quiz: i64) -> Option<Value> {
        let rows = self.progress().await;
        rows.into_iter().find(|p| p["quiz_id"] == quiz)
    }
}

/// What a response must be; each returns the body it read.
pub trait Expect {
    /// A JSON error envelope with this status and code.
    async fn expect_error(self, status: u16, code: &str) -> Value;
    /// This status and a JSON body.
    async fn expect_json(self, status: u16) -> Value;
    /// This status; the body's text.
    async fn expect_text(self, status: u16) -> String;
    /// This status and an HTML page.
    async fn expect_html(self, status: u16) -> String;
}

impl Expect for Response {
    async fn expect_error(self, status: u16, code: &str) -> Value {
        assert_error(self, status, code).await
    }

    async fn expect_json(self, status: u16) -> Value {
        let text = self.expect_text(status).await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }

    async fn expect_text(self, status: u16) -> String {
        let got = self.status().as_u16();
        let text = self.text().await.unwrap();
        assert_eq!(got, status, "status; body {text}");
        text
    }

    async fn expect_html(self, status: u16) -> String {
        let ct = content_type(&self);
        let text = self.expect_text(status).await;
        assert!(ct.starts_with("text/html"), "content type {ct:?} of {text}");
        text
    }
}

/// The response's Content-Type, or "".
pub fn content_type(res: &Response) -> String {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Asserts a JSON error envelope with this status and code; returns the body.
pub async fn assert_error(res: Response, status: u16, code: &str) -> Value {
    let ct = content_type(&res);
    let text = res.expect_text(status).await;
    assert!(
        ct.starts_with("application/json"),
        "content type {ct:?} of {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"]["code"], code, "body {text}");
    assert!(v["error"]["message"].is_string(), "body {text}");
    v
}

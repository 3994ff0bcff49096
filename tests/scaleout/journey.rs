//! The client side of the scale-out test: a student who logs in through
//! the balancer, opens a quiz and submits attempts with idempotency keys
//! (a failed try is retried with the same key, so a retried attempt is
//! stored once), reading their progress between attempts, and records
//! every response: when, which replica answered (HAProxy's X-Served-By),
//! and what failed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One try of one request.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Instant,
    pub what: &'static str,
    /// The replica that answered (None when no response came back).
    pub served_by: Option<String>,
    /// The status, or the transport error.
    pub outcome: Result<u16, String>,
}

impl Event {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Ok(s) if (200..300).contains(&s))
    }
}

/// What one student saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub events: Vec<Event>,
    /// Idempotency keys of the attempts the server acknowledged.
    pub acknowledged: Vec<String>,
    /// Keys given up on after every retry failed.
    pub gave_up: Vec<String>,
}

const TRIES: usize = 20;

/// The error and its causes ("error sending request: ...: connection closed").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

struct Student {
    http: reqwest::Client,
    base: String,
    token: String,
    tally: Tally,
}

impl Student {
    /// One try; returns the body of a 2xx response.
    async fn send(&mut self, what: &'static str, req: reqwest::RequestBuilder) -> Option<Value> {
        let req = if self.token.is_empty() {
            req
        } else {
            req.bearer_auth(&self.token)
        };
        let (served_by, outcome, body) = match req.send().await {
            Ok(res) => {
                let served_by = res
                    .headers()
                    .get("x-served-by")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.ok();
                (served_by, Ok(status), body)
            }
            Err(e) => (None, Err(error_chain(&e)), None),
        };
        let event = Event {
            at: Instant::now(),
            what,
            served_by,
            outcome,
        };
        let ok = event.ok();
        self.tally.events.push(event);
        if ok {
            Some(body.unwrap_or(Value::Null))
        } else {
            None
        }
    }

    /// Retries `make()` until a 2xx answer (at most TRIES times).
    async fn until_ok(
        &mut self,
        what: &'static str,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Option<Value> {
        for _ in 0..TRIES {
            let req = make(&self.http, &self.base);
            if let Some(body) = self.send(what, req).await {
                return Some(body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// Runs `username`'s journey through `base` until `until`.
pub async fn run(base: String, username: String, until: Instant) -> Tally {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut s = Student {
        http,
        base,
        token: String::new(),
        tally: Tally::default(),
    };
    let credentials = json!({"username": username, "password": "quizbench"});
    let login = s
        .until_ok("login", |c, b| {
            c.post(format!("{b}/api/v1/auth/login")).json(&credentials)
        })
        .await
        .expect("login through the balancer");
    s.token = login["token"].as_str().unwrap().to_string();
    let list = s
        .until_ok("quizzes", |c, b| c.get(format!("{b}/api/v1/quizzes")))
        .await
        .expect("quiz list");
    let quiz = list[0]["id"].as_i64().unwrap();
    let detail = s
        .until_ok("quiz", |c, b| c.get(format!("{b}/api/v1/quizzes/{quiz}")))
        .await
        .expect("quiz detail");
    let answers = crate::common::answers_for(&detail);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let key = format!("scale-{username}-{n}");
        let submitted = s
            .until_ok("attempt", |c, b| {
                c.post(format!("{b}/api/v1/quizzes/{quiz}/attempts"))
                    .header("idempotency-key", &key)
                    .json(&answers)
            })
            .await;
        match submitted {
            Some(_) => s.tally.acknowledged.push(key),
            None => s.tally.gave_up.push(key),
        }
        // A read between writes; its failures are counted like the others.
        let req = s.http.get(format!("{}/api/v1/progress", s.base));
        s.send("progress", req).await;
    }
    s.tally
}

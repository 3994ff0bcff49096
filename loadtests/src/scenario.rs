//! What each virtual user sends: a [`Script`] per VU, made by a
//! [`ScenarioFactory`] on the VU's worker thread.
//!
//! Two families live here:
//! - [`FixedRequest`]: one pre-serialised request repeated (`quizload run URL`,
//!   like hey and wrk);
//! - [`Quizbench`]: the quizbench API scenarios (`healthz`, `login`,
//!   `quizzes`, `quiz`, `select-options`, `grade`, `static`, `index`,
//!   `journey`), with login once per VU (student `i % 10000 + 1`), the session
//!   carried as a `qb_session` cookie or a bearer token, and document 002's
//!   weighted journey with think time.
//!
//! Scripts build request bytes into buffers they own and reuse, so after the
//! first requests nothing is allocated per request. They never do I/O: the
//! engine sends what they plan and hands them the responses.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use rand::rngs::SmallRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::http::{Capture, RequestBuilder};

/// Name of quizbench's session cookie.
pub const SESSION_COOKIE: &str = "qb_session";
/// Password of every seeded quizbench user.
pub const SEEDED_PASSWORD: &str = "quizbench";
/// Number of seeded students (`student1` ..= `student10000`).
pub const SEEDED_STUDENTS: usize = 10_000;
/// Number of seeded quizzes (ids 1 ..= 50).
pub const SEEDED_QUIZZES: u32 = 50;
/// Login attempts a VU makes during setup before going on unauthenticated.
const SETUP_LOGIN_ATTEMPTS: u32 = 3;

/// One request a script wants sent.
#[derive(Debug)]
pub struct Planned<'a> {
    /// Index into the factory's endpoint list.
    pub endpoint: usize,
    /// The serialised request.
    pub bytes: &'a [u8],
    /// HEAD request (no response body).
    pub head: bool,
    /// Keep the response body for [`Script::on_response`].
    pub want_body: bool,
    /// Keep the session cookie from `Set-Cookie`.
    pub want_cookie: bool,
}

/// A virtual user's behaviour.
pub trait Script {
    /// The next request to send before the measured phase (e.g. the login
    /// of a scenario that needs a session), or `None` when setup is done.
    fn setup(&mut self) -> Option<Planned<'_>>;
    /// The next request of the measured phase.
    fn next(&mut self, rng: &mut SmallRng) -> Planned<'_>;
    /// Sees the response to the last planned request (`status` is `None`
    /// when the request failed without a response).
    fn on_response(
        &mut self,
        endpoint: usize,
        status: Option<u16>,
        capture: &Capture,
        rng: &mut SmallRng,
    );
    /// Time to wait before the next request of the measured phase (closed
    /// model only), if any.
    fn think(&mut self, rng: &mut SmallRng) -> Option<Duration>;
}

/// Makes the scripts of a scenario.
pub trait ScenarioFactory: Send + Sync {
    /// Endpoint names (route templates) in index order.
    fn endpoints(&self) -> Vec<String>;
    /// The script of virtual user `vu` (0-based, global over threads).
    fn make(&self, vu: usize) -> Box<dyn Script>;
}

/// The same request over and over: `quizload run URL`.
#[derive(Clone, Debug)]
pub struct FixedRequest {
    name: String,
    bytes: Arc<[u8]>,
    head: bool,
}

impl FixedRequest {
    /// A fixed request built with `builder`.
    pub fn new(builder: &RequestBuilder, method: &str, path: &str, body: &[u8]) -> Self {
        let method = method.to_ascii_uppercase();
        let bytes = builder.build(&method, path, &[], body);
        Self {
            name: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            bytes: bytes.into(),
            head: method == "HEAD",
        }
    }
}

struct FixedScript {
    bytes: Arc<[u8]>,
    head: bool,
}

impl Script for FixedScript {
    fn setup(&mut self) -> Option<Planned<'_>> {
        None
    }
    fn next(&mut self, _rng: &mut SmallRng) -> Planned<'_> {
        Planned {
            endpoint: 0,
            bytes: &self.bytes,
            head: self.head,
            want_body: false,
            want_cookie: false,
        }
    }
    fn on_response(&mut self, _: usize, _: Option<u16>, _: &Capture, _: &mut SmallRng) {}
    fn think(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        None
    }
}

impl ScenarioFactory for FixedRequest {
    fn endpoints(&self) -> Vec<String> {
        vec![self.name.clone()]
    }
    fn make(&self, _vu: usize) -> Box<dyn Script> {
        Box::new(FixedScript {
            bytes: self.bytes.clone(),
            head: self.head,
        })
    }
}

/// The quizbench scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// `GET /healthz` (no login).
    Healthz,
    /// `POST /api/v1/auth/login` repeatedly, each VU as its own student.
    Login,
    /// `GET /api/v1/quizzes` with a session.
    Quizzes,
    /// `GET /api/v1/quizzes/{id}` over ids 1..=50 with a session.
    Quiz,
    /// `GET /api/v1/students/select-options` with a session (document 004).
    SelectOptions,
    /// `POST /api/v1/grade` with a session (document 001's CPU-heavy call).
    Grade,
    /// A static asset (`--static-path`, default `/static/style.css`).
    Static,
    /// `GET /` (the login page).
    Index,
    /// Document 002's weighted Locust journey with think time.
    Journey,
}

/// How a VU presents its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// `Cookie: qb_session=...`
    Cookie,
    /// `Authorization: Bearer ...`
    Bearer,
}

/// Journey task weights (document 002's locustfile tasks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyWeights {
    /// `GET /api/v1/user`
    pub user: u32,
    /// `GET /api/v1/progress`
    pub progress: u32,
    /// `GET /api/v1/quizzes`
    pub quizzes: u32,
    /// `GET /api/v1/quizzes/{id}`
    pub quiz: u32,
    /// `GET /api/v1/quizzes/{id}/attempts`
    pub attempts: u32,
    /// `POST /api/v1/quizzes/{id}/attempts`
    pub submit: u32,
}

impl Default for JourneyWeights {
    /// Browsing dominates, personal pages are frequent, submitting is rare:
    /// user 2, progress 2, quizzes 4, quiz 4, attempts 2, submit 1.
    fn default() -> Self {
        Self {
            user: 2,
            progress: 2,
            quizzes: 4,
            quiz: 4,
            attempts: 2,
            submit: 1,
        }
    }
}

impl JourneyWeights {
    /// Parses `user=2,progress=2,quizzes=4,quiz=4,attempts=2,submit=1`
    /// (unnamed tasks keep their default weight).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let mut w = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                bail!("weight {part:?} is not TASK=N");
            };
            let v: u32 = v.trim().parse()?;
            match k.trim() {
                "user" => w.user = v,
                "progress" => w.progress = v,
                "quizzes" => w.quizzes = v,
                "quiz" => w.quiz = v,
                "attempts" => w.attempts = v,
                "submit" => w.submit = v,
                other => bail!(
                    "unknown journey task {other:?} (user, progress, quizzes, quiz, attempts, submit)"
                ),
            }
        }
        if w.as_array().iter().all(|x| *x == 0) {
            bail!("all journey weights are zero");
        }
        Ok(w)
    }

    fn as_array(&self) -> [u32; 6] {
        [
            self.user,
            self.progress,
            self.quizzes,
            self.quiz,
            self.attempts,
            self.submit,
        ]
    }
}

/// Options of the quizbench scenarios.
#[derive(Clone, Debug)]
pub struct QuizbenchOptions {
    pub kind: ScenarioKind,
    pub auth: AuthMode,
    /// Think time range between journey tasks (closed model).
    pub think: (Duration, Duration),
    pub weights: JourneyWeights,
    /// Path of the asset for the `static` scenario.
    pub static_path: String,
    /// In the journey, log in as the first measured request (Locust's
    /// `on_start`); otherwise log in during setup.
    pub measured_login: bool,
    /// Offset added to the student number (VU `i` is student
    /// `(i + offset) % 10000 + 1`).
    pub student_offset: usize,
}

/// Factory of the quizbench scenarios. Session tokens obtained in setup are
/// cached (per student) so a sweep does not log everyone in again per row.
pub struct Quizbench {
    opts: QuizbenchOptions,
    builder: RequestBuilder,
    sessions: Arc<Mutex<HashMap<usize, String>>>,
    grade_bodies: Arc<[Vec<u8>]>,
}

/// Endpoint indices of the journey (and of the other scenarios, which use
/// index 0 for login and 1 for their own request).
mod ep {
    pub const LOGIN: usize = 0;
    pub const MAIN: usize = 1;
    pub const USER: usize = 1;
    pub const PROGRESS: usize = 2;
    pub const QUIZZES: usize = 3;
    pub const QUIZ: usize = 4;
    pub const ATTEMPTS: usize = 5;
    pub const SUBMIT: usize = 6;
}

const LOGIN_NAME: &str = "POST /api/v1/auth/login";

const GRADE_TEXTS: [&str; 4] = [
    "A process is a program in execution with its own address space.",
    "Threads share memory, so a lock protects shared data from races.",
    "The event loop runs callbacks one at a time on a single thread.",
    "I am not sure, maybe the scheduler decides it.",
];

impl Quizbench {
    /// A factory for `opts`, sending requests built with `builder` (which
    /// carries the Host header and any user `-H` headers).
    pub fn new(opts: QuizbenchOptions, builder: RequestBuilder) -> Self {
        Self {
            opts,
            builder,
            sessions: Arc::new(Mutex::new(HashMap::new())),
            grade_bodies: GRADE_TEXTS
                .iter()
                .map(|t| serde_json::json!({ "text": t }).to_string().into_bytes())
                .collect(),
        }
    }

    fn needs_session(&self) -> bool {
        !matches!(
            self.opts.kind,
            ScenarioKind::Healthz
                | ScenarioKind::Login
                | ScenarioKind::Static
                | ScenarioKind::Index
        )
    }
}

impl ScenarioFactory for Quizbench {
    fn endpoints(&self) -> Vec<String> {
        let main = match self.opts.kind {
            ScenarioKind::Healthz => "GET /healthz".to_string(),
            ScenarioKind::Login => return vec![LOGIN_NAME.to_string()],
            ScenarioKind::Quizzes => "GET /api/v1/quizzes".into(),
            ScenarioKind::Quiz => "GET /api/v1/quizzes/{id}".into(),
            ScenarioKind::SelectOptions => "GET /api/v1/students/select-options".into(),
            ScenarioKind::Grade => "POST /api/v1/grade".into(),
            ScenarioKind::Static => format!("GET {}", self.opts.static_path),
            ScenarioKind::Index => "GET /".into(),
            ScenarioKind::Journey => {
                return [
                    LOGIN_NAME,
                    "GET /api/v1/user",
                    "GET /api/v1/progress",
                    "GET /api/v1/quizzes",
                    "GET /api/v1/quizzes/{id}",
                    "GET /api/v1/quizzes/{id}/attempts",
                    "POST /api/v1/quizzes/{id}/attempts",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            }
        };
        vec![LOGIN_NAME.to_string(), main]
    }

    fn make(&self, vu: usize) -> Box<dyn Script> {
        let student = (vu + self.opts.student_offset) % SEEDED_STUDENTS + 1;
        let login_body =
            format!(r#"{{"username":"student{student}","password":"{SEEDED_PASSWORD}"}}"#);
        let login = self.builder.build(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            login_body.as_bytes(),
        );
        let cached = if self.needs_session() && !self.measured_login_applies() {
            self.sessions
                .lock()
                .expect("session cache poisoned")
                .get(&student)
                .cloned()
        } else {
            None
        };
        let mut s = QuizbenchScript {
            kind: self.opts.kind,
            auth: self.opts.auth,
            builder: self.builder.clone(),
            student,
            login,
            session: None,
            auth_value: String::new(),
            login_attempts: 0,
            setup_login: self.needs_session() && !self.measured_login_applies(),
            measured_login_pending: self.measured_login_applies(),
            buf: Vec::with_capacity(512),
            path: String::with_capacity(64),
            counter: vu,
            think: self.opts.think,
            cumulative: cumulative(self.opts.weights.as_array()),
            answers: HashMap::new(),
            pending_submit: None,
            last_quiz: 0,
            static_path: self.opts.static_path.clone(),
            sessions: self.sessions.clone(),
            grade_bodies: self.grade_bodies.clone(),
        };
        if let Some(tok) = cached {
            s.set_session(tok);
        }
        Box::new(s)
    }
}

impl Quizbench {
    fn measured_login_applies(&self) -> bool {
        self.opts.kind == ScenarioKind::Journey && self.opts.measured_login
    }
}

fn cumulative(w: [u32; 6]) -> [u32; 6] {
    let mut out = [0; 6];
    let mut acc = 0;
    for (i, x) in w.iter().enumerate() {
        acc += x;
        out[i] = acc;
    }
    out
}

struct QuizbenchScript {
    kind: ScenarioKind,
    auth: AuthMode,
    builder: RequestBuilder,
    student: usize,
    /// The serialised login request of this VU's student.
    login: Vec<u8>,
    session: Option<String>,
    /// `qb_session=TOKEN` or `Bearer TOKEN`.
    auth_value: String,
    login_attempts: u32,
    /// Still to log in during setup.
    setup_login: bool,
    /// Journey: still to log in as the first measured request.
    measured_login_pending: bool,
    /// Reused request buffer and path buffer.
    buf: Vec<u8>,
    path: String,
    /// Rotates quiz ids and grade texts.
    counter: usize,
    think: (Duration, Duration),
    cumulative: [u32; 6],
    /// Journey: serialised attempt bodies per quiz id, built from the quiz
    /// as fetched.
    answers: HashMap<u32, Vec<u8>>,
    /// Journey: quiz fetched for a submission that is to follow at once.
    pending_submit: Option<u32>,
    /// Quiz id of the last quiz request.
    last_quiz: u32,
    static_path: String,
    sessions: Arc<Mutex<HashMap<usize, String>>>,
    /// Serialised `{"text": ...}` bodies of the grade scenario.
    grade_bodies: Arc<[Vec<u8>]>,
}

impl QuizbenchScript {
    fn set_session(&mut self, token: String) {
        self.auth_value.clear();
        match self.auth {
            AuthMode::Cookie => {
                let _ = write!(self.auth_value, "{SESSION_COOKIE}={token}");
            }
            AuthMode::Bearer => {
                let _ = write!(self.auth_value, "Bearer {token}");
            }
        }
        self.session = Some(token);
        self.setup_login = false;
    }

    fn login_planned(&self) -> Planned<'_> {
        Planned {
            endpoint: ep::LOGIN,
            bytes: &self.login,
            head: false,
            want_body: true,
            want_cookie: true,
        }
    }

    /// Builds a request on the reusable buffer with the session header.
    fn build(&mut self, method: &str, body: &[u8]) {
        self.buf.clear();
        let auth_name = match self.auth {
            AuthMode::Cookie => "Cookie",
            AuthMode::Bearer => "Authorization",
        };
        let mut extra: [(&str, &str); 2] = [("", ""); 2];
        let mut n = 0;
        if self.session.is_some() {
            extra[n] = (auth_name, &self.auth_value);
            n += 1;
        }
        if !body.is_empty() {
            extra[n] = ("Content-Type", "application/json");
            n += 1;
        }
        self.builder
            .write(&mut self.buf, method, &self.path, &extra[..n], body);
    }

    fn set_path(&mut self, parts: (&str, Option<u32>, &str)) {
        self.path.clear();
        self.path.push_str(parts.0);
        if let Some(id) = parts.1 {
            let _ = write!(self.path, "{id}");
        }
        self.path.push_str(parts.2);
    }

    fn planned(&self, endpoint: usize, want_body: bool) -> Planned<'_> {
        Planned {
            endpoint,
            bytes: &self.buf,
            head: false,
            want_body,
            want_cookie: false,
        }
    }

    fn next_quiz_id(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        (self.counter % SEEDED_QUIZZES as usize) as u32 + 1
    }

    fn journey_step(&mut self, rng: &mut SmallRng) -> Planned<'_> {
        if let Some(id) = self.pending_submit.take() {
            if self.answers.contains_key(&id) {
                return self.submit(id);
            }
        }
        let total = self.cumulative[5];
        let pick = rng.random_range(0..total);
        let task = self.cumulative.iter().position(|c| pick < *c).unwrap_or(5);
        match task {
            0 => {
                self.set_path(("/api/v1/user", None, ""));
                self.build("GET", b"");
                self.planned(ep::USER, false)
            }
            1 => {
                self.set_path(("/api/v1/progress", None, ""));
                self.build("GET", b"");
                self.planned(ep::PROGRESS, false)
            }
            2 => {
                self.set_path(("/api/v1/quizzes", None, ""));
                self.build("GET", b"");
                self.planned(ep::QUIZZES, false)
            }
            3 => {
                let id = rng.random_range(1..=SEEDED_QUIZZES);
                self.fetch_quiz(id)
            }
            4 => {
                let id = rng.random_range(1..=SEEDED_QUIZZES);
                self.set_path(("/api/v1/quizzes/", Some(id), "/attempts"));
                self.build("GET", b"");
                self.planned(ep::ATTEMPTS, false)
            }
            _ => {
                let id = rng.random_range(1..=SEEDED_QUIZZES);
                if self.answers.contains_key(&id) {
                    self.submit(id)
                } else {
                    // Take the quiz: fetch it first, submit right after.
                    self.pending_submit = Some(id);
                    self.fetch_quiz(id)
                }
            }
        }
    }

    fn fetch_quiz(&mut self, id: u32) -> Planned<'_> {
        self.last_quiz = id;
        self.set_path(("/api/v1/quizzes/", Some(id), ""));
        self.build("GET", b"");
        let want = !self.answers.contains_key(&id);
        self.planned(ep::QUIZ, want)
    }

    fn submit(&mut self, id: u32) -> Planned<'_> {
        let body = self.answers.remove(&id).expect("checked by caller");
        self.set_path(("/api/v1/quizzes/", Some(id), "/attempts"));
        self.build("POST", &body);
        self.answers.insert(id, body);
        self.planned(ep::SUBMIT, false)
    }

    fn on_login(&mut self, status: Option<u16>, capture: &Capture) {
        if status != Some(200) {
            return;
        }
        let token = capture.cookie.clone().or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&capture.body)
                .ok()
                .and_then(|v| v.get("token")?.as_str().map(str::to_string))
        });
        if let Some(t) = token {
            if self.kind != ScenarioKind::Login && self.kind != ScenarioKind::Journey {
                self.sessions
                    .lock()
                    .expect("session cache poisoned")
                    .insert(self.student, t.clone());
            }
            self.set_session(t);
        }
    }
}

/// Builds an attempt body from a quiz as returned by
/// `GET /api/v1/quizzes/{id}`: one answer per question, a random choice for
/// choice questions, `"answer"` for short-text ones (empty `choices`).
pub fn answers_for_quiz(quiz: &[u8], rng: &mut SmallRng) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(quiz).ok()?;
    let questions = v.get("questions")?.as_array()?;
    let mut answers = Vec::with_capacity(questions.len());
    for q in questions {
        let qid = q.get("id")?.as_i64()?;
        let choices = q
            .get("choices")
            .and_then(|c| c.as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if choices.is_empty() {
            answers.push(serde_json::json!({"question_id": qid, "text": "answer"}));
        } else {
            let c = &choices[rng.random_range(0..choices.len())];
            let cid = c.get("id")?.as_i64()?;
            answers.push(serde_json::json!({"question_id": qid, "choice_ids": [cid]}));
        }
    }
    serde_json::to_vec(&serde_json::json!({ "answers": answers })).ok()
}

impl Script for QuizbenchScript {
    fn setup(&mut self) -> Option<Planned<'_>> {
        if self.setup_login && self.login_attempts < SETUP_LOGIN_ATTEMPTS {
            self.login_attempts += 1;
            return Some(self.login_planned());
        }
        None
    }

    fn next(&mut self, rng: &mut SmallRng) -> Planned<'_> {
        if self.measured_login_pending {
            self.measured_login_pending = false;
            return self.login_planned();
        }
        match self.kind {
            ScenarioKind::Login => Planned {
                endpoint: 0,
                bytes: &self.login,
                head: false,
                want_body: false,
                want_cookie: false,
            },
            ScenarioKind::Healthz => {
                self.set_path(("/healthz", None, ""));
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Index => {
                self.set_path(("/", None, ""));
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Static => {
                self.path.clear();
                self.path.push_str(&self.static_path);
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Quizzes => {
                self.set_path(("/api/v1/quizzes", None, ""));
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Quiz => {
                let id = self.next_quiz_id();
                self.set_path(("/api/v1/quizzes/", Some(id), ""));
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::SelectOptions => {
                self.set_path(("/api/v1/students/select-options", None, ""));
                self.build("GET", b"");
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Grade => {
                self.counter = self.counter.wrapping_add(1);
                let bodies = self.grade_bodies.clone();
                let body = &bodies[self.counter % bodies.len()];
                self.set_path(("/api/v1/grade", None, ""));
                self.build("POST", body);
                self.planned(ep::MAIN, false)
            }
            ScenarioKind::Journey => self.journey_step(rng),
        }
    }

    fn on_response(
        &mut self,
        endpoint: usize,
        status: Option<u16>,
        capture: &Capture,
        rng: &mut SmallRng,
    ) {
        if endpoint == ep::LOGIN && self.kind != ScenarioKind::Login {
            self.on_login(status, capture);
            return;
        }
        if self.kind == ScenarioKind::Journey && endpoint == ep::QUIZ {
            let id = self.last_quiz;
            if status == Some(200) && !self.answers.contains_key(&id) {
                if let Some(body) = answers_for_quiz(&capture.body, rng) {
                    self.answers.insert(id, body);
                }
            }
            if !self.answers.contains_key(&id) {
                self.pending_submit = None;
            }
        }
    }

    fn think(&mut self, rng: &mut SmallRng) -> Option<Duration> {
        if self.kind != ScenarioKind::Journey || self.pending_submit.is_some() {
            return None;
        }
        let (lo, hi) = self.think;
        if hi.is_zero() {
            return None;
        }
        if lo == hi {
            return Some(lo);
        }
        Some(Duration::from_secs_f64(
            rng.random_range(lo.as_secs_f64()..=hi.as_secs_f64()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn opts(kind: ScenarioKind) -> QuizbenchOptions {
        QuizbenchOptions {
            kind,
            auth: AuthMode::Cookie,
            think: (Duration::from_secs(1), Duration::from_secs(3)),
            weights: JourneyWeights::default(),
            static_path: "/static/style.css".into(),
            measured_login: true,
            student_offset: 0,
        }
    }

    fn text(p: &Planned<'_>) -> String {
        String::from_utf8(p.bytes.to_vec()).unwrap()
    }

    fn login_ok(cookie: Option<&str>, body: &str) -> Capture {
        Capture {
            body_wanted: true,
            body: body.as_bytes().to_vec(),
            cookie_name: Some(SESSION_COOKIE.into()),
            cookie: cookie.map(str::to_string),
        }
    }

    /// Select-options logs in during setup as student vu+1 and then sends
    /// the session cookie.
    #[test]
    fn select_options_logs_in_then_sends_cookie() {
        let f = Quizbench::new(
            opts(ScenarioKind::SelectOptions),
            RequestBuilder::new("h", vec![]),
        );
        assert_eq!(f.endpoints()[1], "GET /api/v1/students/select-options");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = f.make(41);
        let p = s.setup().unwrap();
        assert_eq!(p.endpoint, 0);
        let t = text(&p);
        assert!(t.starts_with("POST /api/v1/auth/login HTTP/1.1\r\n"));
        assert!(
            t.ends_with(r#"{"username":"student42","password":"quizbench"}"#),
            "{t}"
        );
        s.on_response(
            0,
            Some(200),
            &login_ok(Some("tok42"), r#"{"token":"x"}"#),
            &mut rng,
        );
        assert!(s.setup().is_none());
        let t = text(&s.next(&mut rng));
        assert!(t.starts_with("GET /api/v1/students/select-options HTTP/1.1\r\n"));
        assert!(t.contains("\r\nCookie: qb_session=tok42\r\n"), "{t}");
        // a second factory use for the same student reuses the cached session
        let mut again = f.make(41);
        assert!(again.setup().is_none());
        assert!(text(&again.next(&mut rng)).contains("qb_session=tok42"));
        // student numbers wrap at 10000
        let mut w = f.make(10_000);
        assert!(text(&w.setup().unwrap()).contains("\"student1\""));
    }

    /// Bearer mode takes the token from the JSON body when no cookie is set;
    /// a failed login is retried a bounded number of times.
    #[test]
    fn bearer_and_login_retries() {
        let mut o = opts(ScenarioKind::Quizzes);
        o.auth = AuthMode::Bearer;
        let f = Quizbench::new(o, RequestBuilder::new("h", vec![]));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = f.make(0);
        for _ in 0..SETUP_LOGIN_ATTEMPTS {
            assert!(s.setup().is_some());
            s.on_response(0, Some(401), &Capture::default(), &mut rng);
        }
        assert!(s.setup().is_none(), "gives up after bounded attempts");
        let mut s = f.make(1);
        s.setup().unwrap();
        s.on_response(
            0,
            Some(200),
            &login_ok(None, r#"{"token":"abc","user":{}}"#),
            &mut rng,
        );
        assert!(text(&s.next(&mut rng)).contains("\r\nAuthorization: Bearer abc\r\n"));
    }

    #[test]
    fn quiz_ids_rotate_over_seeded_range() {
        let f = Quizbench::new(opts(ScenarioKind::Quiz), RequestBuilder::new("h", vec![]));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = f.make(0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let t = text(&s.next(&mut rng));
            let id: u32 = t["GET /api/v1/quizzes/".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            seen.insert(id);
        }
        assert_eq!(seen.len(), 50);
        assert_eq!(*seen.first().unwrap(), 1);
        assert_eq!(*seen.last().unwrap(), 50);
    }

    #[test]
    fn answers_from_quiz_json() {
        let quiz = br#"{"id":3,"title":"t","questions":[
            {"id":10,"position":1,"kind":"single","prompt":"p","choices":[{"id":100,"text":"a"},{"id":101,"text":"b"}]},
            {"id":11,"position":2,"kind":"text","prompt":"p","choices":[]}]}"#;
        let mut rng = SmallRng::seed_from_u64(1);
        let body = answers_for_quiz(quiz, &mut rng).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let a = v["answers"].as_array().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["question_id"], 10);
        let c = a[0]["choice_ids"][0].as_i64().unwrap();
        assert!(c == 100 || c == 101);
        assert_eq!(
            a[1],
            serde_json::json!({"question_id": 11, "text": "answer"})
        );
        assert!(answers_for_quiz(b"{\"error\":{}}", &mut rng).is_none());
    }

    /// The journey logs in first (measured), follows the weights, submits
    /// a quiz right after fetching it, and thinks between tasks.
    #[test]
    fn journey_follows_weights() {
        let f = Quizbench::new(
            opts(ScenarioKind::Journey),
            RequestBuilder::new("h", vec![]),
        );
        assert_eq!(f.endpoints().len(), 7);
        let mut rng = SmallRng::seed_from_u64(9);
        let mut s = f.make(0);
        assert!(s.setup().is_none(), "journey login is measured");
        let p = s.next(&mut rng);
        assert_eq!(p.endpoint, ep::LOGIN);
        s.on_response(0, Some(200), &login_ok(Some("t"), ""), &mut rng);
        let quiz = br#"{"id":1,"questions":[{"id":1,"choices":[{"id":7}]}]}"#;
        let mut counts = [0usize; 7];
        let mut submitted_after_fetch = 0;
        let mut prev_fetch = false;
        for _ in 0..15_000 {
            let p = s.next(&mut rng);
            let e = p.endpoint;
            counts[e] += 1;
            let t = text(&p);
            assert!(t.contains("Cookie: qb_session=t"));
            if e == ep::SUBMIT {
                let body = &t[t.find("\r\n\r\n").unwrap() + 4..];
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(
                    v,
                    serde_json::json!({"answers": [{"question_id": 1, "choice_ids": [7]}]})
                );
                if prev_fetch {
                    submitted_after_fetch += 1;
                }
            }
            prev_fetch = e == ep::QUIZ;
            let cap = Capture {
                body_wanted: true,
                body: quiz.to_vec(),
                ..Default::default()
            };
            let think = {
                s.on_response(e, Some(200), &cap, &mut rng);
                s.think(&mut rng)
            };
            if let Some(d) = think {
                assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3));
            }
        }
        // Weights 2:2:4:4:2:1 over 15 units; submits also cause quiz fetches
        // until the VU has seen all 50 quizzes, which is negligible here.
        let share = |i: usize| counts[i] as f64 / 15_000.0;
        assert!((share(ep::USER) - 2.0 / 15.0).abs() < 0.02, "{counts:?}");
        assert!((share(ep::QUIZZES) - 4.0 / 15.0).abs() < 0.02, "{counts:?}");
        assert!((share(ep::SUBMIT) - 1.0 / 15.0).abs() < 0.02, "{counts:?}");
        assert!(submitted_after_fetch > 0);
        assert_eq!(counts[ep::LOGIN], 0);
    }

    #[test]
    fn weights_parse() {
        let w = JourneyWeights::parse("user=1, submit=5").unwrap();
        assert_eq!((w.user, w.submit, w.quiz), (1, 5, 4));
        assert!(JourneyWeights::parse("nope=1").is_err());
        assert!(
            JourneyWeights::parse("user=0,progress=0,quizzes=0,quiz=0,attempts=0,submit=0")
                .is_err()
        );
    }

    #[test]
    fn fixed_request_names_and_bytes() {
        let f = FixedRequest::new(&RequestBuilder::new("h:8", vec![]), "get", "/x?y=1", b"");
        assert_eq!(f.endpoints(), vec!["GET /x".to_string()]);
        let mut s = f.make(3);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(s.setup().is_none());
        assert!(text(&s.next(&mut rng)).starts_with("GET /x?y=1 HTTP/1.1\r\nHost: h:8\r\n"));
    }
}

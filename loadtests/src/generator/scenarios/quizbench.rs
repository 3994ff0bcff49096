//! The quizbench API scenarios ([`Quizbench`]): login once per VU (student
//! `i % 10000 + 1`, retried a bounded number of times during setup), the
//! session carried as a `qb_session` cookie or a bearer token (and cached
//! per student across the runs of a sweep), and the single-endpoint
//! scenarios' requests. The journey's task choice lives in `journey`.
//! Scripts build into buffers they own; they never do I/O.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::journey::cumulative;
use super::{
    answers_for_quiz, AuthMode, Planned, QuizbenchOptions, ScenarioFactory, ScenarioKind, Script,
    SEEDED_PASSWORD, SEEDED_QUIZZES, SEEDED_STUDENTS, SEEDED_TEACHER, SESSION_COOKIE,
};
use crate::generator::http::{Capture, RequestBuilder};

/// Login attempts a VU makes during setup before going on unauthenticated.
const SETUP_LOGIN_ATTEMPTS: u32 = 3;

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
pub(super) mod ep {
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
        self.opts.kind.needs_session()
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
            ScenarioKind::Cohort => "GET /cohort".into(),
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
        // The cohort dashboard is one teacher's page: every VU signs in as
        // that teacher (session cache key 0, no student has it).
        let (student, username) = if self.opts.kind == ScenarioKind::Cohort {
            (0, SEEDED_TEACHER.to_string())
        } else {
            let s = (vu + self.opts.student_offset) % SEEDED_STUDENTS + 1;
            (s, format!("student{s}"))
        };
        let login_body = format!(r#"{{"username":"{username}","password":"{SEEDED_PASSWORD}"}}"#);
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

pub(super) struct QuizbenchScript {
    pub(super) kind: ScenarioKind,
    pub(super) auth: AuthMode,
    pub(super) builder: RequestBuilder,
    pub(super) student: usize,
    /// The serialised login request of this VU's student.
    pub(super) login: Vec<u8>,
    pub(super) session: Option<String>,
    /// `qb_session=TOKEN` or `Bearer TOKEN`.
    pub(super) auth_value: String,
    pub(super) login_attempts: u32,
    /// Still to log in during setup.
    pub(super) setup_login: bool,
    /// Journey: still to log in as the first measured request.
    pub(super) measured_login_pending: bool,
    /// Reused request buffer and path buffer.
    pub(super) buf: Vec<u8>,
    pub(super) path: String,
    /// Rotates quiz ids and grade texts.
    pub(super) counter: usize,
    pub(super) think: (Duration, Duration),
    pub(super) cumulative: [u32; 6],
    /// Journey: serialised attempt bodies per quiz id, built from the quiz
    /// as fetched.
    pub(super) answers: HashMap<u32, Vec<u8>>,
    /// Journey: quiz fetched for a submission that is to follow at once.
    pub(super) pending_submit: Option<u32>,
    /// Quiz id of the last quiz request.
    pub(super) last_quiz: u32,
    pub(super) static_path: String,
    pub(super) sessions: Arc<Mutex<HashMap<usize, String>>>,
    /// Serialised `{"text": ...}` bodies of the grade scenario.
    pub(super) grade_bodies: Arc<[Vec<u8>]>,
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
        }
    }

    /// Builds a request on the reusable buffer with the session header.
    pub(super) fn build(&mut self, method: &str, body: &[u8]) {
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

    pub(super) fn set_path(&mut self, parts: (&str, Option<u32>, &str)) {
        self.path.clear();
        self.path.push_str(parts.0);
        if let Some(id) = parts.1 {
            let _ = write!(self.path, "{id}");
        }
        self.path.push_str(parts.2);
    }

    pub(super) fn planned(&self, endpoint: usize, want_body: bool) -> Planned<'_> {
        Planned {
            endpoint,
            bytes: &self.buf,
            head: false,
            want_body,
        }
    }

    fn next_quiz_id(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        (self.counter % SEEDED_QUIZZES as usize) as u32 + 1
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
        // Every kind but these two sends one request to its main endpoint:
        // a GET of its path, or for grading a POST of the next body.
        let mut grade_body = None;
        match self.kind {
            ScenarioKind::Login => {
                return Planned {
                    endpoint: 0,
                    bytes: &self.login,
                    head: false,
                    want_body: false,
                }
            }
            ScenarioKind::Journey => return self.journey_step(rng),
            ScenarioKind::Healthz => self.set_path(("/healthz", None, "")),
            ScenarioKind::Index => self.set_path(("/", None, "")),
            ScenarioKind::Cohort => self.set_path(("/cohort", None, "")),
            ScenarioKind::Static => {
                self.path.clear();
                self.path.push_str(&self.static_path);
            }
            ScenarioKind::Quizzes => self.set_path(("/api/v1/quizzes", None, "")),
            ScenarioKind::Quiz => {
                let id = self.next_quiz_id();
                self.set_path(("/api/v1/quizzes/", Some(id), ""));
            }
            ScenarioKind::SelectOptions => {
                self.set_path(("/api/v1/students/select-options", None, ""))
            }
            ScenarioKind::Grade => {
                self.counter = self.counter.wrapping_add(1);
                grade_body = Some(self.counter % self.grade_bodies.len());
                self.set_path(("/api/v1/grade", None, ""));
            }
        }
        match grade_body {
            Some(i) => {
                let bodies = self.grade_bodies.clone();
                self.build("POST", &bodies[i]);
            }
            None => self.build("GET", b""),
        }
        self.planned(ep::MAIN, false)
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
    use crate::generator::scenarios::test_support::{login_ok, opts, text};
    use rand::SeedableRng;

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
}

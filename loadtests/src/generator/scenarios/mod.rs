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
//!
//! This folder holds the script interface ([`Script`], [`ScenarioFactory`])
//! and the facts of quizbench's seeded data set; `fixed` the fixed request,
//! `kind` the scenario names and options, `quizbench` the API scenarios,
//! `journey` document 002's weighted journey.

mod fixed;
mod journey;
mod kind;
mod quizbench;

use std::time::Duration;

use rand::rngs::SmallRng;

use super::http::Capture;

pub use fixed::FixedRequest;
pub use journey::{answers_for_quiz, JourneyWeights};
pub use kind::{AuthMode, QuizbenchOptions, ScenarioKind};
pub use quizbench::Quizbench;

/// Name of quizbench's session cookie.
pub const SESSION_COOKIE: &str = "qb_session";
/// Password of every seeded quizbench user.
pub const SEEDED_PASSWORD: &str = "quizbench";
/// Number of seeded students (`student1` ..= `student10000`).
pub const SEEDED_STUDENTS: usize = 10_000;
/// Number of seeded quizzes (ids 1 ..= 50).
pub const SEEDED_QUIZZES: u32 = 50;
/// The teacher the `cohort` scenario signs in as (the teacher of cohort 1).
pub const SEEDED_TEACHER: &str = "teacher1";

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

/// Helpers the scenario tests share.
#[cfg(test)]
mod test_support {
    use std::time::Duration;

    use super::{
        AuthMode, JourneyWeights, Planned, QuizbenchOptions, ScenarioKind, SESSION_COOKIE,
    };
    use crate::generator::http::Capture;

    pub fn opts(kind: ScenarioKind) -> QuizbenchOptions {
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

    pub fn text(p: &Planned<'_>) -> String {
        String::from_utf8(p.bytes.to_vec()).unwrap()
    }

    pub fn login_ok(cookie: Option<&str>, body: &str) -> Capture {
        Capture {
            body_wanted: true,
            body: body.as_bytes().to_vec(),
            cookie_name: Some(SESSION_COOKIE.into()),
            cookie: cookie.map(str::to_string),
        }
    }
}

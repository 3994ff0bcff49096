//! The quizbench scenarios by name ([`ScenarioKind`]), how a VU presents
//! its session ([`AuthMode`]) and the options of a quizbench scenario
//! ([`QuizbenchOptions`]). Names and options only: no requests are built
//! here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JourneyWeights;

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
    /// `GET /cohort` as `teacher1`: a teacher's cohort dashboard (about
    /// 50 KB of HTML with the reference data; document 003's
    /// `/admin/dashboard`).
    Cohort,
    /// Document 002's weighted Locust journey with think time.
    Journey,
}

impl ScenarioKind {
    /// The scenario's name as the command line and the reports write it
    /// (`select-options`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether the scenario's requests need a session: all but `healthz`,
    /// `login`, `static` and `index`.
    pub fn needs_session(self) -> bool {
        !matches!(
            self,
            ScenarioKind::Healthz
                | ScenarioKind::Login
                | ScenarioKind::Static
                | ScenarioKind::Index
        )
    }
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

//! What wrk and hey need to load quizbench: the one request of a
//! single-request scenario ([`scenario_call`]) and a session to send with
//! it ([`login_session`], logged in once before the run). The journey has
//! no single request (Locust runs it from `locustfile.py`). It knows the
//! quizbench API only as far as these requests need; it runs no tool.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};

use super::FixedCall;
use crate::generator::http::blocking::http_request;
use crate::generator::scenarios::{
    AuthMode, ScenarioKind, SEEDED_PASSWORD, SEEDED_TEACHER, SESSION_COOKIE,
};

/// Logs in `student{n}` and returns the session token (the `qb_session`
/// cookie's value).
pub fn login_session(addr: SocketAddr, student: usize) -> anyhow::Result<String> {
    login_as(addr, &format!("student{student}"))
}

/// The session a scenario's fixed request is sent with: `teacher1`'s for
/// the cohort dashboard, `student1`'s otherwise.
pub fn scenario_session(addr: SocketAddr, kind: ScenarioKind) -> anyhow::Result<String> {
    match kind {
        ScenarioKind::Cohort => login_as(addr, SEEDED_TEACHER),
        _ => login_session(addr, 1),
    }
}

/// Logs in a seeded user and returns the session token.
pub fn login_as(addr: SocketAddr, username: &str) -> anyhow::Result<String> {
    let body = format!(r#"{{"username":"{username}","password":"{SEEDED_PASSWORD}"}}"#);
    let response = http_request(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(30),
    )?;
    if response.status != 200 {
        bail!(
            "login as {username} failed with {}: {}",
            response.status,
            response.body
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&response.body).context("login answer is not JSON")?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .context("login answer has no token")
}

/// The one request of a single-request quizbench scenario, for wrk and hey:
/// the first quiz, the first grade text; `session` (from [`login_session`])
/// goes in the cookie or bearer header. The journey has no single request.
pub fn scenario_call(
    kind: ScenarioKind,
    base: &str,
    session: Option<&str>,
    auth: AuthMode,
    static_path: &str,
) -> anyhow::Result<FixedCall> {
    let (method, path, body): (&str, String, Vec<u8>) = match kind {
        ScenarioKind::Healthz => ("GET", "/healthz".into(), vec![]),
        ScenarioKind::Login => (
            "POST",
            "/api/v1/auth/login".into(),
            format!(r#"{{"username":"student1","password":"{SEEDED_PASSWORD}"}}"#).into_bytes(),
        ),
        ScenarioKind::Quizzes => ("GET", "/api/v1/quizzes".into(), vec![]),
        ScenarioKind::Quiz => ("GET", "/api/v1/quizzes/1".into(), vec![]),
        ScenarioKind::SelectOptions => ("GET", "/api/v1/students/select-options".into(), vec![]),
        ScenarioKind::Grade => (
            "POST",
            "/api/v1/grade".into(),
            serde_json::json!({
                "text": "A process is a program in execution with its own address space."
            })
            .to_string()
            .into_bytes(),
        ),
        ScenarioKind::Static => ("GET", static_path.to_string(), vec![]),
        ScenarioKind::Index => ("GET", "/".into(), vec![]),
        ScenarioKind::Cohort => ("GET", "/cohort".into(), vec![]),
        ScenarioKind::Journey => bail!(
            "the journey is not a single request: run it with --tool locust (locustfile.py) or quizload"
        ),
    };
    let mut headers = Vec::new();
    if !body.is_empty() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    if let Some(tok) = session {
        headers.push(match auth {
            AuthMode::Cookie => ("Cookie".into(), format!("{SESSION_COOKIE}={tok}")),
            AuthMode::Bearer => ("Authorization".into(), format!("Bearer {tok}")),
        });
    }
    let name = match kind {
        ScenarioKind::Quiz => "GET /api/v1/quizzes/{id}".to_string(),
        _ => format!("{method} {path}"),
    };
    Ok(FixedCall {
        method: method.into(),
        url: format!("{}{path}", base.trim_end_matches('/')),
        headers,
        body,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_calls_carry_the_session() {
        let c = scenario_call(
            ScenarioKind::SelectOptions,
            "http://127.0.0.1:8000/",
            Some("tok"),
            AuthMode::Cookie,
            "/static/style.css",
        )
        .unwrap();
        assert_eq!(
            c.url,
            "http://127.0.0.1:8000/api/v1/students/select-options"
        );
        assert_eq!(c.headers, vec![("Cookie".into(), "qb_session=tok".into())]);
        assert_eq!(c.name, "GET /api/v1/students/select-options");
        let g = scenario_call(
            ScenarioKind::Grade,
            "http://h",
            Some("t"),
            AuthMode::Bearer,
            "",
        )
        .unwrap();
        assert_eq!(g.method, "POST");
        assert!(g
            .headers
            .contains(&("Authorization".into(), "Bearer t".into())));
        assert!(g
            .headers
            .contains(&("Content-Type".into(), "application/json".into())));
        let body: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert!(body["text"].is_string());
        let l = scenario_call(ScenarioKind::Login, "http://h", None, AuthMode::Cookie, "").unwrap();
        let body: serde_json::Value = serde_json::from_slice(&l.body).unwrap();
        assert_eq!(body["username"], "student1");
        assert_eq!(body["password"], SEEDED_PASSWORD);
        let q = scenario_call(ScenarioKind::Quiz, "http://h", None, AuthMode::Cookie, "").unwrap();
        assert_eq!(
            (q.url.as_str(), q.name.as_str()),
            ("http://h/api/v1/quizzes/1", "GET /api/v1/quizzes/{id}")
        );
        let s = scenario_call(
            ScenarioKind::Static,
            "http://h",
            None,
            AuthMode::Cookie,
            "/static/a.js",
        )
        .unwrap();
        assert_eq!(s.url, "http://h/static/a.js");
        assert!(scenario_call(
            ScenarioKind::Journey,
            "http://h",
            None,
            AuthMode::Cookie,
            ""
        )
        .is_err());
        assert!(ScenarioKind::Quizzes.needs_session() && !ScenarioKind::Login.needs_session());
    }
}

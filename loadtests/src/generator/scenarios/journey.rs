//! Document 002's journey: the Locust tasks and their weights
//! ([`JourneyWeights`]), the weighted choice of a VU's next task, taking a
//! quiz (fetch it, then submit answers built from it at once), and the
//! attempt body built from a fetched quiz ([`answers_for_quiz`]). Login,
//! sessions and request building are the quizbench script's; this module
//! only decides what the journey asks for next.

use anyhow::bail;
use rand::rngs::SmallRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::quizbench::{ep, QuizbenchScript};
use super::{Planned, SEEDED_QUIZZES};

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

    pub(super) fn as_array(&self) -> [u32; 6] {
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

pub(super) fn cumulative(w: [u32; 6]) -> [u32; 6] {
    let mut out = [0; 6];
    let mut acc = 0;
    for (i, x) in w.iter().enumerate() {
        acc += x;
        out[i] = acc;
    }
    out
}

impl QuizbenchScript {
    pub(super) fn journey_step(&mut self, rng: &mut SmallRng) -> Planned<'_> {
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

    pub(super) fn fetch_quiz(&mut self, id: u32) -> Planned<'_> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::http::{Capture, RequestBuilder};
    use crate::generator::scenarios::test_support::{login_ok, opts, text};
    use crate::generator::scenarios::{Quizbench, ScenarioFactory, ScenarioKind};
    use rand::SeedableRng;
    use std::time::Duration;

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
}

//! My attempts (`/attempts`) and one attempt's result (`/attempts/{id}`):
//! the stored score, and each question's outcome regraded from the stored
//! answers by the grading the API uses (`domain::grading`). The answer
//! keys themselves are never shown.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::errors::HtmlError;
use super::layout::{no_attempts_yet, signed_in_page};
use super::quizzes::quiz_detail;
use super::request::{PageId, SignedIn};
use crate::db;
use crate::db::quizzes::Question;
use crate::domain::grading::{self, Answer};
use crate::error::ApiError;
use crate::state::AppState;

/// How many attempts the list shows.
const LISTED: i64 = 100;

/// My latest attempts, newest first, each linked to its result.
pub async fn list(State(state): State<AppState>, visitor: SignedIn) -> Result<Response, HtmlError> {
    let attempts =
        db::attempts::recent_for_user(&state.db, visitor.session.user_id, LISTED).await?;
    let content = html! {
        @if attempts.is_empty() {
            (no_attempts_yet())
        } @else {
            table {
                caption { "Your latest " (attempts.len()) " attempts, newest first" }
                thead {
                    tr { th scope="col" { "Quiz" } th scope="col" { "Score" } th scope="col" { "Submitted" } }
                }
                tbody {
                    @for a in &attempts {
                        tr {
                            td { a href={ "/attempts/" (a.id) } { (a.quiz_title) } }
                            td { (a.score) " / " (a.max_score) }
                            td { (when(a.submitted_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(signed_in_page(
        &visitor,
        "My attempts",
        "/attempts",
        content,
    ))
}

/// A time as pages show it (UTC), in a `<time>` element.
pub(super) fn when(at: chrono::DateTime<chrono::Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

/// What became of one question of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Correct,
    Incorrect,
    Unanswered,
}

/// One of my attempts: its score and each question's outcome. Another
/// student's attempt is a 404, as if it did not exist.
pub async fn result(
    State(state): State<AppState>,
    visitor: SignedIn,
    PageId(id): PageId,
) -> Result<Response, HtmlError> {
    let attempt = db::attempts::with_answers(&state.db, visitor.session.user_id, id)
        .await?
        .ok_or(ApiError::NotFound("attempt"))?;
    let quiz = quiz_detail(&state, attempt.quiz_id).await?;
    let keys = db::quizzes::keys(&state.db, attempt.quiz_id).await?;
    let answers = &attempt.answers.0;
    let mut outcomes = HashMap::new();
    // Stored answers were graded once; a key changed since cannot fail
    // the page: its questions show no outcome.
    let _ = grading::grade_each(&keys, answers, |question, correct| {
        let outcome = if correct {
            Outcome::Correct
        } else {
            Outcome::Incorrect
        };
        outcomes.insert(question, outcome);
    });
    let title = format!("Result: {}", quiz.title);
    let content = html! {
        div.card.score {
            p.big { "Your score: " strong { (attempt.score) " / " (attempt.max_score) } }
            p.muted { "Submitted " (when(attempt.submitted_at)) }
        }
        h2 { "Question by question" }
        ol.questions {
            @for q in &quiz.questions {
                @let outcome = outcomes.get(&q.id).copied().unwrap_or(Outcome::Unanswered);
                li.card { (question(q, answers, outcome)) }
            }
        }
        p.actions {
            a href={ "/quizzes/" (quiz.id) } { "Take this quiz again" }
            a href="/attempts" { "My attempts" }
            a href="/dashboard" { "Dashboard" }
        }
    };
    Ok(signed_in_page(&visitor, &title, "", content))
}

fn question(q: &Question, answers: &[Answer], outcome: Outcome) -> Markup {
    let answer = answers.iter().find(|a| a.question_id == q.id);
    let given: Vec<&str> = match answer {
        Some(Answer {
            text: Some(text), ..
        }) => vec![text.as_str()],
        Some(Answer {
            choice_ids: Some(ids),
            ..
        }) => q
            .choices
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| c.text.as_str())
            .collect(),
        _ => Vec::new(),
    };
    let (class, label) = match outcome {
        Outcome::Correct => ("outcome correct", "Correct"),
        Outcome::Incorrect => ("outcome incorrect", "Incorrect"),
        Outcome::Unanswered if answer.is_some() => ("outcome", "Not graded"),
        Outcome::Unanswered => ("outcome unanswered", "Not answered"),
    };
    html! {
        p.prompt { (q.prompt) }
        @if !given.is_empty() {
            p { "Your answer: " strong { (given.join(", ")) } }
        }
        p class=(class) { (label) }
    }
}

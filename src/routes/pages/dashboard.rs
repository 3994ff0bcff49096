//! The dashboard (`/dashboard`): my best score and attempt count per quiz,
//! the rows of `GET /api/v1/progress`; a teacher is pointed to the cohort.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::attempts::when;
use super::errors::HtmlError;
use super::layout::{no_attempts_yet, signed_in_page};
use super::request::SignedIn;
use crate::db;
use crate::state::AppState;

pub async fn progress(
    State(state): State<AppState>,
    visitor: SignedIn,
) -> Result<Response, HtmlError> {
    let progress = db::progress::for_user(&state.db, visitor.session.user_id).await?;
    let content = html! {
        p.muted { "Signed in as " (visitor.session.username) "." }
        @if visitor.is_teacher() {
            div.card {
                p { "Your cohort's results: " a href="/cohort" { "open the cohort dashboard" } "." }
            }
        }
        h2 { "Progress" }
        @if progress.is_empty() {
            (no_attempts_yet())
        } @else {
            table {
                caption { "Your best score and number of attempts per quiz" }
                thead {
                    tr {
                        th scope="col" { "Quiz" }
                        th scope="col" { "Best score" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Last attempt" }
                    }
                }
                tbody {
                    @for p in &progress {
                        tr {
                            td { a href={ "/quizzes/" (p.quiz_id) } { (p.quiz_title) } }
                            td class=(if p.best_score * 2 >= p.max_score { "score-good" } else { "score-poor" }) {
                                (p.best_score) " / " (p.max_score)
                            }
                            td { (p.attempt_count) }
                            td { (when(p.last_attempt_at)) }
                        }
                    }
                }
            }
            p { a href="/attempts" { "See all my attempts" } }
        }
    };
    Ok(signed_in_page(&visitor, "Dashboard", "/dashboard", content))
}

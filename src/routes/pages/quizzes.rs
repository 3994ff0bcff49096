//! The quiz list (`/quizzes`) and a quiz's page (`/quizzes/{id}`): its
//! questions as a form whose submit makes an attempt through the API's own
//! code (`routes::attempts::record`: graded, stored once per idempotency
//! key). Pages render typed rows read from the database; the content
//! cache holds the API's serialized bodies, which pages never parse back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::errors::{sentence, HtmlError};
use super::layout::{document, form_error, html_response, see_other, Account};
use super::request::{PageForm, PageId, SignedIn, Visitor};
use crate::db;
use crate::db::quizzes::QuizDetail;
use crate::domain::grading::{Answer, Kind};
use crate::error::ApiError;
use crate::extract::{check_form_token, FormPost, IdPath};
use crate::routes::attempts::{record, valid_idempotency_key};
use crate::state::AppState;

/// Every quiz, linked to its page.
pub async fn list(
    State(state): State<AppState>,
    Visitor(visitor): Visitor,
) -> Result<Response, HtmlError> {
    let quizzes = db::quizzes::list(&state.db).await?;
    let page = document(
        "Quizzes",
        visitor.as_ref().into(),
        "/quizzes",
        html! {
            h1 { "Quizzes" }
            @if visitor.is_none() {
                p { a href="/?next=%2Fquizzes" { "Sign in" } " to take a quiz." }
            }
            ul.quiz-list.card {
                @for q in &quizzes {
                    li {
                        a.title href={ "/quizzes/" (q.id) } { (q.title) }
                        div.meta { (q.description) " · " (q.question_count) " questions" }
                    }
                }
            }
        },
    );
    Ok(html_response(StatusCode::OK, page))
}

/// Quiz `id` with its questions; a 404 when there is none.
pub(super) async fn quiz_detail(state: &AppState, id: i64) -> Result<QuizDetail, HtmlError> {
    let mut conn = state.db.acquire().await.map_err(ApiError::from)?;
    let quiz = db::quizzes::get(&mut conn, id)
        .await
        .map_err(ApiError::from)?;
    Ok(quiz.ok_or(ApiError::NotFound("quiz"))?)
}

/// A quiz's questions as a form.
pub async fn form(
    State(state): State<AppState>,
    visitor: SignedIn,
    PageId(id): PageId,
) -> Result<Response, HtmlError> {
    let quiz = quiz_detail(&state, id).await?;
    let page = quiz_page(&visitor, &quiz, &FormPost::default(), None);
    Ok(html_response(StatusCode::OK, page))
}

/// Makes an attempt from the form and shows its result (a 303 to it), or
/// the form again, as filled, with what went wrong. The form's
/// idempotency key makes a second submit of the same form (a double click,
/// a resubmitted POST) lead to the same attempt instead of a new one.
pub async fn submit(
    State(state): State<AppState>,
    visitor: SignedIn,
    // Not a `PageId`: the form's own refusals (a cross-site post) come first.
    id: Result<IdPath, ApiError>,
    PageForm(form): PageForm,
) -> Result<Response, HtmlError> {
    let IdPath(quiz_id) = id?;
    check_form_token(&visitor.token, &form)?;
    let quiz = quiz_detail(&state, quiz_id).await?;
    let key = form
        .get("idempotency_key")
        .filter(|k| valid_idempotency_key(k))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "the form lost its idempotency key: reload the quiz",
            )
        })?;
    let answers = answers_from(&quiz, &form)?;
    let refused = |message: &str| {
        let page = quiz_page(&visitor, &quiz, &form, Some(message));
        Ok(html_response(StatusCode::UNPROCESSABLE_ENTITY, page))
    };
    if answers.is_empty() {
        return refused("Answer at least one question, then submit.");
    }
    match record(
        &state,
        visitor.session.user_id,
        quiz_id,
        Some(key),
        &answers,
    )
    .await
    {
        Ok(recorded) => Ok(see_other(&format!("/attempts/{}", recorded.attempt.id))),
        Err(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            ..
        }) => refused(
            "This form was already submitted with other answers. \
             Your answers are kept below: submit them to make a new attempt.",
        ),
        Err(e @ ApiError::Unprocessable { .. }) => refused(&sentence(&e)),
        Err(e) => Err(e.into()),
    }
}

/// The form's answers in the API's shape, in question order; an
/// unanswered question is left out (it scores zero).
fn answers_from(quiz: &QuizDetail, form: &FormPost) -> Result<Vec<Answer>, ApiError> {
    let mut answers = Vec::new();
    for q in &quiz.questions {
        let name = field(q.id);
        let answer = if Kind::parse(&q.kind) == Some(Kind::Text) {
            let text = form.get(&name).unwrap_or_default().trim();
            (!text.is_empty()).then(|| Answer {
                question_id: q.id,
                choice_ids: None,
                text: Some(text.to_string()),
            })
        } else {
            let ids = form
                .all(&name)
                .map(str::parse::<i64>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ApiError::bad_request("invalid_choice", "a choice is not a number"))?;
            (!ids.is_empty()).then_some(Answer {
                question_id: q.id,
                choice_ids: Some(ids),
                text: None,
            })
        };
        answers.extend(answer);
    }
    Ok(answers)
}

/// The form field of question `id`.
fn field(id: i64) -> String {
    format!("q{id}")
}

/// The quiz's form, filled with `filled` (a refused submit's fields), and a
/// fresh idempotency key: each form shown is one attempt.
fn quiz_page(
    visitor: &SignedIn,
    quiz: &QuizDetail,
    filled: &FormPost,
    error: Option<&str>,
) -> Markup {
    let key = crate::sessions::new_token();
    document(
        &quiz.title,
        Account::SignedIn(visitor),
        "",
        html! {
            h1 { (quiz.title) }
            p.muted { (quiz.description) }
            (form_error(error))
            form.quiz method="post" action={ "/quizzes/" (quiz.id) } {
                input type="hidden" name="csrf" value=(visitor.form_token());
                input type="hidden" name="idempotency_key" value=(key);
                ol.questions {
                    @for q in &quiz.questions {
                        li.card { (question(q, filled)) }
                    }
                }
                button type="submit" { "Submit answers" }
            }
        },
    )
}

fn question(q: &crate::db::quizzes::Question, filled: &FormPost) -> Markup {
    let name = field(q.id);
    let kind = Kind::parse(&q.kind);
    let points = if q.points == 1 {
        "1 point".to_string()
    } else {
        format!("{} points", q.points)
    };
    html! {
        @if kind == Some(Kind::Text) {
            label.prompt for=(name) { (q.prompt) " " span.points { "(" (points) ")" } }
            input #(name) type="text" name=(name) value=(filled.get(&name).unwrap_or_default())
                autocomplete="off" maxlength="1000";
        } @else {
            fieldset {
                legend.prompt {
                    (q.prompt) " "
                    span.points {
                        "(" (points)
                        @if kind == Some(Kind::Multiple) { ", choose all that apply" }
                        ")"
                    }
                }
                @for c in &q.choices {
                    @let id = format!("{name}-{}", c.id);
                    @let value = c.id.to_string();
                    div.choice {
                        input #(id) name=(name) value=(value)
                            type=(if kind == Some(Kind::Multiple) { "checkbox" } else { "radio" })
                            checked[filled.all(&name).any(|v| v == value)];
                        label for=(id) { (c.text) }
                    }
                }
            }
        }
    }
}

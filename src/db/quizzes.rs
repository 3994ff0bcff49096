//! Quizzes and questions: the content common to all students, and the
//! answer keys grading needs (never sent to clients).

use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;

use crate::domain::grading::{normalize, Kind, QuestionKey};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuizSummary {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub question_count: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Choice {
    pub id: i64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Question {
    pub id: i64,
    pub position: i32,
    pub kind: String,
    pub prompt: String,
    pub points: i32,
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuizDetail {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub questions: Vec<Question>,
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<QuizSummary>> {
    sqlx::query_as!(
        QuizSummary,
        r#"select z.id, z.title, z.description,
                  (select count(*) from questions q where q.quiz_id = z.id) as "question_count!"
             from quizzes z
            order by z.id"#,
    )
    .fetch_all(db)
    .await
}

/// A quiz without its questions.
struct QuizRow {
    id: i64,
    title: String,
    description: String,
}

struct QuestionRow {
    id: i64,
    position: i32,
    kind: String,
    prompt: String,
    points: i32,
    choices: Json<Vec<Choice>>,
}

/// A quiz with its questions in order (two statements on one connection).
pub async fn get(db: &mut sqlx::PgConnection, id: i64) -> sqlx::Result<Option<QuizDetail>> {
    let Some(quiz) = header(&mut *db, id).await? else {
        return Ok(None);
    };
    let rows = questions(&mut *db, id).await?;
    Ok(Some(QuizDetail {
        id: quiz.id,
        title: quiz.title,
        description: quiz.description,
        questions: rows
            .into_iter()
            .map(|r| Question {
                id: r.id,
                position: r.position,
                kind: r.kind,
                prompt: r.prompt,
                points: r.points,
                choices: r.choices.0,
            })
            .collect(),
    }))
}

async fn header(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<QuizRow>> {
    sqlx::query_as!(
        QuizRow,
        "select id, title, description from quizzes where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

async fn questions(db: impl PgExecutor<'_>, quiz_id: i64) -> sqlx::Result<Vec<QuestionRow>> {
    sqlx::query_as!(
        QuestionRow,
        r#"select id, position, kind, prompt, points, choices as "choices: Json<Vec<Choice>>"
             from questions where quiz_id = $1 order by position"#,
        quiz_id,
    )
    .fetch_all(db)
    .await
}

struct KeyRow {
    id: i64,
    kind: String,
    points: i32,
    choices: Json<Vec<Choice>>,
    answer_key: Json<AnswerKey>,
}

/// `answer_key` JSON: `{"choice_ids": [..]}` or `{"accepted": [..]}`.
#[derive(serde::Deserialize, Default)]
struct AnswerKey {
    #[serde(default)]
    choice_ids: Vec<i64>,
    #[serde(default)]
    accepted: Vec<String>,
}

/// The grading keys of a quiz's questions; empty when the quiz has none
/// (or does not exist).
pub async fn keys(db: impl PgExecutor<'_>, quiz_id: i64) -> sqlx::Result<Vec<QuestionKey>> {
    let rows = sqlx::query_as!(
        KeyRow,
        r#"select id, kind, points,
                  choices as "choices: Json<Vec<Choice>>",
                  answer_key as "answer_key: Json<AnswerKey>"
             from questions where quiz_id = $1"#,
        quiz_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(QuestionKey {
                id: r.id,
                kind: Kind::parse(&r.kind)?,
                points: r.points,
                choice_ids: r.choices.0.iter().map(|c| c.id).collect(),
                correct: r.answer_key.0.choice_ids,
                accepted: r
                    .answer_key
                    .0
                    .accepted
                    .iter()
                    .map(|a| normalize(a))
                    .collect(),
            })
        })
        .collect())
}

pub async fn exists(db: impl PgExecutor<'_>, quiz_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from quizzes where id = $1) as "exists!""#,
        quiz_id,
    )
    .fetch_one(db)
    .await
}

/// Accepted answers of one short-text question, for the grade endpoint.
pub async fn accepted_answers(
    db: impl PgExecutor<'_>,
    question_id: i64,
) -> sqlx::Result<Option<Vec<String>>> {
    let key = sqlx::query_scalar!(
        r#"select answer_key as "answer_key: Json<AnswerKey>" from questions where id = $1"#,
        question_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(key.map(|k| k.0.accepted.iter().map(|a| normalize(a)).collect()))
}

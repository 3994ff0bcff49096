//! Quizzes and questions: the content common to all students, and the
//! answer keys grading needs (never sent to clients).

use serde::Serialize;
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};

use crate::domain::grading::{normalize, Kind, QuestionKey};

/// Serialized into the content cache; read back by the quiz list page.
#[derive(Debug, Clone, Serialize, serde::Deserialize, FromRow, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Question {
    pub id: i64,
    pub position: i32,
    pub kind: String,
    pub prompt: String,
    pub points: i32,
    pub choices: Vec<Choice>,
}

/// Serialized into the content cache; read back by the quiz page.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuizDetail {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub questions: Vec<Question>,
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<QuizSummary>> {
    sqlx::query_as(
        "select z.id, z.title, z.description,
                (select count(*) from questions q where q.quiz_id = z.id) as question_count
           from quizzes z
          order by z.id",
    )
    .fetch_all(db)
    .await
}

#[derive(FromRow)]
struct QuizRow {
    id: i64,
    title: String,
    description: String,
}

#[derive(FromRow)]
struct QuestionRow {
    id: i64,
    position: i32,
    kind: String,
    prompt: String,
    points: i32,
    choices: Json<Vec<Choice>>,
}

pub async fn get(db: &mut sqlx::PgConnection, id: i64) -> sqlx::Result<Option<QuizDetail>> {
    let quiz: Option<QuizRow> =
        sqlx::query_as("select id, title, description from quizzes where id = $1")
            .bind(id)
            .fetch_optional(&mut *db)
            .await?;
    let Some(quiz) = quiz else { return Ok(None) };
    let rows: Vec<QuestionRow> = sqlx::query_as(
        "select id, position, kind, prompt, points, choices
           from questions where quiz_id = $1 order by position",
    )
    .bind(id)
    .fetch_all(&mut *db)
    .await?;
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

#[derive(FromRow)]
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
    let rows: Vec<KeyRow> = sqlx::query_as(
        "select id, kind, points, choices, answer_key from questions where quiz_id = $1",
    )
    .bind(quiz_id)
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
    sqlx::query_scalar("select exists (select 1 from quizzes where id = $1)")
        .bind(quiz_id)
        .fetch_one(db)
        .await
}

/// Accepted answers of one short-text question, for the grade endpoint.
pub async fn accepted_answers(
    db: impl PgExecutor<'_>,
    question_id: i64,
) -> sqlx::Result<Option<Vec<String>>> {
    let key: Option<Json<AnswerKey>> =
        sqlx::query_scalar("select answer_key from questions where id = $1")
            .bind(question_id)
            .fetch_optional(db)
            .await?;
    Ok(key.map(|k| k.0.accepted.iter().map(|a| normalize(a)).collect()))
}

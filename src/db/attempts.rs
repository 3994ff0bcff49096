//! Quiz attempts, with the Idempotency-Key columns.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;

use crate::domain::grading::Answer;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub id: i64,
    pub quiz_id: i64,
    pub score: i32,
    pub max_score: i32,
    pub submitted_at: DateTime<Utc>,
}

/// A stored attempt found by its idempotency key.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub id: i64,
    pub quiz_id: i64,
    pub score: i32,
    pub max_score: i32,
    pub submitted_at: DateTime<Utc>,
    pub request_hash: Option<Vec<u8>>,
}

pub async fn by_idempotency_key(
    db: impl PgExecutor<'_>,
    user_id: i64,
    key: &str,
) -> sqlx::Result<Option<Keyed>> {
    sqlx::query_as!(
        Keyed,
        "select id, quiz_id, score, max_score, submitted_at, request_hash
           from attempts where user_id = $1 and idempotency_key = $2",
        user_id,
        key,
    )
    .fetch_optional(db)
    .await
}

pub struct NewAttempt<'a> {
    pub user_id: i64,
    pub quiz_id: i64,
    pub answers: &'a [Answer],
    pub score: i32,
    pub max_score: i32,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a [u8]>,
}

/// Inserts an attempt; returns None when another request with the same
/// idempotency key committed first (the caller then replays that one).
pub async fn insert(db: impl PgExecutor<'_>, a: NewAttempt<'_>) -> sqlx::Result<Option<Attempt>> {
    // `answers` is bound as `Json` (its type is checked at run time: the
    // macros know jsonb as `serde_json::Value` only).
    sqlx::query_as!(
        Attempt,
        "insert into attempts (user_id, quiz_id, answers, score, max_score, idempotency_key, request_hash)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (user_id, idempotency_key) where idempotency_key is not null do nothing
         returning id, quiz_id, score, max_score, submitted_at",
        a.user_id,
        a.quiz_id,
        Json(a.answers) as _,
        a.score,
        a.max_score,
        a.idempotency_key,
        a.request_hash,
    )
    .fetch_optional(db)
    .await
}

/// A student's attempts at one quiz, newest first.
pub async fn for_user_quiz(
    db: impl PgExecutor<'_>,
    user_id: i64,
    quiz_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as!(
        Attempt,
        "select id, quiz_id, score, max_score, submitted_at
           from attempts where user_id = $1 and quiz_id = $2
          order by id desc limit $3",
        user_id,
        quiz_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// One of a student's attempts with its quiz's title (the attempts page).
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub quiz_id: i64,
    pub quiz_title: String,
    pub score: i32,
    pub max_score: i32,
    pub submitted_at: DateTime<Utc>,
}

/// A student's latest attempts at any quiz, newest first.
pub async fn recent_for_user(
    db: impl PgExecutor<'_>,
    user_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<Listed>> {
    sqlx::query_as!(
        Listed,
        "select a.id, a.quiz_id, z.title as quiz_title, a.score, a.max_score, a.submitted_at
           from attempts a join quizzes z on z.id = a.quiz_id
          where a.user_id = $1
          order by a.id desc
          limit $2",
        user_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// One attempt with the answers it carried (the result page).
#[derive(Debug, Clone)]
pub struct WithAnswers {
    pub id: i64,
    pub quiz_id: i64,
    pub answers: Json<Vec<Answer>>,
    pub score: i32,
    pub max_score: i32,
    pub submitted_at: DateTime<Utc>,
}

/// Attempt `id` if it is `user_id`'s (None for another student's).
pub async fn with_answers(
    db: impl PgExecutor<'_>,
    user_id: i64,
    id: i64,
) -> sqlx::Result<Option<WithAnswers>> {
    sqlx::query_as!(
        WithAnswers,
        r#"select id, quiz_id, answers as "answers: Json<Vec<Answer>>", score, max_score,
                  submitted_at
             from attempts where id = $1 and user_id = $2"#,
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

//! Student progress: best score and attempt count per quiz, updated in the
//! same transaction as the attempt it counts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub quiz_id: i64,
    pub quiz_title: String,
    pub best_score: i32,
    pub max_score: i32,
    pub attempt_count: i32,
    pub last_attempt_at: DateTime<Utc>,
}

pub async fn record(
    db: impl PgExecutor<'_>,
    user_id: i64,
    quiz_id: i64,
    score: i32,
    max_score: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into progress (user_id, quiz_id, best_score, max_score, attempt_count, last_attempt_at)
         values ($1, $2, $3, $4, 1, now())
         on conflict (user_id, quiz_id) do update
            set best_score = greatest(progress.best_score, excluded.best_score),
                max_score = excluded.max_score,
                attempt_count = progress.attempt_count + 1,
                last_attempt_at = excluded.last_attempt_at",
        user_id,
        quiz_id,
        score,
        max_score,
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn for_user(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<Vec<Progress>> {
    sqlx::query_as!(
        Progress,
        "select p.quiz_id, z.title as quiz_title, p.best_score, p.max_score,
                p.attempt_count, p.last_attempt_at
           from progress p join quizzes z on z.id = p.quiz_id
          where p.user_id = $1
          order by p.quiz_id",
        user_id,
    )
    .fetch_all(db)
    .await
}

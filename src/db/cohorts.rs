//! A cohort as its teacher sees it: its name, and the progress of each of
//! its students on each quiz (the cohort dashboard page).

use sqlx::PgExecutor;

/// The cohort's name, None when there is no such cohort.
pub async fn name(db: impl PgExecutor<'_>, cohort_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select name from cohorts where id = $1", cohort_id)
        .fetch_optional(db)
        .await
}

/// One student and one quiz they attempted, or the student alone (the
/// `quiz_id` and figures None) when they attempted none.
#[derive(Debug, Clone)]
pub struct GridCell {
    pub user_id: i64,
    pub display_name: String,
    pub quiz_id: Option<i64>,
    pub best_score: Option<i32>,
    pub max_score: Option<i32>,
    pub attempt_count: Option<i32>,
}

/// Every student of a cohort with their progress per quiz, ordered by
/// student then quiz: one row per (student, attempted quiz), one row for a
/// student with no attempt. Served by `users_select_options_idx` and
/// progress's primary key.
pub async fn progress_grid(
    db: impl PgExecutor<'_>,
    organization_id: i64,
    cohort_id: i64,
) -> sqlx::Result<Vec<GridCell>> {
    sqlx::query_as!(
        GridCell,
        r#"select u.id as "user_id!", u.display_name as "display_name!",
                  p.quiz_id as "quiz_id?", p.best_score as "best_score?",
                  p.max_score as "max_score?", p.attempt_count as "attempt_count?"
             from users u left join progress p on p.user_id = u.id
            where u.organization_id = $1 and u.cohort_id = $2 and u.role = 'student'
            order by u.id, p.quiz_id"#,
        organization_id,
        cohort_id,
    )
    .fetch_all(db)
    .await
}

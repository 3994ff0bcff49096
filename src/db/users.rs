//! Users: lookup for login and sessions, registration, password change,
//! and document 004's select-options query.

use serde::Serialize;
use sqlx::PgExecutor;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub organization_id: Option<i64>,
    pub cohort_id: Option<i64>,
}

/// The public view of a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub organization_id: Option<i64>,
    pub cohort_id: Option<i64>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: r.role,
            organization_id: r.organization_id,
            cohort_id: r.cohort_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SelectOption {
    pub id: i64,
    pub label: String,
}

/// The one user matching `$condition` on `$key` (sqlx checks the joined
/// statement at compile time like any other).
macro_rules! user_where {
    ($condition:literal, $key:expr) => {
        sqlx::query_as!(
            UserRow,
            "select id, username, password_hash, display_name, role, organization_id, cohort_id
               from users where "
                + $condition,
            $key,
        )
    };
}

pub async fn by_username(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<UserRow>> {
    user_where!("username = $1", username)
        .fetch_optional(db)
        .await
}

/// How many users have exactly this password hash (the seeded accounts
/// share one).
pub async fn count_with_hash(db: impl PgExecutor<'_>, hash: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from users where password_hash = $1"#,
        hash
    )
    .fetch_one(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    user_where!("id = $1", id).fetch_optional(db).await
}

/// Inserts a student in `cohort_id`'s organization and cohort; `None` when
/// `cohort_id` names no cohort (nothing is inserted). A taken username is a
/// unique violation of `users_username_key`.
pub async fn insert_student(
    db: impl PgExecutor<'_>,
    username: &str,
    password_hash: &str,
    display_name: &str,
    cohort_id: Option<i64>,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "insert into users (username, password_hash, display_name, role, organization_id, cohort_id)
         select $1, $2, $3, 'student', c.organization_id, c.id
           from (select 1) one left join cohorts c on c.id = $4
          where $4::bigint is null or c.id is not null
         returning id, username, display_name, role, organization_id, cohort_id",
        username,
        password_hash,
        display_name,
        cohort_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn set_password(db: impl PgExecutor<'_>, id: i64, hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set password_hash = $2 where id = $1",
        id,
        hash,
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Whether any user exists (`seed --if-empty` loads only an empty database).
pub async fn any(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"select exists (select 1 from users) as "exists!""#)
        .fetch_one(db)
        .await
}

/// `[{id, label}]` of the students of an organization and cohort (served by
/// the index-only scan of `users_select_options_idx`), as JSON bytes
/// written from each row as it arrives: no `Vec` of rows, no second pass
/// (measurable at 100 rows a request). Takes the pool and checks a
/// connection out itself: streamed on `&DbPool`, the rows would be buffered
/// first (see its executor).
pub async fn select_options_json(
    db: &super::DbPool,
    organization_id: i64,
    cohort_id: i64,
) -> sqlx::Result<Vec<u8>> {
    use futures_util::TryStreamExt as _;
    let mut conn = db.acquire().await?;
    let mut rows = sqlx::query!(
        r#"select id, display_name || ' (' || username || ')' as "label!"
             from users
            where organization_id = $1 and cohort_id = $2 and role = 'student'
            order by id
            limit 1000"#,
        organization_id,
        cohort_id,
    )
    .fetch(&mut conn);
    let mut out = Vec::with_capacity(4096);
    let mut ids = itoa::Buffer::new();
    out.push(b'[');
    while let Some(row) = rows.try_next().await? {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(ids.format(row.id).as_bytes());
        out.extend_from_slice(b",\"label\":");
        serde_json::to_writer(&mut out, &row.label).map_err(|e| sqlx::Error::Decode(e.into()))?;
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

//! The TechEmpower benchmark's tables, `world` and `fortune`: one function
//! per statement `routes::techempower` runs. The benchmark's rules (one
//! query per row, no caching) are the routes'; this module only talks to
//! PostgreSQL.

use serde::Serialize;
use sqlx::PgExecutor;

/// A `world` row, serialized as the benchmark expects (`randomNumber`).
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
pub struct World {
    pub id: i32,
    #[serde(rename = "randomNumber")]
    pub randomnumber: i32,
}

#[derive(Debug)]
pub struct Fortune {
    pub id: i32,
    pub message: String,
}

/// One `world` row; `RowNotFound` when the table lacks that id.
pub async fn world(db: impl PgExecutor<'_>, id: i32) -> sqlx::Result<World> {
    sqlx::query_as!(
        World,
        "select id, randomnumber from world where id = $1",
        id
    )
    .fetch_one(db)
    .await
}

/// Every `world` row in id order.
pub async fn all_worlds(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<World>> {
    sqlx::query_as!(World, "select id, randomnumber from world order by id")
        .fetch_all(db)
        .await
}

/// Sets `randomnumber` of each id in `ids` to the number at the same place
/// in `numbers`, in one statement. The ids must be distinct (with a repeated
/// id PostgreSQL keeps one of its values, unspecified which) and should be
/// sorted, so concurrent batches lock rows in the same order and cannot
/// deadlock.
pub async fn set_numbers(
    db: impl PgExecutor<'_>,
    ids: &[i32],
    numbers: &[i32],
) -> sqlx::Result<()> {
    sqlx::query!(
        "update world set randomnumber = v.r
           from (select unnest($1::int[]) as id, unnest($2::int[]) as r) v
          where world.id = v.id",
        ids,
        numbers,
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Every fortune, unordered.
pub async fn fortunes(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Fortune>> {
    sqlx::query_as!(Fortune, "select id, message from fortune")
        .fetch_all(db)
        .await
}

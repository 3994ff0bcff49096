//! TechEmpower Framework Benchmarks routes (`/json`, `/plaintext`, `/db`,
//! `/queries`, `/fortunes`, `/updates`, `/cached-queries`), written to the
//! published rules so quizbench can be placed among Round 23's results:
//! a fresh serialization per request, one query per row for `/queries`
//! (no caching where the rules forbid it), HTML escaping and sorting done
//! per request for `/fortunes`, `Server` and `Date` headers on every
//! response (hyper adds `Date`).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sqlx::FromRow;

use super::RouteList;
use crate::error::ApiError;
use crate::state::AppState;

/// Rows in the `world` table.
pub const WORLD_ROWS: i32 = 10_000;

pub fn routes() -> RouteList {
    RouteList::default()
        .route("/json", get(json))
        .route("/plaintext", get(plaintext))
        .route("/db", get(db))
        .route("/queries", get(queries))
        .route("/fortunes", get(fortunes))
        .route("/updates", get(updates))
        .route("/cached-queries", get(cached_queries))
        .layer(axum::middleware::map_response(server_header))
}

async fn server_header(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("quizbench"));
    res
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

async fn json() -> Response {
    super::json(
        StatusCode::OK,
        &Message {
            message: "Hello, World!",
        },
    )
}

async fn plaintext() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "Hello, World!",
    )
        .into_response()
}

#[derive(Serialize, FromRow, Clone, Copy)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    randomnumber: i32,
}

fn random_id() -> i32 {
    rand::random_range(1..=WORLD_ROWS)
}

/// The rules: a missing or non-numeric count is 1, and counts are clamped
/// to 1..=500.
fn count(params: &HashMap<String, String>, name: &str) -> usize {
    params
        .get(name)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 500) as usize
}

async fn fetch_world(db: &mut sqlx::PgConnection, id: i32) -> Result<World, ApiError> {
    Ok(
        sqlx::query_as("select id, randomnumber from world where id = $1")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

async fn db(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.db.acquire().await?;
    let world = fetch_world(&mut conn, random_id()).await?;
    Ok(super::json(StatusCode::OK, &world))
}

async fn queries(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let n = count(&params, "queries");
    let mut conn = state.db.acquire().await?;
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        worlds.push(fetch_world(&mut conn, random_id()).await?);
    }
    Ok(super::json(StatusCode::OK, &worlds))
}

async fn updates(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let n = count(&params, "queries");
    let mut conn = state.db.acquire().await?;
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        let mut w = fetch_world(&mut conn, random_id()).await?;
        w.randomnumber = random_id();
        worlds.push(w);
    }
    // One batched update (allowed by the rules), in id order so concurrent
    // batches cannot deadlock.
    let mut sorted = worlds.clone();
    sorted.sort_by_key(|w| w.id);
    sorted.dedup_by_key(|w| w.id);
    let ids: Vec<i32> = sorted.iter().map(|w| w.id).collect();
    let numbers: Vec<i32> = sorted.iter().map(|w| w.randomnumber).collect();
    sqlx::query(
        "update world set randomnumber = v.r
           from (select unnest($1::int[]) as id, unnest($2::int[]) as r) v
          where world.id = v.id",
    )
    .bind(&ids)
    .bind(&numbers)
    .execute(&mut *conn)
    .await?;
    Ok(super::json(StatusCode::OK, &worlds))
}

/// `/cached-queries`: rows from an in-memory copy of `world`, loaded once
/// per process.
async fn cached_queries(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    static CACHE: OnceLock<Vec<World>> = OnceLock::new();
    let cache = match CACHE.get() {
        Some(c) => c,
        None => {
            let mut rows: Vec<World> =
                sqlx::query_as("select id, randomnumber from world order by id")
                    .fetch_all(&state.db)
                    .await?;
            rows.sort_by_key(|w| w.id);
            CACHE.get_or_init(|| rows)
        }
    };
    if cache.is_empty() {
        return Err(ApiError::NotFound("world rows (run `quizbench seed`)"));
    }
    let n = count(&params, "count");
    let worlds: Vec<World> = (0..n)
        .map(|_| cache[rand::random_range(0..cache.len())])
        .collect();
    Ok(super::json(StatusCode::OK, &worlds))
}

#[derive(FromRow)]
struct Fortune {
    id: i32,
    message: String,
}

async fn fortunes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut rows: Vec<Fortune> = sqlx::query_as("select id, message from fortune")
        .fetch_all(&state.db)
        .await?;
    rows.push(Fortune {
        id: 0,
        message: "Additional fortune added at request time.".into(),
    });
    rows.sort_by(|a, b| a.message.cmp(&b.message));
    let mut html = String::with_capacity(2048);
    html.push_str(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for f in &rows {
        html.push_str("<tr><td>");
        html.push_str(&f.id.to_string());
        html.push_str("</td><td>");
        html.push_str(&super::pages::escape(&f.message));
        html.push_str("</td></tr>");
    }
    html.push_str("</table></body></html>");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response())
}

/// The 12 fortunes of the benchmark's reference data.
pub const FORTUNES: &[&str] = &[
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "フレームワークのベンチマーク",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_rules() {
        let p = |v: &str| HashMap::from([("queries".to_string(), v.to_string())]);
        assert_eq!(count(&HashMap::new(), "queries"), 1);
        assert_eq!(count(&p("foo"), "queries"), 1);
        assert_eq!(count(&p("0"), "queries"), 1);
        assert_eq!(count(&p("-5"), "queries"), 1);
        assert_eq!(count(&p("20"), "queries"), 20);
        assert_eq!(count(&p("501"), "queries"), 500);
    }
}

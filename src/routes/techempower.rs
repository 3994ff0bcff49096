//! TechEmpower Framework Benchmarks routes (`/json`, `/plaintext`, `/db`,
//! `/queries`, `/fortunes`, `/updates`, `/cached-queries`), written to the
//! published rules so quizbench can be placed among Round 23's results:
//! a fresh serialization per request, one query per row for `/queries`
//! (no caching where the rules forbid it), HTML escaping and sorting done
//! per request for `/fortunes`, `Server` and `Date` headers on every
//! response (hyper adds `Date`).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sqlx::FromRow;

use super::RouteList;
use crate::domain::techempower::{count, WORLD_ROWS};
use crate::error::ApiError;
use crate::extract::AppQuery;
use crate::state::AppState;

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
    AppQuery(params): AppQuery<HashMap<String, String>>,
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
    AppQuery(params): AppQuery<HashMap<String, String>>,
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
    AppQuery(params): AppQuery<HashMap<String, String>>,
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

//! TechEmpower Framework Benchmarks routes (`/json`, `/plaintext`, `/db`,
//! `/queries`, `/fortunes`, `/updates`, `/cached-queries`), written to the
//! published rules so quizbench can be placed among Round 23's results:
//! a fresh serialization per request, one query per row for `/queries`
//! (no caching where the rules forbid it), HTML escaping and sorting done
//! per request for `/fortunes`, `Server` and `Date` headers on every
//! response (hyper adds `Date`).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::RouteList;
use crate::db::techempower::{self as tables, Fortune, World};
use crate::db::DbConn;
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

fn random_id() -> i32 {
    rand::random_range(1..=WORLD_ROWS)
}

async fn db(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = state.db.acquire().await?;
    let world = tables::world(&mut conn, random_id()).await?;
    Ok(super::json(StatusCode::OK, &world))
}

/// `?queries=` random rows of `world`, one query each (as the rules ask),
/// and the connection they were read on.
async fn random_worlds(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<(DbConn, Vec<World>), ApiError> {
    let n = count(params, "queries");
    let mut conn = state.db.acquire().await?;
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        worlds.push(tables::world(&mut conn, random_id()).await?);
    }
    Ok((conn, worlds))
}

async fn queries(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (_, worlds) = random_worlds(&state, &params).await?;
    Ok(super::json(StatusCode::OK, &worlds))
}

async fn updates(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (mut conn, mut worlds) = random_worlds(&state, &params).await?;
    // The new number of each id drawn: an id drawn twice keeps the number
    // it got first, so the response shows what the table will hold.
    let mut numbers = BTreeMap::new();
    for w in &mut worlds {
        w.randomnumber = *numbers.entry(w.id).or_insert_with(random_id);
    }
    // One batched update (allowed by the rules), in id order so concurrent
    // batches cannot deadlock.
    let (ids, numbers): (Vec<i32>, Vec<i32>) = numbers.into_iter().unzip();
    tables::set_numbers(&mut conn, &ids, &numbers).await?;
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
            let rows = tables::all_worlds(&state.db).await?;
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

async fn fortunes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut rows = tables::fortunes(&state.db).await?;
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

//! Quiz list and quiz detail: content common to all students, served
//! through the content cache (`CACHE_MODE`), answer keys never included.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::RouteList;
use crate::cache::{Key, Outcome};
use crate::db;
use crate::error::ApiError;
use crate::extract::IdPath;
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default()
        .api(documented!(list))
        .api(documented!(one))
}

error_responses! {
    QuizErrors: [400 "Malformed id", 404 "No such quiz"];
}

/// The serialized quiz list, through the content cache.
async fn list_bytes(state: &AppState) -> Result<(Bytes, Outcome), ApiError> {
    let (body, outcome) = state
        .cache
        .get_or_build(Key::QuizList, || async {
            let quizzes = db::quizzes::list(&state.db).await?;
            Ok(Some(Bytes::from(
                serde_json::to_vec(&quizzes).map_err(|e| ApiError::Internal(e.into()))?,
            )))
        })
        .await?;
    count(state, outcome);
    Ok((body.unwrap_or_default(), outcome))
}

fn count(state: &AppState, outcome: Outcome) {
    match outcome {
        Outcome::Hit => state.slot.cache_hit(),
        Outcome::Miss => state.slot.cache_miss(),
        Outcome::Bypass => state.slot.cache_bypass(),
        Outcome::Off => {}
    }
}

fn with_cache_header(mut res: Response, outcome: Outcome) -> Response {
    res.headers_mut().insert(
        HeaderName::from_static("x-cache"),
        HeaderValue::from_static(outcome.as_str()),
    );
    res
}

/// The quiz list's or one quiz's response (`key`) when it is a current
/// `local` cache hit, built without an await: the server answers
/// `GET /api/v1/quizzes` and `GET /api/v1/quizzes/{id}` with it before the
/// router (see `app::shortcut`). Same bytes and headers as [`list`] and
/// [`one`]; a cached "no such quiz" is left to the router.
pub fn cached(state: &AppState, key: Key) -> Option<Response> {
    let body = state.cache.fresh_local(key)?;
    count(state, Outcome::Hit);
    let mut res = with_cache_header(super::json_bytes(StatusCode::OK, body), Outcome::Hit);
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Some(res)
}

/// All quizzes (content common to all students, cached per CACHE_MODE).
#[utoipa::path(get, path = "/api/v1/quizzes", tag = "quizzes",
    responses((status = 200, description = "Quiz list", body = Vec<db::quizzes::QuizSummary>)))]
async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (body, outcome) = list_bytes(&state).await?;
    Ok(with_cache_header(
        super::json_bytes(StatusCode::OK, body),
        outcome,
    ))
}

/// One quiz with its questions (never the answer keys).
#[utoipa::path(get, path = "/api/v1/quizzes/{id}", tag = "quizzes",
    params(("id" = i64, Path, description = "Quiz id", minimum = 1)),
    responses(
        (status = 200, description = "The quiz", body = db::quizzes::QuizDetail),
        QuizErrors,
    ))]
async fn one(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let (body, outcome) = state
        .cache
        .get_or_build(Key::Quiz(id), || async {
            let mut conn = state.db.acquire().await?;
            match db::quizzes::get(&mut conn, id).await? {
                Some(quiz) => Ok(Some(Bytes::from(
                    serde_json::to_vec(&quiz).map_err(|e| ApiError::Internal(e.into()))?,
                ))),
                None => Ok(None),
            }
        })
        .await?;
    count(&state, outcome);
    let body = body.ok_or(ApiError::NotFound("quiz"))?;
    Ok(with_cache_header(
        super::json_bytes(StatusCode::OK, body),
        outcome,
    ))
}

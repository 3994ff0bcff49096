//! My progress: best score and attempt count per quiz (document 002's
//! `/student-progress`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::db;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/progress", get(mine))
}

/// My best score and attempt count per quiz.
#[utoipa::path(get, path = "/api/v1/progress", tag = "attempts",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "My progress", body = Vec<db::progress::Progress>),
        (status = 401, description = "Not logged in", body = crate::openapi::ErrorBody),
    ))]
async fn mine(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let rows = db::progress::for_user(&state.db, user.session.user_id).await?;
    Ok(super::json(StatusCode::OK, &rows))
}

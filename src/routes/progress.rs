//! My progress: best score and attempt count per quiz (document 002's
//! `/student-progress`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::RouteList;
use crate::db;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default().api(documented!(mine))
}

/// My best score and attempt count per quiz.
#[utoipa::path(get, path = "/api/v1/progress", tag = "attempts",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "My progress", body = Vec<db::progress::Progress>),
        super::NotLoggedIn,
    ))]
async fn mine(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let rows = db::progress::for_user(&state.db, user.session.user_id).await?;
    Ok(super::json(StatusCode::OK, &rows))
}

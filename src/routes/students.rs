//! select-options: `[{id, label}]` of the students in the caller's
//! organization and cohort (document 004's `/api/v1/workers/select-options`).
//! One Redis round trip for the session, one indexed query.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::RouteList;
use crate::db;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default().api(documented!(select_options))
}

/// Students of my organization and cohort, as `{id, label}` options.
#[utoipa::path(get, path = "/api/v1/students/select-options", tag = "students",
    security(("cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Options", body = Vec<db::users::SelectOption>),
        super::NotLoggedIn,
    ))]
async fn select_options(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let body = match (user.session.organization_id, user.session.cohort_id) {
        (Some(org), Some(cohort)) => db::users::select_options_json(&state.db, org, cohort).await?,
        _ => b"[]".to_vec(),
    };
    Ok(super::json_bytes(StatusCode::OK, body))
}

//! The current user, and password change (which revokes other sessions).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::RouteList;
use crate::db;
use crate::domain::validation;
use crate::error::ApiError;
use crate::extract::{AppJson, CurrentUser};
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default()
        .api(documented!(me))
        .api(documented!(change_password))
}

error_responses! {
    PasswordErrors: [401 "Not logged in", 403 "Current password is wrong", 422 "Invalid new password"];
}

/// The current user.
#[utoipa::path(get, path = "/api/v1/user", tag = "user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The current user", body = db::users::User),
        super::NotLoggedIn,
    ))]
async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let row = db::users::by_id(&state.db, user.session.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(super::json(StatusCode::OK, &db::users::User::from(row)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Change my password; every other session of mine ends.
#[utoipa::path(put, path = "/api/v1/user/password", tag = "user",
    security(("bearer" = []), ("cookie" = [])),
    request_body = PasswordBody,
    responses((status = 204, description = "Changed"), PasswordErrors))]
async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    AppJson(body): AppJson<PasswordBody>,
) -> Result<Response, ApiError> {
    validation::password(&body.new_password)
        .map_err(|m| ApiError::invalid("invalid_password", m))?;
    if body.current_password.len() > 1024 {
        return Err(ApiError::Forbidden("current password is wrong"));
    }
    let row = db::users::by_id(&state.db, user.session.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let passwords = state.passwords.clone();
    let (current, new) = (body.current_password, body.new_password);
    let hash = state
        .cpu
        .run(move || {
            passwords
                .verify(&current, &row.password_hash)
                .then(|| passwords.hash(&new))
        })
        .await?
        .ok_or(ApiError::Forbidden("current password is wrong"))?;
    db::users::set_password(&state.db, user.session.user_id, &hash).await?;
    state
        .sessions
        .revoke_others(user.session.user_id, Some(&user.token))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

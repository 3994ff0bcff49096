//! A student's code files on disk (document 000's file operations): save,
//! load, list, delete. Each student has a directory named by user id; names
//! are validated (no separators, no leading dot), so no path can leave it.
//! Saves are atomic (temporary file + rename), so a reader never sees half
//! a file and a failed write never corrupts the previous version.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::path::PathBuf;

use super::RouteList;
use crate::domain::validation;
use crate::error::ApiError;
use crate::extract::{AppBytes, CurrentUser, NamePath};
use crate::state::AppState;

/// Most files one student may keep.
const MAX_FILES: usize = 100;

pub fn routes(max_bytes: usize) -> RouteList {
    RouteList::default()
        .api(documented!(list))
        .api(documented!(load, save, remove).layer(crate::extract::body_limit(max_bytes)))
}

fn user_dir(state: &AppState, user_id: i64) -> PathBuf {
    state.cfg.files_dir.join(user_id.to_string())
}

fn file_path(state: &AppState, user: &CurrentUser, name: &str) -> Result<PathBuf, ApiError> {
    validation::file_name(name).map_err(|m| ApiError::bad_request("invalid_file_name", m))?;
    Ok(user_dir(state, user.session.user_id).join(name))
}

fn io_error(e: std::io::Error) -> ApiError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::NotFound("file"),
        std::io::ErrorKind::StorageFull => ApiError::unavailable("file storage"),
        _ => ApiError::Internal(e.into()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FileInfo {
    name: String,
    size: u64,
    modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// My code files.
#[utoipa::path(get, path = "/api/v1/files", tag = "files",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "My files", body = Vec<FileInfo>),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    ))]
async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let files = list_files(&state, user.session.user_id).await?;
    Ok(super::json(StatusCode::OK, &files))
}

async fn list_files(state: &AppState, user_id: i64) -> Result<Vec<FileInfo>, ApiError> {
    let mut dir = match tokio::fs::read_dir(user_dir(state, user_id)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    let mut files = Vec::new();
    while let Some(entry) = dir.next_entry().await.map_err(io_error)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temporary files of saves in progress
        }
        let meta = entry.metadata().await.map_err(io_error)?;
        if meta.is_file() {
            files.push(FileInfo {
                name,
                size: meta.len(),
                modified: meta.modified().ok().map(chrono::DateTime::from),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Load one of my code files.
#[utoipa::path(get, path = "/api/v1/files/{name}", tag = "files",
    security(("bearer" = []), ("cookie" = [])),
    params(("name" = String, Path, description = "File name: letters, digits, '.', '_', '-'; not starting with '.'")),
    responses(
        (status = 200, description = "The file's bytes", content_type = "text/plain"),
        (status = 400, description = "Invalid name", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 404, description = "No such file", body = crate::error::ErrorBody),
    ))]
async fn load(
    State(state): State<AppState>,
    user: CurrentUser,
    NamePath(name): NamePath,
) -> Result<Response, ApiError> {
    let path = file_path(&state, &user, &name)?;
    let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
    let content_type = if std::str::from_utf8(&bytes).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response())
}

/// Save one of my code files (atomically replaces an existing one).
#[utoipa::path(put, path = "/api/v1/files/{name}", tag = "files",
    security(("bearer" = []), ("cookie" = [])),
    params(("name" = String, Path, description = "File name")),
    request_body(content = String, content_type = "text/plain"),
    responses(
        (status = 200, description = "Replaced", body = SavedFile),
        (status = 201, description = "Created", body = SavedFile),
        (status = 400, description = "Invalid name", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 413, description = "Too large", body = crate::error::ErrorBody),
        (status = 422, description = "Too many files", body = crate::error::ErrorBody),
    ))]
async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    NamePath(name): NamePath,
    AppBytes(body): AppBytes,
) -> Result<Response, ApiError> {
    let path = file_path(&state, &user, &name)?;
    let dir = user_dir(&state, user.session.user_id);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
    if !existed && list_files(&state, user.session.user_id).await?.len() >= MAX_FILES {
        return Err(ApiError::invalid(
            "too_many_files",
            format!("at most {MAX_FILES} files per student"),
        ));
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::sessions::new_token()));
    let size = body.len() as u64;
    let written = async {
        tokio::fs::write(&tmp, &body).await?;
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_error(e));
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(super::json(status, &SavedFile { name, size }))
}

/// The answer to a save.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SavedFile {
    name: String,
    size: u64,
}

/// Delete one of my code files.
#[utoipa::path(delete, path = "/api/v1/files/{name}", tag = "files",
    security(("bearer" = []), ("cookie" = [])),
    params(("name" = String, Path, description = "File name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 404, description = "No such file", body = crate::error::ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    NamePath(name): NamePath,
) -> Result<Response, ApiError> {
    let path = file_path(&state, &user, &name)?;
    tokio::fs::remove_file(&path).await.map_err(io_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

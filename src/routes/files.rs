//! A student's code files on disk (document 000's file operations): save,
//! load, list, delete. Each student has a directory named by user id; names
//! are validated (no separators, no leading dot), so no path can leave it.
//! Saves are atomic (temporary file + rename), so a reader never sees half
//! a file and a failed write never corrupts the previous version.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
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
    let one_file = RouteList::default()
        .api(documented!(load, save, remove))
        .layer(crate::extract::body_limit(max_bytes));
    RouteList::default().api(documented!(list)).merge(one_file)
}

error_responses! {
    FileErrors: [400 "Invalid name", 401 "Not logged in", 404 "No such file"];
    SaveErrors: [400 "Invalid name", 401 "Not logged in", 413 "Too large", 422 "Too many files"];
}

fn user_dir(state: &AppState, user_id: i64) -> PathBuf {
    state.cfg.files_dir.join(user_id.to_string())
}

/// The caller's file named by the `{name}` segment: the caller logged in
/// (401 first), then the name checked (400), so no path leaves the
/// caller's directory.
struct MyFile {
    user_id: i64,
    name: String,
    path: PathBuf,
}

impl FromRequestParts<AppState> for MyFile {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let NamePath(name) = NamePath::from_request_parts(parts, state).await?;
        validation::file_name(&name).map_err(|m| ApiError::bad_request("invalid_file_name", m))?;
        let user_id = user.session.user_id;
        let path = user_dir(state, user_id).join(&name);
        Ok(MyFile {
            user_id,
            name,
            path,
        })
    }
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
    responses((status = 200, description = "My files", body = Vec<FileInfo>), super::NotLoggedIn))]
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
        FileErrors,
    ))]
async fn load(file: MyFile) -> Result<Response, ApiError> {
    let bytes = tokio::fs::read(&file.path).await.map_err(io_error)?;
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
        SaveErrors,
    ))]
async fn save(
    State(state): State<AppState>,
    file: MyFile,
    AppBytes(body): AppBytes,
) -> Result<Response, ApiError> {
    let MyFile {
        user_id,
        name,
        path,
    } = file;
    let dir = user_dir(&state, user_id);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
    if !existed && list_files(&state, user_id).await?.len() >= MAX_FILES {
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
    responses((status = 204, description = "Deleted"), FileErrors))]
async fn remove(file: MyFile) -> Result<Response, ApiError> {
    tokio::fs::remove_file(&file.path).await.map_err(io_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! Grading a free-text answer with the process's classifier (document 001's
//! CPU-heavy "ML" endpoint). Runs on the CPU pool, or inline.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::RouteList;
use crate::db;
use crate::domain::grading::normalize;
use crate::error::ApiError;
use crate::extract::{AppJson, CurrentUser};
use crate::state::AppState;

const MAX_TEXT_CHARS: usize = 2000;

pub fn routes() -> RouteList {
    RouteList::default().api(documented!(grade))
}

error_responses! {
    GradeErrors: [401 "Not logged in", 404 "No such question", 422 "Invalid text", 503 "CPU pool full"];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct GradeBody {
    text: String,
    question_id: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Graded {
    label: &'static str,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    question_id: Option<i64>,
    /// With a short-text question: whether the text is an accepted answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    matches_key: Option<bool>,
}

/// Classify a free-text answer (CPU-heavy; see GRADE_COST).
#[utoipa::path(post, path = "/api/v1/grade", tag = "grading",
    security(("bearer" = []), ("cookie" = [])),
    request_body = GradeBody,
    responses((status = 200, description = "Label and confidence", body = Graded), GradeErrors))]
async fn grade(
    State(state): State<AppState>,
    _user: CurrentUser,
    AppJson(body): AppJson<GradeBody>,
) -> Result<Response, ApiError> {
    let chars = body.text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            "invalid_text",
            format!("text must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    let matches_key = match body.question_id {
        Some(id) if id <= 0 => return Err(ApiError::NotFound("question")),
        Some(id) => {
            let accepted = db::quizzes::accepted_answers(&state.db, id)
                .await?
                .ok_or(ApiError::NotFound("question"))?;
            (!accepted.is_empty()).then(|| accepted.contains(&normalize(&body.text)))
        }
        None => None,
    };
    let worker = state.clone();
    let text = body.text;
    let prediction = state
        .cpu
        .run(move || worker.classifier().predict(&text))
        .await?;
    Ok(super::json(
        StatusCode::OK,
        &Graded {
            label: prediction.label,
            score: prediction.score,
            question_id: body.question_id,
            matches_key,
        },
    ))
}

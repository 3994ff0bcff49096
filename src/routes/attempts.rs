//! Submitting an attempt (graded here, inserted with its progress update in
//! one transaction, acknowledged only after commit) and listing mine.
//!
//! `Idempotency-Key` (IETF draft): the key and a hash of the request are
//! stored with the attempt in the same transaction. The same key with the
//! same request replays the first response (`Idempotent-Replayed: true`);
//! with a different request it is a 422. Concurrent duplicates race on a
//! unique index, so exactly one inserts and the others replay it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RouteList;
use crate::db;
use crate::db::attempts::{Attempt, NewAttempt};
use crate::domain::grading::{self, Answer};
use crate::error::ApiError;
use crate::extract::{AppJson, CurrentUser, IdPath};
use crate::state::AppState;

/// Most answers one attempt may carry, and longest text answer.
const MAX_ANSWERS: usize = 200;
const MAX_TEXT_CHARS: usize = 1000;
const MAX_CHOICES: usize = 32;

pub fn routes() -> RouteList {
    RouteList::default().api(documented!(mine, submit))
}

error_responses! {
    SubmitErrors: [
        400 "Malformed request", 401 "Not logged in", 404 "No such quiz", 413 "Body too large",
        415 "Not JSON", 422 "Invalid answers, or a reused Idempotency-Key",
    ];
    MineErrors: [401 "Not logged in", 404 "No such quiz"];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SubmitBody {
    answers: Vec<Answer>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Submitted {
    pub id: i64,
    pub quiz_id: i64,
    pub score: i32,
    pub max_score: i32,
    pub submitted_at: chrono::DateTime<chrono::Utc>,
}

/// A stored attempt, and whether it was stored by an earlier request with
/// the same idempotency key (then replayed, not stored again).
pub(crate) struct Recorded {
    pub attempt: Submitted,
    pub replayed: bool,
}

impl From<Attempt> for Submitted {
    fn from(a: Attempt) -> Self {
        Submitted {
            id: a.id,
            quiz_id: a.quiz_id,
            score: a.score,
            max_score: a.max_score,
            submitted_at: a.submitted_at,
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim_matches('"');
    if !valid_idempotency_key(s) {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// An idempotency key is 1 to 255 visible ASCII characters (the header's
/// and an HTML form's hidden field alike).
pub(crate) fn valid_idempotency_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic())
}

fn validate(answers: &[Answer]) -> Result<(), ApiError> {
    if answers.is_empty() {
        return Err(ApiError::invalid(
            "empty_answers",
            "answers must not be empty",
        ));
    }
    if answers.len() > MAX_ANSWERS {
        return Err(ApiError::invalid("too_many_answers", "too many answers"));
    }
    for a in answers {
        if a.text
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
        {
            return Err(ApiError::invalid(
                "answer_too_long",
                "a text answer is too long",
            ));
        }
        // PostgreSQL's JSONB cannot store U+0000: refuse it here (a 422)
        // instead of failing the insert (a 500).
        if a.text.as_ref().is_some_and(|t| t.contains('\0')) {
            return Err(ApiError::invalid(
                "invalid_answers",
                "a text answer must not contain NUL characters",
            ));
        }
        if a.choice_ids.as_ref().is_some_and(|c| c.len() > MAX_CHOICES) {
            return Err(ApiError::invalid("too_many_choices", "too many choice ids"));
        }
    }
    Ok(())
}

fn request_hash(quiz_id: i64, answers: &[Answer]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(quiz_id.to_be_bytes());
    h.update(serde_json::to_vec(answers).expect("answers serialize"));
    h.finalize().to_vec()
}

fn created(recorded: Recorded) -> Response {
    let mut res = super::json(StatusCode::CREATED, &recorded.attempt);
    if recorded.replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// Replays a stored attempt for the same key, or refuses a different request.
fn replay(stored: db::attempts::Keyed, hash: &[u8]) -> Result<Recorded, ApiError> {
    if stored.request_hash.as_deref() != Some(hash) {
        return Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        ));
    }
    Ok(Recorded {
        attempt: Submitted {
            id: stored.id,
            quiz_id: stored.quiz_id,
            score: stored.score,
            max_score: stored.max_score,
            submitted_at: stored.submitted_at,
        },
        replayed: true,
    })
}

/// Submit an attempt: graded here, stored with the progress update in one
/// transaction, acknowledged after commit.
#[utoipa::path(post, path = "/api/v1/quizzes/{id}/attempts", tag = "attempts",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = i64, Path, description = "Quiz id", minimum = 1),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a repeated request"),
    ),
    request_body = SubmitBody,
    responses(
        (status = 201, description = "Stored (or replayed, with Idempotent-Replayed: true)", body = Submitted),
        SubmitErrors,
    ))]
async fn submit(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(quiz_id): IdPath,
    headers: HeaderMap,
    AppJson(body): AppJson<SubmitBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let recorded = record(
        &state,
        user.session.user_id,
        quiz_id,
        key.as_deref(),
        &body.answers,
    )
    .await?;
    Ok(created(recorded))
}

/// Validates, grades and stores an attempt, or replays the one an earlier
/// request with the same idempotency key stored: the one way attempts are
/// made, by the API and by the quiz page's form.
pub(crate) async fn record(
    state: &AppState,
    user_id: i64,
    quiz_id: i64,
    key: Option<&str>,
    answers: &[Answer],
) -> Result<Recorded, ApiError> {
    validate(answers)?;
    let hash = request_hash(quiz_id, answers);
    if let Some(key) = key {
        if let Some(stored) = db::attempts::by_idempotency_key(&state.db, user_id, key).await? {
            return replay(stored, &hash);
        }
    }
    let keys = db::quizzes::keys(&state.db, quiz_id).await?;
    if keys.is_empty() {
        return Err(if db::quizzes::exists(&state.db, quiz_id).await? {
            ApiError::invalid("quiz_has_no_questions", "this quiz has no questions")
        } else {
            ApiError::NotFound("quiz")
        });
    }
    let score = grading::grade(&keys, answers)
        .map_err(|e| ApiError::invalid("invalid_answers", e.to_string()))?;

    let new = NewAttempt {
        user_id,
        quiz_id,
        answers,
        score: score.score,
        max_score: score.max_score,
        idempotency_key: key,
        request_hash: key.map(|_| hash.as_slice()),
    };
    let mut conn = state.db.acquire().await?;
    let inserted = conn
        .transaction(async |tx| {
            // None: a concurrent request with the same key inserted first;
            // this transaction then writes nothing.
            let Some(attempt) = db::attempts::insert(&mut *tx, new).await? else {
                return Ok(None);
            };
            db::progress::record(&mut *tx, user_id, quiz_id, score.score, score.max_score).await?;
            Ok(Some(attempt))
        })
        .await;
    drop(conn);
    let Some(attempt) = inserted? else {
        // A concurrent request with the same key committed first.
        let key = key.expect("conflicts need a key");
        let stored = db::attempts::by_idempotency_key(&state.db, user_id, key)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("idempotent row vanished")))?;
        return replay(stored, &hash);
    };
    Ok(Recorded {
        attempt: attempt.into(),
        replayed: false,
    })
}

/// My attempts at a quiz, newest first.
#[utoipa::path(get, path = "/api/v1/quizzes/{id}/attempts", tag = "attempts",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = i64, Path, description = "Quiz id", minimum = 1)),
    responses((status = 200, description = "My attempts", body = Vec<Attempt>), MineErrors))]
async fn mine(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(quiz_id): IdPath,
) -> Result<Response, ApiError> {
    let attempts =
        db::attempts::for_user_quiz(&state.db, user.session.user_id, quiz_id, 100).await?;
    if attempts.is_empty() && !db::quizzes::exists(&state.db, quiz_id).await? {
        return Err(ApiError::NotFound("quiz"));
    }
    Ok(super::json(StatusCode::OK, &attempts))
}

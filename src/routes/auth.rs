//! Registration, login (argon2id + Redis session, cookie and bearer token)
//! and logout, with failed-login throttling per username and per address.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;

use super::RouteList;
use crate::db;
use crate::domain::validation;
use crate::error::ApiError;
use crate::extract::{token_of, AppJson, CurrentUser, COOKIE};
use crate::server::ClientConn;
use crate::sessions::Session;
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default()
        .api(documented!(register))
        .api(documented!(login))
        .api(documented!(logout))
}

error_responses! {
    RegisterErrors: [409 "Username taken", 422 "Invalid input"];
    LoginErrors: [401 "Invalid credentials", 422 "Invalid input", 429 "Too many failed logins"];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RegisterBody {
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
    pub cohort_id: Option<i64>,
}

/// Create a student account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses((status = 201, description = "Created", body = db::users::User), RegisterErrors))]
async fn register(
    State(state): State<AppState>,
    AppJson(body): AppJson<RegisterBody>,
) -> Result<Response, ApiError> {
    let user = create_student(&state, body).await?;
    Ok(super::json(StatusCode::CREATED, &user))
}

/// Creates a student account (the API's and the register page's one way):
/// validated, the password hashed on the CPU pool; a taken username is a 409.
pub(crate) async fn create_student(
    state: &AppState,
    body: RegisterBody,
) -> Result<db::users::User, ApiError> {
    validation::username(&body.username).map_err(|m| ApiError::invalid("invalid_username", m))?;
    validation::password(&body.password).map_err(|m| ApiError::invalid("invalid_password", m))?;
    let display_name = body.display_name.unwrap_or_else(|| body.username.clone());
    validation::display_name(&display_name)
        .map_err(|m| ApiError::invalid("invalid_display_name", m))?;
    let unknown_cohort = || ApiError::invalid("unknown_cohort", "cohort_id does not exist");
    if body.cohort_id.is_some_and(|cohort| cohort <= 0) {
        return Err(unknown_cohort());
    }
    if db::users::by_username(&state.db, &body.username)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict("username is taken"));
    }
    let passwords = state.passwords.clone();
    let password = body.password;
    let hash = state.cpu.run(move || passwords.hash(&password)).await?;
    match db::users::insert_student(
        &state.db,
        &body.username,
        &hash,
        &display_name,
        body.cohort_id,
    )
    .await
    {
        Ok(inserted) => inserted.ok_or_else(unknown_cohort),
        Err(e) if db::is_unique_violation(&e, "users_username_key") => {
            Err(ApiError::Conflict("username is taken"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginBody {
    pub username: String,
    pub password: String,
}

/// The body of a successful login.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedIn {
    /// Session token: send it as `Authorization: Bearer TOKEN` (the
    /// `qb_session` cookie carries the same token).
    token: String,
    user: db::users::User,
}

/// Log in: sets the `qb_session` cookie and returns the same token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses((status = 200, description = "Logged in", body = LoggedIn), LoginErrors))]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<LoginBody>,
) -> Result<Response, ApiError> {
    let (token, user) = sign_in(&state, &headers, body).await?;
    let cookie = session_cookie(&state, &token, state.cfg.session_absolute.as_secs());
    let mut res = super::json(StatusCode::OK, &LoggedIn { token, user });
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

/// Checks a username and password (failures throttled per username and
/// address) and opens a session: the API's and the sign-in page's one way
/// in. Returns the session token and the user.
pub(crate) async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    body: LoginBody,
) -> Result<(String, db::users::User), ApiError> {
    validation::username(&body.username).map_err(|m| ApiError::invalid("invalid_username", m))?;
    if body.password.is_empty() || body.password.len() > 1024 {
        return Err(ApiError::invalid(
            "invalid_password",
            "password must be 1 to 1024 bytes",
        ));
    }
    let addr = ClientConn::current().map(|conn| conn.peer().ip().to_string());
    let throttle = Throttle::new(state, &body.username, addr.as_deref());
    throttle.check().await?;

    let user = db::users::by_username(&state.db, &body.username).await?;
    let passwords = state.passwords.clone();
    let password = body.password;
    let (user, ok) = match user {
        Some(user) => {
            let hash = user.password_hash.clone();
            let ok = state
                .cpu
                .run(move || passwords.verify(&password, &hash))
                .await?;
            (Some(user), ok)
        }
        None => {
            // Same cost as a wrong password, so timing tells nothing.
            state.slot.dummy_hash();
            state
                .cpu
                .run(move || passwords.verify_dummy(&password))
                .await?;
            (None, false)
        }
    };
    let user = match (user, ok) {
        (Some(user), true) => user,
        _ => {
            throttle.record_failure().await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    throttle.clear_username().await;
    let user = db::users::User::from(user);
    let token = open_session(state, headers, &user).await?;
    Ok((token, user))
}

/// Opens a session for `user` and returns its token. Rotation: the session
/// the client came with (if any) ends here, so a planted cookie can never
/// become an authenticated one.
pub(crate) async fn open_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &db::users::User,
) -> Result<String, ApiError> {
    // Only a cookie is rotated: it is what a browser (or an attacker who
    // planted it) carries; a bearer token belongs to another client's
    // session that this login must not end.
    let parts_token = token_of(headers)
        .filter(|(_, via_cookie)| *via_cookie)
        .map(|(t, _)| t);
    let session = Session {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role.clone(),
        organization_id: user.organization_id,
        cohort_id: user.cohort_id,
        created: chrono::Utc::now().timestamp(),
    };
    let token = state.sessions.create(&session).await?;
    if let Some(old) = parts_token {
        let _ = state.sessions.revoke(&old, user.id).await;
    }
    Ok(token)
}

/// End the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Logged out"), super::NotLoggedIn))]
async fn logout(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    state
        .sessions
        .revoke(&user.token, user.session.user_id)
        .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(res)
}

/// `Set-Cookie` for the session: HttpOnly, SameSite=Lax, Path=/, Secure when configured.
pub fn session_cookie(state: &AppState, token: &str, max_age: u64) -> HeaderValue {
    let secure = if state.cfg.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("token is header-safe")
}

/// Failed-login counters in Redis, per username and per client address (the
/// address gets five times the username's allowance, for shared NATs).
struct Throttle<'a> {
    state: &'a AppState,
    keys: Vec<(String, u32)>,
}

impl<'a> Throttle<'a> {
    fn new(state: &'a AppState, username: &str, addr: Option<&str>) -> Self {
        let max = state.cfg.login_max_failures;
        let prefix = state.sessions.prefix();
        let mut keys = vec![(format!("{prefix}login-fail:user:{username}"), max)];
        if let Some(addr) = addr {
            keys.push((
                format!("{prefix}login-fail:addr:{addr}"),
                max.saturating_mul(5),
            ));
        }
        Throttle { state, keys }
    }

    fn enabled(&self) -> bool {
        self.state.cfg.login_max_failures > 0
    }

    async fn check(&self) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let mut conn = self.state.redis.get().await?;
        let mut pipe = redis::pipe();
        for (key, _) in &self.keys {
            pipe.get(key).ttl(key);
        }
        let replies: Vec<(Option<u32>, i64)> = self.timed(pipe.query_async(&mut *conn)).await?;
        for ((count, ttl), (_, max)) in replies.into_iter().zip(&self.keys) {
            if count.unwrap_or(0) >= *max {
                return Err(ApiError::TooManyRequests {
                    retry_after: Duration::from_secs(ttl.max(1) as u64),
                });
            }
        }
        Ok(())
    }

    async fn record_failure(&self) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let window = self.state.cfg.login_window.as_secs() as i64;
        let mut conn = self.state.redis.get().await?;
        let mut pipe = redis::pipe();
        for (key, _) in &self.keys {
            pipe.incr(key, 1).ignore();
            pipe.cmd("EXPIRE").arg(key).arg(window).arg("NX").ignore();
        }
        self.timed(pipe.query_async::<()>(&mut *conn)).await
    }

    async fn clear_username(&self) {
        if !self.enabled() {
            return;
        }
        if let Ok(mut conn) = self.state.redis.get().await {
            let _ = self
                .timed(
                    redis::cmd("DEL")
                        .arg(&self.keys[0].0)
                        .query_async::<()>(&mut *conn),
                )
                .await;
        }
    }

    async fn timed<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.state.sessions.timeout(), op).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ApiError::unavailable("session store")),
        }
    }
}

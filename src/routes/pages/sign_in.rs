//! Signing in (`/`), registering (`/register`) and signing out
//! (`/logout`) with plain HTML forms, through the API's own sign-in,
//! account and session code (`routes::auth`).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::{html, Markup};

use super::errors::{sentence, HtmlError};
use super::layout::{document, form_error, html_response, see_other, Account};
use super::request::{local_path, PageForm, SignedIn, Visitor, DEFAULT_NEXT};
use crate::error::ApiError;
use crate::extract::check_form_token;
use crate::routes::auth::{self, session_cookie, LoginBody, RegisterBody};
use crate::state::AppState;

/// What a sign-in or register form shows again after a refusal.
#[derive(Default)]
struct Filled<'a> {
    username: &'a str,
    display_name: &'a str,
    next: &'a str,
    error: Option<String>,
}

/// The sign-in page; signed in, on to the dashboard.
pub async fn form(visitor: Visitor, uri: Uri) -> Response {
    if visitor.0.is_some() {
        return see_other(DEFAULT_NEXT);
    }
    let next = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    let filled = Filled {
        next: local_path(next.as_deref()),
        ..Filled::default()
    };
    html_response(StatusCode::OK, sign_in_page(&filled))
}

/// A page for visitors not signed in: a narrow card headed `heading`, with
/// the form's error (if any) above `content`.
fn signed_out_card(title: &str, path: &str, heading: &str, f: &Filled, content: Markup) -> Markup {
    let card = html! {
        div.card.narrow {
            h1 { (heading) }
            (form_error(f.error.as_deref()))
            (content)
        }
    };
    document(title, Account::SignedOut, path, card)
}

fn sign_in_page(f: &Filled) -> Markup {
    signed_out_card(
        "Sign in",
        "/",
        "Sign in",
        f,
        html! {
            form #login method="post" action="/" {
                input type="hidden" name="next" value=(f.next);
                label for="username" { "Username" }
                input #username name="username" type="text" value=(f.username)
                    autocomplete="username" required;
                label for="password" { "Password" }
                input #password name="password" type="password"
                    autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p { "No account yet? " a href="/register" { "Register" } }
            p.muted {
                "Seeded accounts: student1, student2, … and teacher1, teacher2, …, password "
                code { "quizbench" } "."
            }
        },
    )
}

/// Signs in from the form: on to `next` with the session cookie, or the
/// form again with what went wrong.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm,
) -> Result<Response, HtmlError> {
    let username = form.get("username").unwrap_or_default();
    let next = local_path(form.get("next"));
    let body = LoginBody {
        username: username.to_string(),
        password: form.get("password").unwrap_or_default().to_string(),
    };
    match auth::sign_in(&state, &headers, body).await {
        Ok((token, _)) => Ok(signed_in(&state, &token, next)),
        Err(e @ (ApiError::InvalidCredentials | ApiError::Unprocessable { .. })) => {
            let filled = Filled {
                username,
                next,
                error: Some(match e {
                    ApiError::InvalidCredentials => {
                        "Wrong username or password. Try again.".to_string()
                    }
                    other => sentence(&other),
                }),
                ..Filled::default()
            };
            Ok(html_response(
                StatusCode::UNAUTHORIZED,
                sign_in_page(&filled),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// A 303 to `next` that sets the session cookie.
fn signed_in(state: &AppState, token: &str, next: &str) -> Response {
    let mut res = see_other(next);
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, token, state.cfg.session_absolute.as_secs()),
    );
    res
}

/// The register page; signed in, on to the dashboard.
pub async fn register_form(visitor: Visitor) -> Response {
    if visitor.0.is_some() {
        return see_other(DEFAULT_NEXT);
    }
    html_response(StatusCode::OK, register_page(&Filled::default()))
}

fn register_page(f: &Filled) -> Markup {
    signed_out_card(
        "Register",
        "/register",
        "Create a student account",
        f,
        html! {
            form #register method="post" action="/register" {
                label for="username" { "Username" }
                input #username name="username" type="text" value=(f.username)
                    autocomplete="username" required minlength="3" maxlength="32"
                    aria-describedby="username-hint";
                p.hint #username-hint {
                    "3 to 32 letters, digits, dots, dashes or underscores."
                }
                label for="display_name" { "Name shown to your teacher (optional)" }
                input #display_name name="display_name" type="text" value=(f.display_name)
                    autocomplete="name" maxlength="64";
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="new-password"
                    required minlength="8" maxlength="128" aria-describedby="password-hint";
                p.hint #password-hint { "At least 8 characters." }
                button type="submit" { "Create account" }
            }
            p { "Already registered? " a href="/" { "Sign in" } }
        },
    )
}

/// Creates the account and signs it in, or shows the form again with what
/// went wrong.
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm,
) -> Result<Response, HtmlError> {
    let username = form.get("username").unwrap_or_default();
    let display_name = form.get("display_name").unwrap_or_default().trim();
    let body = RegisterBody {
        username: username.to_string(),
        password: form.get("password").unwrap_or_default().to_string(),
        display_name: (!display_name.is_empty()).then(|| display_name.to_string()),
        cohort_id: None,
    };
    let refused = |status: StatusCode, error: String| {
        let filled = Filled {
            username,
            display_name,
            error: Some(error),
            ..Filled::default()
        };
        Ok(html_response(status, register_page(&filled)))
    };
    let user = match auth::create_student(&state, body).await {
        Ok(user) => user,
        Err(ApiError::Conflict(_)) => {
            return refused(
                StatusCode::CONFLICT,
                format!("The username {username} is taken: choose another."),
            )
        }
        Err(e @ ApiError::Unprocessable { .. }) => {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, sentence(&e))
        }
        Err(e) => return Err(e.into()),
    };
    let token = auth::open_session(&state, &headers, &user).await?;
    Ok(signed_in(&state, &token, DEFAULT_NEXT))
}

/// Ends the session (with the session's form token) and goes to the
/// sign-in page.
pub async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    PageForm(form): PageForm,
) -> Result<Response, HtmlError> {
    let mut res = see_other("/");
    if let Visitor(Some(SignedIn { session, token })) = visitor {
        check_form_token(&token, &form)?;
        state.sessions.revoke(&token, session.user_id).await?;
        res.headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    }
    Ok(res)
}

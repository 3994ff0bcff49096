//! What a page handler takes from a request: the visitor (the session of
//! the `qb_session` cookie, if live), a signed-in visitor (others are sent
//! to sign in), and a form post and a path id whose refusals are HTML pages.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;

use super::errors::HtmlError;
use super::layout::see_other;
use crate::extract::{form_token, token_of, FormPost, IdPath};
use crate::sessions::Session;
use crate::state::AppState;

/// A live session, from the cookie.
pub struct SignedIn {
    pub session: Session,
    pub token: String,
}

impl SignedIn {
    /// The hidden `csrf` field of this visitor's forms.
    pub fn form_token(&self) -> String {
        form_token(&self.token)
    }

    /// Teachers (and admins) see a cohort.
    pub fn is_teacher(&self) -> bool {
        matches!(self.session.role.as_str(), "teacher" | "admin")
    }
}

/// Whoever asks for a page: signed in or not.
pub struct Visitor(pub Option<SignedIn>);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        // Pages are for browsers: a bearer token is an API client's.
        let Some((token, true)) = token_of(&parts.headers) else {
            return Ok(Visitor(None));
        };
        let session = state.sessions.lookup(&token).await?;
        Ok(Visitor(session.map(|session| SignedIn { session, token })))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    /// Without a live session: a 303 to the sign-in page, which comes back
    /// here once signed in (the dashboard, where it goes anyway, is not
    /// named).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Visitor(visitor) = Visitor::from_request_parts(parts, state)
            .await
            .map_err(axum::response::IntoResponse::into_response)?;
        visitor.ok_or_else(|| {
            let path = parts.uri.path();
            if path == DEFAULT_NEXT {
                see_other("/")
            } else {
                let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
                see_other(&format!("/?next={next}"))
            }
        })
    }
}

/// Where signing in leads when no page asked for it.
pub const DEFAULT_NEXT: &str = "/dashboard";

/// `next` when it is a path of this site, else [`DEFAULT_NEXT`] (never
/// another site: `//host` and `/\host` are refused).
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p
        }
        _ => DEFAULT_NEXT,
    }
}

/// A form post ([`FormPost`]) whose refusal is an HTML page.
pub struct PageForm(pub FormPost);

impl FromRequest<AppState> for PageForm {
    type Rejection = HtmlError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(PageForm(FormPost::from_request(req, state).await?))
    }
}

/// A path id ([`IdPath`]) whose refusal is an HTML page.
pub struct PageId(pub i64);

impl FromRequestParts<AppState> for PageId {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        Ok(PageId(IdPath::from_request_parts(parts, state).await?.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/quizzes/3")), "/quizzes/3");
        for bad in ["//evil.example", "/\\evil", "https://evil", "quizzes", ""] {
            assert_eq!(local_path(Some(bad)), DEFAULT_NEXT, "{bad}");
        }
        assert_eq!(local_path(None), DEFAULT_NEXT);
    }
}

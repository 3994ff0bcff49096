//! Server-rendered HTML pages (`/` login, `/quizzes`, `/dashboard`) and the
//! `/static/` assets they use (embedded in the binary, with ETags), which
//! document 003 measures alongside the API.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use std::fmt::Write as _;

use super::RouteList;
use crate::db;
use crate::error::ApiError;
use crate::extract::{token_of, NamePath};
use crate::state::AppState;

pub fn routes() -> RouteList {
    RouteList::default()
        .route("/", get(login_page))
        .route("/quizzes", get(quizzes_page))
        .route("/dashboard", get(dashboard))
        .route("/static/{*path}", get(asset))
}

/// Embedded assets: path, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../static/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
];

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · quizbench</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\">\n</head>\n\
         <body>\n<header><a class=\"brand\" href=\"/\">quizbench</a>\
         <nav><a href=\"/quizzes\">Quizzes</a><a href=\"/dashboard\">Dashboard</a></nav></header>\n\
         <main>\n{body}\n</main>\n<footer>quizbench · a load-test target</footer>\n</body>\n</html>\n",
        escape(title)
    )
}

async fn login_page() -> Html<String> {
    Html(page(
        "Sign in",
        "<div class=\"card login\">\n<h1>Sign in</h1>\n<form id=\"login\">\n\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required>\n\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n<div id=\"error\" class=\"error\" role=\"alert\"></div>\n\
         </form>\n<p class=\"muted\">Seeded accounts: student1 … student10000, password <code>quizbench</code>.</p>\n\
         </div>\n<script src=\"/static/app.js\" defer></script>",
    ))
}

async fn quizzes_page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let quizzes = db::quizzes::list(&state.db).await?;
    let mut body = String::from("<h1>Quizzes</h1>\n<div class=\"card\"><ul class=\"quiz-list\">\n");
    for q in &quizzes {
        let _ = writeln!(
            body,
            "<li><div class=\"title\">{}</div><div class=\"meta\">{} · {} questions</div></li>",
            escape(&q.title),
            escape(&q.description),
            q.question_count
        );
    }
    body.push_str("</ul></div>");
    Ok(Html(page("Quizzes", &body)))
}

async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = match token_of(&headers) {
        Some((token, true)) => state.sessions.lookup(&token).await?,
        _ => None,
    };
    let Some(session) = session else {
        return Ok(Redirect::to("/").into_response());
    };
    let progress = db::progress::for_user(&state.db, session.user_id).await?;
    let mut body = format!(
        "<h1>Dashboard</h1>\n<p class=\"muted\">Signed in as {}.</p>\n<h2>Progress</h2>\n",
        escape(&session.username)
    );
    if progress.is_empty() {
        body.push_str("<div class=\"card\">No attempts yet.</div>");
    } else {
        body.push_str(
            "<table>\n<tr><th>Quiz</th><th>Best score</th><th>Attempts</th><th>Last attempt</th></tr>\n",
        );
        for p in &progress {
            let class = if p.best_score * 2 >= p.max_score {
                "score-good"
            } else {
                "score-poor"
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td class=\"{class}\">{} / {}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.quiz_title),
                p.best_score,
                p.max_score,
                p.attempt_count,
                p.last_attempt_at.format("%Y-%m-%d %H:%M")
            );
        }
        body.push_str("</table>");
    }
    let mut res = Html(page("Dashboard", &body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn asset(NamePath(path): NamePath, headers: HeaderMap) -> Response {
    let Some((_, content_type, text)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return ApiError::NotFound("asset").into_response();
    };
    let etag = format!("\"{:016x}\"", fnv1a(text.as_bytes()));
    let cache = [
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex etag"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        *text,
    )
        .into_response()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

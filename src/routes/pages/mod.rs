//! The quiz app a person uses in a browser: server-rendered HTML pages and
//! the `/static/` assets they use.
//!
//! | route | page |
//! |---|---|
//! | `GET /`, `POST /` | sign in (signed in: on to the dashboard) |
//! | `GET /register`, `POST /register` | create a student account, signed in at once |
//! | `POST /logout` | sign out |
//! | `GET /quizzes` | the quiz list, linking each quiz |
//! | `GET /quizzes/{id}`, `POST /quizzes/{id}` | a quiz's questions as a form; submitting it makes an attempt |
//! | `GET /attempts` | my latest attempts |
//! | `GET /attempts/{id}` | an attempt's result: score and each question's outcome |
//! | `GET /dashboard` | my progress per quiz (a teacher: a link to the cohort) |
//! | `GET /cohort` | a teacher's cohort: students × quizzes, best score and attempts |
//! | `GET /static/{*path}` | the stylesheet and the script |
//!
//! Pages are for browsers: the session comes from the cookie only, every
//! form works without JavaScript (`static/app.js` only stops a second
//! submit), errors are HTML pages ([`errors`]) and a page that needs a
//! session sends others to sign in. Forms are refused from other sites and,
//! signed in, without the session's form token (`crate::extract`). Pages
//! hold no SQL (`crate::db`) and make attempts, sessions and accounts
//! through the API's own code (`super::attempts`, `super::auth`).

mod assets;
mod attempts;
mod cohort;
mod dashboard;
mod errors;
mod layout;
mod quizzes;
mod request;
mod sign_in;

use axum::routing::{get, post, MethodRouter};
use tower_http::catch_panic::CatchPanicLayer;

use super::RouteList;
use crate::state::AppState;

pub use errors::{error_page, wants_html};
pub use layout::escape;

pub fn routes() -> RouteList {
    RouteList::default()
        .route("/", page(get(sign_in::form).post(sign_in::submit)))
        .route("/quizzes", page(get(quizzes::list)))
        .route("/dashboard", page(get(dashboard::progress)))
        .route("/static/{*path}", get(assets::asset))
        .route(
            "/register",
            page(get(sign_in::register_form).post(sign_in::register)),
        )
        .route("/logout", page(post(sign_in::sign_out)))
        .route(
            "/quizzes/{id}",
            page(get(quizzes::form).post(quizzes::submit)),
        )
        .route("/attempts", page(get(attempts::list)))
        .route("/attempts/{id}", page(get(attempts::result)))
        .route("/cohort", page(get(cohort::dashboard)))
        // A panic in a page handler is answered with the site's 500 page.
        .layer(CatchPanicLayer::custom(errors::panic_page))
}

/// A page's handlers, with an HTML 405 for the other methods.
fn page(handlers: MethodRouter<AppState>) -> MethodRouter<AppState> {
    handlers.fallback(errors::method_not_allowed)
}

//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! annotations (utoipa) and served at `/openapi.json`.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use crate::routes::{attempts, auth, files, grade, ops, progress, quizzes, students, user};
use crate::state::AppState;

/// The JSON error envelope every 4xx/5xx carries.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_answers`.
    code: String,
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "quizbench",
        description = "A quiz/login API built to be load tested in every process model."
    ),
    paths(
        auth::register,
        auth::login,
        auth::logout,
        user::me,
        user::change_password,
        quizzes::list,
        quizzes::one,
        attempts::submit,
        attempts::mine,
        progress::mine,
        students::select_options,
        grade::grade,
        files::list,
        files::load,
        files::save,
        files::remove,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::runtime,
    ),
    components(schemas(ErrorBody, ErrorDetail, crate::domain::grading::Answer)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::extract::COOKIE))),
        );
    }
}

/// The document, serialized once per process.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("OpenAPI serializes")
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    crate::routes::json_bytes(StatusCode::OK, document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_api_route() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for route in crate::metrics::ROUTES {
            let documented = paths.contains_key(*route);
            let undocumented_ok = matches!(
                *route,
                "/" | "/quizzes"
                    | "/dashboard"
                    | "/static/{*path}"
                    | "/openapi.json"
                    | "/json"
                    | "/plaintext"
                    | "/db"
                    | "/queries"
                    | "/fortunes"
                    | "/updates"
                    | "/cached-queries"
                    | "other"
            );
            assert!(
                documented || undocumented_ok,
                "{route} is not in the OpenAPI document"
            );
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}

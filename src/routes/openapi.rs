//! The OpenAPI 3.1 description of the API, served at `/openapi.json`: the
//! documented routes of [`super::all`] (from their `#[utoipa::path]`
//! attributes) on top of the document's own parts here (title, security
//! schemes, shared schemas).

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::RouteList;
use crate::error::{ErrorBody, ErrorDetail};

/// What the document says besides its paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "quizbench",
        description = "A quiz/login API built to be load tested in every process model."
    ),
    components(schemas(ErrorBody, ErrorDetail, crate::domain::grading::Answer)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

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

/// The document, built and serialized once per process.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(super::all(0, std::time::Duration::ZERO).describe());
        doc.to_pretty_json().expect("OpenAPI serializes")
    })
}

pub fn routes() -> RouteList {
    RouteList::default().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    super::json_bytes(StatusCode::OK, document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_api_route() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        // HTML pages are not the API.
        let pages = super::super::pages::routes();
        for route in super::super::labels().names() {
            let documented = paths.contains_key(route);
            let undocumented_ok = pages.templates().contains(route)
                || matches!(
                    route.as_str(),
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

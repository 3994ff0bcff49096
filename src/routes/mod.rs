//! HTTP routes, one module per resource, and [`all`]: the one list of
//! routes, from which the router, the OpenAPI document ([`openapi`]) and
//! the metrics labels ([`labels`]) all follow.
//!
//! Each route template is written once: in the handler's `#[utoipa::path]`
//! attribute for the documented API (registered with [`RouteList::api`]
//! and `utoipa_axum::routes!`), or in the [`RouteList::route`] call of a
//! route the document leaves out (pages, assets, TechEmpower).

pub mod attempts;
pub mod auth;
pub mod files;
pub mod grade;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod progress;
pub mod quizzes;
pub mod students;
pub mod techempower;
pub mod user;

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, Route};
use axum::Router;
use tower::{Layer, Service};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::metrics::RouteLabels;
use crate::state::AppState;

/// Every route of the server, in metrics slot order. `file_max_bytes` is
/// the body limit of file uploads (it changes no template and nothing in
/// the OpenAPI document).
pub fn all(file_max_bytes: usize) -> RouteList {
    let api = RouteList::default()
        .merge(auth::routes())
        .merge(user::routes())
        .merge(quizzes::routes())
        .merge(attempts::routes())
        .merge(progress::routes())
        .merge(students::routes())
        .merge(grade::routes())
        .merge(files::routes(file_max_bytes))
        // API responses are per user: never stored by shared caches.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    api.merge(pages::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .merge(techempower::routes())
}

/// The metrics labels of this process: the templates of [`all`], in order.
/// The same in every process of a server (they run the same binary).
pub fn labels() -> &'static RouteLabels {
    static LABELS: OnceLock<RouteLabels> = OnceLock::new();
    LABELS.get_or_init(|| RouteLabels::new(all(0).templates().iter().cloned()))
}

/// Routes being assembled: an axum router with the OpenAPI description of
/// its documented routes, and the template of every route, in order.
#[derive(Default)]
pub struct RouteList {
    router: OpenApiRouter<AppState>,
    templates: Vec<String>,
}

impl RouteList {
    /// Handlers annotated with `#[utoipa::path]` (`utoipa_axum::routes!`):
    /// routed at the attribute's path and described in the OpenAPI document.
    pub fn api(mut self, handlers: UtoipaMethodRouter<AppState>) -> Self {
        for template in handlers.1.paths.keys() {
            self.add_template(template);
        }
        self.router = self.router.routes(handlers);
        self
    }

    /// A route the OpenAPI document leaves out.
    pub fn route(mut self, template: &str, handlers: MethodRouter<AppState>) -> Self {
        self.add_template(template);
        self.router = self.router.route(template, handlers);
        self
    }

    /// Adds `other`'s routes after these.
    pub fn merge(mut self, other: RouteList) -> Self {
        for template in &other.templates {
            self.add_template(template);
        }
        self.router = self.router.merge(other.router);
        self
    }

    /// Wraps the routes added so far in `layer` (as `axum::Router::layer`).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// Every route template, in the order the routes were added.
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// The router and the description of its documented routes.
    pub fn split(self) -> (Router<AppState>, utoipa::openapi::OpenApi) {
        self.router.split_for_parts()
    }

    fn add_template(&mut self, template: &str) {
        if !self.templates.iter().any(|t| t == template) {
            self.templates.push(template.to_string());
        }
    }
}

/// A pre-serialized JSON body as a response (built directly: one header
/// insert, where the `IntoResponse` tuple inserts the content type twice).
pub fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut res = Response::new(axum::body::Body::from(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Serializes `value` as a JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => crate::error::ApiError::Internal(e.into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_are_the_routed_templates_in_order_then_other() {
        let list = all(1);
        let labels = labels();
        let names = labels.names();
        assert_eq!(&names[..names.len() - 1], list.templates());
        assert_eq!(names.last().map(String::as_str), Some("other"));
        // Every template counts under its own label.
        for (i, template) in list.templates().iter().enumerate() {
            let path = template
                .replace("{id}", "1")
                .replace("{name}", "a.py")
                .replace("{*path}", "style.css");
            assert_eq!(labels.of_path(&path), i, "{template}");
        }
        assert_eq!(labels.name(labels.liveness()), "/healthz");
    }

    #[test]
    fn every_documented_path_is_routed() {
        let list = all(1);
        let templates = list.templates().to_vec();
        let (_, doc) = list.split();
        for path in doc.paths.paths.keys() {
            assert!(templates.contains(path), "{path} is documented, not routed");
        }
    }
}

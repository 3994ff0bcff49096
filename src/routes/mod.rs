//! HTTP routes, one module per resource, and [`all`]: the one list of
//! routes, from which the router, the OpenAPI document ([`openapi`]) and
//! the metrics labels ([`labels`]) all follow.
//!
//! Each route template is written once: in the handler's `#[utoipa::path]`
//! attribute for the documented API (registered with [`documented!`] and
//! [`RouteList::api`]), or in the [`RouteList::route`] call of a route the
//! document leaves out (pages, assets, TechEmpower). A handler's
//! documentation is generated only when the document is built (on the
//! first `GET /openapi.json`), never when a worker builds its router.

/// The documented handlers `$handler, ...` (each annotated with
/// `#[utoipa::path]`, in the calling module), for [`RouteList::api`]:
/// routed at the attribute's path for the attribute's methods.
macro_rules! documented {
    ($($handler:ident),+ $(,)?) => {
        $crate::routes::Documented::new(
            vec![$(
                paste::paste! {{
                    use utoipa::Path as _;
                    $crate::routes::Documented::handler(
                        [<__path_ $handler>]::path(),
                        &[<__path_ $handler>]::methods(),
                        $handler,
                    )
                }}
            ),+],
            || utoipa_axum::routes!($($handler),+),
        )
    };
}

/// Declares each `$name` a set of error answers for the `responses(...)`
/// of `#[utoipa::path]`: an [`ErrorBody`](crate::error::ErrorBody) with
/// each `$status` and `$description`.
macro_rules! error_responses {
    ($($name:ident: [$($status:literal $description:literal),+ $(,)?];)+) => {$(
        pub(crate) struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> $crate::routes::ResponseMap {
                $crate::routes::error_responses(&[$(($status, $description)),+])
            }
        }
    )+};
}

error_responses! {
    NotLoggedIn: [401 "Not logged in"];
}

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
use axum::handler::Handler;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, Route};
use axum::Router;
use tower::{Layer, Service};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::HttpMethod;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::PathItemExt as _;

use crate::metrics::RouteLabels;
use crate::state::AppState;

/// Responses by status, as `#[utoipa::path]` documents them.
pub type ResponseMap =
    std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>>;

/// The answers of [`error_responses!`]: `(status, description)`, each with
/// an [`ErrorBody`](crate::error::ErrorBody) as JSON.
pub fn error_responses(list: &[(u16, &str)]) -> ResponseMap {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    use utoipa::ToSchema as _;
    list.iter()
        .map(|&(status, description)| {
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(crate::error::ErrorBody::name())))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build();
            (status.to_string(), response.into())
        })
        .collect()
}

/// Every route of the server, in metrics slot order. `file_max_bytes` is
/// the body limit of file uploads and `app_cpu_cost` the CPU time each API
/// request burns ([`app_cpu_cost_of`]); neither changes a template or the
/// OpenAPI document.
pub fn all(file_max_bytes: usize, app_cpu_cost: std::time::Duration) -> RouteList {
    let mut api = RouteList::default()
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
    if !app_cpu_cost.is_zero() {
        api = api.layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| {
                app_cpu_cost_of(app_cpu_cost, req, next)
            },
        ));
    }
    api.merge(pages::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .merge(techempower::routes())
}

/// `APP_CPU_COST_US`, the stand-in for a framework's per-request work (a
/// Django view under a sync uWSGI worker): every request routed to an API
/// view (`/api/v1/...`: auth, user, quizzes, attempts, progress, students,
/// grade, files), whatever its status, burns `cost` of CPU time on its own
/// thread once the view has answered, blocking that thread as a sync
/// worker is blocked. A response served from the content cache (`X-Cache:
/// hit`, and the `local` cache's hits the server answers before the
/// router) pays nothing: in the document a cache in front of the app
/// answered those without Django. Pages, assets, operations and the
/// TechEmpower routes pay nothing either.
async fn app_cpu_cost_of(
    cost: std::time::Duration,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let hit = res
        .headers()
        .get("x-cache")
        .is_some_and(|v| v.as_bytes() == b"hit");
    if !hit {
        crate::cpu::burn::burn(cost);
    }
    res
}

/// The metrics labels of this process: the templates of [`all`], in order.
/// The same in every process of a server (they run the same binary).
pub fn labels() -> &'static RouteLabels {
    static LABELS: OnceLock<RouteLabels> = OnceLock::new();
    LABELS.get_or_init(|| {
        RouteLabels::new(
            all(0, std::time::Duration::ZERO)
                .templates()
                .iter()
                .cloned(),
        )
    })
}

/// Documented handlers, made by [`documented!`]: their routes, and how to
/// describe them (run only when the OpenAPI document is built).
pub struct Documented {
    routes: Vec<(String, MethodRouter<AppState>)>,
    describe: fn() -> UtoipaMethodRouter<AppState>,
}

impl Documented {
    pub fn new(
        routes: Vec<(String, MethodRouter<AppState>)>,
        describe: fn() -> UtoipaMethodRouter<AppState>,
    ) -> Documented {
        Documented { routes, describe }
    }

    /// One handler at `template` for `methods` (from its attribute).
    pub fn handler<H, T>(
        template: String,
        methods: &[HttpMethod],
        handler: H,
    ) -> (String, MethodRouter<AppState>)
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let router = methods.iter().fold(MethodRouter::new(), |r, m| {
            r.on(m.to_method_filter(), handler.clone())
        });
        (template, router)
    }
}

/// Routes being assembled: an axum router, the template of every route in
/// order, and how to describe the documented ones.
#[derive(Default)]
pub struct RouteList {
    router: Router<AppState>,
    templates: Vec<String>,
    descriptions: Vec<fn() -> UtoipaMethodRouter<AppState>>,
}

impl RouteList {
    /// Handlers annotated with `#[utoipa::path]` ([`documented!`]): routed
    /// at the attribute's path and described in the OpenAPI document.
    pub fn api(mut self, handlers: Documented) -> Self {
        let mut grouped: Vec<(String, MethodRouter<AppState>)> = Vec::new();
        for (template, router) in handlers.routes {
            match grouped.iter_mut().find(|(t, _)| *t == template) {
                Some((_, same)) => *same = std::mem::take(same).merge(router),
                None => grouped.push((template, router)),
            }
        }
        for (template, router) in grouped {
            self.add_template(&template);
            self.router = self.router.route(&template, router);
        }
        self.descriptions.push(handlers.describe);
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
        self.descriptions.extend(other.descriptions);
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

    /// The description of the documented routes (their paths, operations
    /// and schemas), generated now.
    pub fn describe(&self) -> utoipa::openapi::OpenApi {
        self.descriptions
            .iter()
            .fold(OpenApiRouter::<AppState>::default(), |doc, describe| {
                doc.routes(describe())
            })
            .into_openapi()
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
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
        let list = all(1, std::time::Duration::from_micros(1));
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
        let list = all(1, std::time::Duration::from_micros(1));
        for path in list.describe().paths.paths.keys() {
            assert!(
                list.templates().contains(path),
                "{path} is documented, not routed"
            );
        }
    }
}

//! Names of the route slots: which route template each request path counts
//! under. Built once per process from the server's route list (see
//! `routes::labels`), so every process of a server, running the same
//! binary, numbers the routes the same way.

use super::ROUTE_SLOTS;

/// The label of the slot for paths that match no template.
pub const OTHER: &str = "other";

/// Route templates in slot order, then `other`.
pub struct RouteLabels {
    names: Vec<String>,
    /// The same matcher the router uses, so no router middleware is needed.
    matcher: matchit::Router<u8>,
    liveness: usize,
}

impl RouteLabels {
    /// Labels for `templates`, in that order.
    ///
    /// # Panics
    /// With more templates than [`ROUTE_SLOTS`] has room for (raise it), or
    /// a template the matcher refuses: both are programming errors that
    /// the unit tests catch.
    pub fn new<S: Into<String>>(templates: impl IntoIterator<Item = S>) -> RouteLabels {
        const _: () = assert!(ROUTE_SLOTS <= 256, "route indexes fit in a u8");
        let mut names: Vec<String> = templates.into_iter().map(Into::into).collect();
        assert!(
            names.len() < ROUTE_SLOTS,
            "{} route templates, but the metrics table has {} route slots (one is `other`): raise ROUTE_SLOTS",
            names.len(),
            ROUTE_SLOTS
        );
        let mut matcher = matchit::Router::new();
        for (i, template) in names.iter().enumerate() {
            matcher
                .insert(template.as_str(), i as u8)
                .unwrap_or_else(|e| panic!("route template {template}: {e}"));
        }
        names.push(OTHER.to_string());
        let mut labels = RouteLabels {
            names,
            matcher,
            liveness: 0,
        };
        labels.liveness = labels.of_path("/healthz");
        labels
    }

    /// The slot of the template `path` matches (`other` when none does).
    /// Matched by template even when a parameter will not parse (a 400).
    pub fn of_path(&self, path: &str) -> usize {
        self.matcher
            .at(path)
            .map_or(self.names.len() - 1, |m| usize::from(*m.value))
    }

    /// `of_path("/healthz")`, computed once, for the liveness fast path.
    pub fn liveness(&self) -> usize {
        self.liveness
    }

    /// The label of slot `route`.
    pub fn name(&self, route: usize) -> &str {
        &self.names[route.min(self.names.len() - 1)]
    }

    /// Every label in slot order, `other` last.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> RouteLabels {
        RouteLabels::new([
            "/api/v1/quizzes",
            "/api/v1/quizzes/{id}",
            "/api/v1/quizzes/{id}/attempts",
            "/static/{*path}",
            "/",
            "/healthz",
        ])
    }

    #[test]
    fn paths_map_to_their_route_templates() {
        let l = labels();
        let index = |t: &str| l.names().iter().position(|r| r == t).unwrap();
        assert_eq!(l.of_path("/healthz"), index("/healthz"));
        assert_eq!(l.liveness(), index("/healthz"));
        assert_eq!(
            l.of_path("/api/v1/quizzes/17/attempts"),
            index("/api/v1/quizzes/{id}/attempts")
        );
        assert_eq!(
            l.of_path("/api/v1/quizzes/x"),
            index("/api/v1/quizzes/{id}")
        );
        assert_eq!(l.of_path("/static/css/app.css"), index("/static/{*path}"));
        assert_eq!(l.of_path("/"), index("/"));
        assert_eq!(l.name(l.of_path("/api/v1/quizzes/")), OTHER);
        assert_eq!(l.name(l.of_path("/nope")), OTHER);
        assert_eq!(l.names().last().map(String::as_str), Some(OTHER));
    }

    #[test]
    #[should_panic(expected = "raise ROUTE_SLOTS")]
    fn more_templates_than_slots_are_refused() {
        RouteLabels::new((0..ROUTE_SLOTS).map(|i| format!("/r{i}")));
    }
}

//! The same request over and over ([`FixedRequest`]: `quizload run URL`,
//! like hey and wrk), serialised once. It knows nothing of quizbench.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;

use super::{Planned, ScenarioFactory, Script};
use crate::generator::http::{Capture, RequestBuilder};

/// The same request over and over: `quizload run URL`.
#[derive(Clone, Debug)]
pub struct FixedRequest {
    name: String,
    bytes: Arc<[u8]>,
    head: bool,
}

impl FixedRequest {
    /// A fixed request built with `builder`.
    pub fn new(builder: &RequestBuilder, method: &str, path: &str, body: &[u8]) -> Self {
        let method = method.to_ascii_uppercase();
        let bytes = builder.build(&method, path, &[], body);
        Self {
            name: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            bytes: bytes.into(),
            head: method == "HEAD",
        }
    }
}

struct FixedScript {
    bytes: Arc<[u8]>,
    head: bool,
}

impl Script for FixedScript {
    fn setup(&mut self) -> Option<Planned<'_>> {
        None
    }
    fn next(&mut self, _rng: &mut SmallRng) -> Planned<'_> {
        Planned {
            endpoint: 0,
            bytes: &self.bytes,
            head: self.head,
            want_body: false,
        }
    }
    fn on_response(&mut self, _: usize, _: Option<u16>, _: &Capture, _: &mut SmallRng) {}
    fn think(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        None
    }
}

impl ScenarioFactory for FixedRequest {
    fn endpoints(&self) -> Vec<String> {
        vec![self.name.clone()]
    }
    fn make(&self, _vu: usize) -> Box<dyn Script> {
        Box::new(FixedScript {
            bytes: self.bytes.clone(),
            head: self.head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::scenarios::test_support::text;
    use rand::SeedableRng;

    #[test]
    fn fixed_request_names_and_bytes() {
        let f = FixedRequest::new(&RequestBuilder::new("h:8", vec![]), "get", "/x?y=1", b"");
        assert_eq!(f.endpoints(), vec!["GET /x".to_string()]);
        let mut s = f.make(3);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(s.setup().is_none());
        assert!(text(&s.next(&mut rng)).starts_with("GET /x?y=1 HTTP/1.1\r\nHost: h:8\r\n"));
    }
}

//! Preparing a target ([`prepare`]): resolving its address and building
//! what the virtual users send, a fixed request or a quizbench scenario,
//! with the labels the report uses. It sends nothing. Its errors name the
//! step and the URL.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use super::{step, usage, TargetArgs};
use crate::generator::http::{HttpUrl, RequestBuilder};
use crate::generator::scenarios::{
    FixedRequest, JourneyWeights, Quizbench, QuizbenchOptions, ScenarioFactory,
};
use crate::tools::Tool;
use crate::units::parse_duration_range;

/// A prepared target: where to connect, what to send, how to label it.
pub struct Prepared {
    pub addr: SocketAddr,
    /// The URL loaded (a scenario's base URL).
    pub url: String,
    pub scenario: Arc<dyn ScenarioFactory>,
    pub target_label: String,
    pub scenario_label: String,
}

/// Builds the scenario and address from target arguments; `open` tells
/// whether the run uses the open model (the journey then logs in during
/// setup instead of in the measured phase).
pub fn prepare(t: &TargetArgs, open: bool) -> anyhow::Result<Prepared> {
    let headers = t.header_pairs()?;
    match t.scenario {
        None => {
            let Some(text) = &t.url else {
                return Err(usage(
                    "give a URL to load, or --scenario NAME (with --base URL)",
                ));
            };
            let url = HttpUrl::parse(text).map_err(|e| usage(format!("{e:#}")))?;
            let body = t.body_bytes()?;
            let builder = RequestBuilder::new(url.host_header.clone(), headers);
            let fixed = FixedRequest::new(&builder, &t.method, &url.path, &body);
            Ok(Prepared {
                addr: url
                    .resolve_blocking()
                    .with_context(|| step(Tool::Quizload, "resolve", text))?,
                url: text.clone(),
                scenario: Arc::new(fixed),
                target_label: format!(
                    "{} http://{}{}",
                    t.method.to_uppercase(),
                    url.host_header,
                    url.path
                ),
                scenario_label: "url".into(),
            })
        }
        Some(kind) => {
            if t.body.is_some() || t.body_file.is_some() {
                return Err(usage(
                    "--body/--body-file apply to a fixed URL, not to --scenario",
                ));
            }
            let base = t.base_url();
            let url = HttpUrl::parse(&base).map_err(|e| usage(format!("{e:#}")))?;
            let builder = RequestBuilder::new(url.host_header.clone(), headers);
            let weights = match &t.weights {
                Some(w) => JourneyWeights::parse(w)?,
                None => JourneyWeights::default(),
            };
            let opts = QuizbenchOptions {
                kind,
                auth: t.auth,
                think: parse_duration_range(&t.think)?,
                weights,
                static_path: t.static_path.clone(),
                measured_login: !open,
                student_offset: t.student_offset,
            };
            Ok(Prepared {
                addr: url
                    .resolve_blocking()
                    .with_context(|| step(Tool::Quizload, "resolve", &base))?,
                url: base,
                scenario: Arc::new(Quizbench::new(opts, builder)),
                target_label: format!("http://{}", url.host_header),
                scenario_label: kind.name(),
            })
        }
    }
}

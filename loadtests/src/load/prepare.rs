//! Preparing a target ([`prepare`]): resolving its address and building
//! what the virtual users send, a fixed request or a quizbench scenario,
//! with the labels the report uses. It sends nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::bail;

use super::TargetArgs;
use crate::generator::http::{HttpUrl, RequestBuilder};
use crate::generator::scenarios::{
    FixedRequest, JourneyWeights, Quizbench, QuizbenchOptions, ScenarioFactory,
};
use crate::units::parse_duration_range;

/// A prepared target: where to connect, what to send, how to label it.
pub struct Prepared {
    pub addr: SocketAddr,
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
            let Some(url) = &t.url else {
                bail!("give a URL to load, or --scenario NAME (with --base URL)");
            };
            let url = HttpUrl::parse(url)?;
            let body = t.body_bytes()?;
            let builder = RequestBuilder::new(url.host_header.clone(), headers);
            let fixed = FixedRequest::new(&builder, &t.method, &url.path, &body);
            Ok(Prepared {
                addr: url.resolve_blocking()?,
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
                bail!("--body/--body-file apply to a fixed URL, not to --scenario");
            }
            let url = HttpUrl::parse(&t.base_url())?;
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
                addr: url.resolve_blocking()?,
                scenario: Arc::new(Quizbench::new(opts, builder)),
                target_label: format!("http://{}", url.host_header),
                scenario_label: kind.name(),
            })
        }
    }
}

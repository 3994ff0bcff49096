//! The document's own figures beside ours: its table (`[[figures]]` of the
//! experiment file) and a calibration's out-of-sample checks (`[calibrate]
//! checks`). Each figure names one cell's metric, or one endpoint row's,
//! and is compared with the mean over that cell's trials.

use serde::{Deserialize, Serialize};

use super::claims::run_metric;
use super::run::RunRecord;
use super::spec::Metric;
use super::summary::{CellSummary, Estimate};
use crate::generator::scenarios::ScenarioKind;

/// One figure of the document (ms, req/s or %) and the cell it is of: a
/// configuration, scenario and level left out are the calibration's (for
/// its checks) or the baseline, the file's first scenario and first level
/// (for `[[figures]]`); an endpoint left out is the whole cell, one given is
/// that row of the endpoints table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentFigure {
    pub metric: Metric,
    pub document: f64,
    pub config: Option<String>,
    pub scenario: Option<ScenarioKind>,
    pub level: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The cell a figure means where it leaves a part out.
pub struct DefaultCell<'a> {
    pub config: &'a str,
    pub scenario: ScenarioKind,
    pub level: f64,
}

/// A figure of the document against our trials'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FigureRecord {
    pub config: String,
    pub scenario: String,
    pub level: f64,
    pub metric: String,
    /// The endpoint row compared (none: the whole cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub document: f64,
    pub ours: f64,
    pub ci95: f64,
    /// ours / document - 1.
    pub error: f64,
}

/// Each figure against the estimate of its cell (of its endpoint, over the
/// cell's trials in `records`); a figure whose cell did not run is left out.
pub fn beside_ours(
    figures: &[DocumentFigure],
    default: &DefaultCell,
    cells: &[CellSummary],
    records: &[RunRecord],
) -> Vec<FigureRecord> {
    figures
        .iter()
        .filter_map(|f| {
            let config = f.config.as_deref().unwrap_or(default.config).to_string();
            let scenario = f.scenario.unwrap_or(default.scenario).name();
            let level = f.level.unwrap_or(default.level);
            let same_cell = |c: &str, s: &str, l: f64| c == config && s == scenario && l == level;
            let cell = cells
                .iter()
                .find(|c| same_cell(&c.config, &c.scenario, c.level))?;
            let e = match &f.endpoint {
                None => f.metric.of_cell(cell)?.clone(),
                Some(name) => {
                    let values: Vec<f64> = records
                        .iter()
                        .filter(|r| same_cell(&r.config, &r.scenario, r.level))
                        .filter_map(|r| run_metric(f.metric, r, Some(name)))
                        .collect();
                    if values.is_empty() {
                        return None;
                    }
                    Estimate::of(values)
                }
            };
            Some(FigureRecord {
                metric: f.metric.name().into(),
                endpoint: f.endpoint.clone(),
                document: f.document,
                ours: e.mean,
                ci95: e.ci95,
                error: e.mean / f.document - 1.0,
                config,
                scenario,
                level,
            })
        })
        .collect()
}

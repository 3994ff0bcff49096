//! Calibration of a server knob inside the run, before its trials
//! ([`CalibrateSpec`], `[calibrate]` of the experiment file): one cell of
//! one configuration run with the knob at a value, the measured metric
//! compared with the document's figure, the value scaled in proportion
//! (a latency grows with the cost per request, a throughput shrinks) and
//! run again, until the metric is within the tolerance or the steps run
//! out ([`calibrate`]). The value found goes into every configuration's
//! environment and, with every step, into the report ([`Calibration`]).
//! The search is pure: running a step is the runner's closure.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::claims::run_metric;
use super::run::RunRecord;
use super::spec::Metric;
use super::summary::{CellSummary, Estimate};
use crate::generator::scenarios::ScenarioKind;

/// `[calibrate]`: which knob, on which cell, towards which figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateSpec {
    /// The environment variable calibrated (`GRADE_COST`).
    pub var: String,
    /// The configuration it is calibrated on.
    pub config: String,
    /// The scenario of the cell (default: the file's first).
    #[serde(default)]
    pub scenario: Option<ScenarioKind>,
    /// The load level of the cell.
    pub level: f64,
    /// The metric of the cell to bring to `target`.
    pub metric: Metric,
    /// The document's figure: ms for a latency, req/s for a throughput.
    pub target: f64,
    /// The first value tried.
    pub start: f64,
    /// Runs at most (default 4).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Stop when the metric is within this share of the target (default
    /// 0.05).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Each step's measured duration, when the file's cells run by
    /// duration (default: the file's).
    #[serde(default)]
    pub duration: Option<String>,
    /// The document's other figures, compared out of sample with the
    /// trials once the knob is calibrated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// A figure of the document not used by the calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub metric: Metric,
    /// The document's value (ms, req/s, %).
    pub document: f64,
    /// The configuration (default: the calibration's).
    #[serde(default)]
    pub config: Option<String>,
    /// The scenario (default: the calibration's).
    #[serde(default)]
    pub scenario: Option<ScenarioKind>,
    /// The level (default: the calibration's).
    #[serde(default)]
    pub level: Option<f64>,
    /// One endpoint's row, named as in the endpoints table (default: the
    /// whole cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// An out-of-sample check: our trials' figure against the document's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
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

/// The checks of `cal` against the cells' estimates (an endpoint's, over
/// the cell's trials in `records`).
pub fn checks(
    cal: &CalibrateSpec,
    first_scenario: ScenarioKind,
    cells: &[CellSummary],
    records: &[RunRecord],
) -> Vec<CheckRecord> {
    cal.checks
        .iter()
        .filter_map(|k| {
            let config = k.config.clone().unwrap_or_else(|| cal.config.clone());
            let scenario = k.scenario.or(cal.scenario).unwrap_or(first_scenario).name();
            let level = k.level.unwrap_or(cal.level);
            let cell = cells
                .iter()
                .find(|c| c.config == config && c.scenario == scenario && c.level == level)?;
            let e = match &k.endpoint {
                None => k.metric.of_cell(cell).clone(),
                Some(name) => {
                    let values: Vec<f64> = records
                        .iter()
                        .filter(|r| {
                            r.config == config && r.scenario == scenario && r.level == level
                        })
                        .filter_map(|r| run_metric(k.metric, &r.report, Some(name)))
                        .collect();
                    if values.is_empty() {
                        return None;
                    }
                    Estimate::of(values)
                }
            };
            Some(CheckRecord {
                metric: k.metric.name().into(),
                endpoint: k.endpoint.clone(),
                document: k.document,
                ours: e.mean,
                ci95: e.ci95,
                error: e.mean / k.document - 1.0,
                config,
                scenario,
                level,
            })
        })
        .collect()
}

fn default_steps() -> usize {
    4
}

fn default_tolerance() -> f64 {
    0.05
}

impl CalibrateSpec {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if matches!(self.metric, Metric::Success) {
            bail!("calibrate: the success rate is not proportional to a cost");
        }
        if !(self.target > 0.0 && self.start >= 1.0 && self.steps >= 1) {
            bail!("calibrate: target > 0, start >= 1 and steps >= 1");
        }
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) {
            bail!("calibrate: tolerance between 0 and 1");
        }
        Ok(())
    }

    /// The next value: a latency is taken as proportional to the cost, a
    /// throughput as inversely proportional. Whole numbers, at least 1.
    fn next(&self, value: f64, measured: f64) -> f64 {
        let ratio = match self.metric {
            Metric::Rps => measured / self.target,
            _ => self.target / measured,
        };
        // A step at most ×8 either way: one odd run does not throw the
        // search off.
        (value * ratio.clamp(0.125, 8.0)).round().max(1.0)
    }
}

/// One calibration run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationStep {
    pub value: f64,
    pub measured: f64,
}

/// The result of a calibration, as the report states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub var: String,
    /// The value every configuration runs with.
    pub value: f64,
    pub config: String,
    pub scenario: String,
    pub level: f64,
    pub metric: String,
    pub target: f64,
    pub steps: Vec<CalibrationStep>,
    /// Whether the last step was within the tolerance.
    pub converged: bool,
}

impl Calibration {
    /// The last step's metric against the target (relative error).
    pub fn error(&self) -> f64 {
        self.steps
            .last()
            .map_or(f64::NAN, |s| s.measured / self.target - 1.0)
    }
}

/// Runs the search: `run(value)` measures the cell with the knob at
/// `value`. The value kept is the one of the step closest to the target.
pub fn calibrate(
    spec: &CalibrateSpec,
    scenario: &str,
    mut run: impl FnMut(f64) -> anyhow::Result<f64>,
) -> anyhow::Result<Calibration> {
    let mut steps = Vec::new();
    let mut value = spec.start;
    for _ in 0..spec.steps {
        let measured = run(value)?;
        steps.push(CalibrationStep { value, measured });
        if measured <= 0.0 || !measured.is_finite() {
            bail!("calibrate: {} = {value} measured {measured}", spec.var);
        }
        if (measured / spec.target - 1.0).abs() <= spec.tolerance {
            break;
        }
        let next = spec.next(value, measured);
        if next == value {
            break;
        }
        value = next;
    }
    let best = steps
        .iter()
        .min_by(|a, b| {
            let e = |s: &CalibrationStep| (s.measured / spec.target - 1.0).abs();
            e(a).total_cmp(&e(b))
        })
        .cloned()
        .expect("at least one step");
    // The best step last, so `error()` is the kept value's.
    steps.retain(|s| s != &best);
    steps.push(best.clone());
    Ok(Calibration {
        var: spec.var.clone(),
        value: best.value,
        config: spec.config.clone(),
        scenario: scenario.to_string(),
        level: spec.level,
        metric: spec.metric.name().into(),
        target: spec.target,
        converged: (best.measured / spec.target - 1.0).abs() <= spec.tolerance,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: Metric, target: f64) -> CalibrateSpec {
        CalibrateSpec {
            var: "GRADE_COST".into(),
            config: "c".into(),
            scenario: None,
            level: 30.0,
            metric,
            target,
            start: 100.0,
            steps: 4,
            tolerance: 0.05,
            duration: None,
            checks: vec![],
        }
    }

    /// A latency proportional to the cost converges in two steps.
    #[test]
    fn a_proportional_latency_converges() {
        let s = spec(Metric::Max, 21_750.0);
        let c = calibrate(&s, "grade", |v| Ok(v * 7.0 + 30.0)).unwrap();
        assert!(c.converged, "{c:?}");
        assert!(c.error().abs() <= 0.05, "{}", c.error());
        assert!((2900.0..3200.0).contains(&c.value), "{}", c.value);
        assert_eq!(c.steps.first().unwrap().value, 100.0);
    }

    /// A throughput inversely proportional to the cost.
    #[test]
    fn a_throughput_moves_the_other_way() {
        let s = spec(Metric::Rps, 37.5);
        let c = calibrate(&s, "journey", |v| Ok(30_000.0 / v)).unwrap();
        assert!(c.converged && (c.value - 800.0).abs() <= 40.0, "{c:?}");
    }

    /// Out of steps: the closest step is kept and reported as not
    /// converged.
    #[test]
    fn the_closest_step_is_kept() {
        let mut s = spec(Metric::Max, 1000.0);
        s.steps = 2;
        // Latency insensitive to the knob beyond a point.
        let c = calibrate(&s, "grade", |v| Ok(if v < 200.0 { 400.0 } else { 700.0 })).unwrap();
        assert!(!c.converged);
        assert_eq!(c.value, 250.0);
        assert_eq!(c.steps.len(), 2);
        assert!((c.error() + 0.3).abs() < 1e-9);
    }

    #[test]
    fn success_cannot_be_calibrated() {
        assert!(spec(Metric::Success, 99.0).validate().is_err());
        spec(Metric::Max, 10.0).validate().unwrap();
    }
}

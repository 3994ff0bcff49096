//! Calibration of a server knob inside the run, before its trials
//! ([`CalibrateSpec`], `[calibrate]` of the experiment file): one cell of
//! one configuration run with the knob at a value, the measured metric
//! compared with the document's figure, the value scaled in proportion
//! (a latency grows with the cost per request, a throughput shrinks), or
//! interpolated between the two closest steps once they bracket the
//! target, and run again, until the metric is within the tolerance or the
//! steps run out ([`calibrate`]). The value found goes into every configuration's
//! environment and, with every step, into the report ([`Calibration`]).
//! The search is pure: running a step is the runner's closure.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::figures::DocumentFigure;
use super::spec::Metric;
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
    pub checks: Vec<DocumentFigure>,
}

fn default_steps() -> usize {
    4
}

fn default_tolerance() -> f64 {
    0.05
}

impl CalibrateSpec {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.metric == Metric::Success || self.metric.whole_runs_only() {
            bail!(
                "calibrate: the {} is not proportional to a cost (calibrate on a latency or the throughput)",
                self.metric.name()
            );
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

/// The closest steps on either side of the target (one measured below,
/// one above), once there are both.
fn bracket(steps: &[CalibrationStep], target: f64) -> Option<(&CalibrationStep, &CalibrationStep)> {
    let closest = |below: bool| {
        steps
            .iter()
            .filter(|s| (s.measured < target) == below)
            .min_by(|a, b| {
                (a.measured - target)
                    .abs()
                    .total_cmp(&(b.measured - target).abs())
            })
    };
    Some((closest(true)?, closest(false)?))
}

/// The value between two bracketing steps where the metric, taken as
/// linear between them, meets the target; kept inside the middle 80% of
/// the bracket so that a curved response still narrows it. A knee (a
/// throughput that falls off a cliff past saturation) defeats the
/// proportional step, which jumps back and forth across it; this does not.
fn interpolate(a: &CalibrationStep, b: &CalibrationStep, target: f64) -> f64 {
    let share = ((target - a.measured) / (b.measured - a.measured)).clamp(0.1, 0.9);
    (a.value + share * (b.value - a.value)).round().max(1.0)
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
        let next = match bracket(&steps, spec.target) {
            Some((a, b)) => interpolate(a, b, spec.target),
            None => spec.next(value, measured),
        };
        if steps.iter().any(|s| s.value == next) {
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

    /// A throughput with a knee (flat at 52.2 req/s below 18,700, falling
    /// to 35.1 at 20,000, the shape measured for document 002): the
    /// proportional step alone jumps across the knee and back; once two
    /// steps bracket the target the search interpolates between them.
    #[test]
    fn a_knee_is_bracketed() {
        let mut s = spec(Metric::Rps, 37.5);
        s.start = 20_000.0;
        s.tolerance = 0.02;
        let knee = |v: f64| match v {
            v if v <= 18_700.0 => 52.2,
            v if v <= 20_000.0 => 52.2 - (v - 18_700.0) / 1_300.0 * 17.1,
            v => 35.1 - (v - 20_000.0) / 5_000.0,
        };
        let c = calibrate(&s, "journey", |v| Ok(knee(v))).unwrap();
        assert!(c.converged, "{c:?}");
        assert!((c.value - 19_817.0).abs() <= 30.0, "{c:?}");
        assert!(c.steps.len() <= 3, "{c:?}");
    }

    #[test]
    fn success_cannot_be_calibrated() {
        assert!(spec(Metric::Success, 99.0).validate().is_err());
        spec(Metric::Max, 10.0).validate().unwrap();
    }
}

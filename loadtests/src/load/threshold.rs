//! Pass/fail criteria on a run's figures, as k6 has them: `--threshold
//! p99<10ms`, `errors<0.1%`, `rps>1000` ([`Threshold`], parsed from text),
//! checked against a run report ([`check`]). A broken threshold makes
//! `quizload run` exit with a status of its own (99, the command line's).
//! It parses and compares; it prints nothing.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::analysis::report::RunReport;

/// The figure a threshold is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile, in thousandths (p99 = 990, p99.9 = 999).
    Percentile(u16),
    Mean,
    Min,
    Max,
    /// Responses per second.
    Rps,
    /// Failed requests (transport failures and non-2xx/3xx responses):
    /// their percentage of all requests with a `%` value, else their count.
    Errors,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
        }
    }
}

/// One criterion, e.g. `p99<10ms`: the metric, the comparison and the
/// limit in the metric's unit (ms for latencies, req/s, a count or a
/// percentage of requests for errors).
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
    /// `errors` as a percentage of requests rather than a count.
    pub percent: bool,
    /// As written.
    pub text: String,
}

/// The syntax, for error messages and help.
pub const SYNTAX: &str = "METRIC OP VALUE: METRIC p50, p90, p95, p99, p99.9, mean, min, max (VALUE with a unit: 250us, 10ms, 1.5s), rps (req/s), errors (a count, or a percentage of requests: 0.1%); OP <, <=, > or >=";

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad threshold {s:?}: {why} (expected {SYNTAX})");
        let text = s.trim();
        let at = text.find(['<', '>']).ok_or_else(|| bad("no comparison"))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        let metric = match name.as_str() {
            "mean" | "avg" => Metric::Mean,
            "min" => Metric::Min,
            "max" => Metric::Max,
            "rps" => Metric::Rps,
            "errors" => Metric::Errors,
            p => {
                let n = p
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<f64>().ok())
                    .filter(|n| *n > 0.0 && *n < 100.0)
                    .ok_or_else(|| bad(&format!("unknown metric {name:?}")))?;
                let permille = (n * 10.0).round();
                if (permille - n * 10.0).abs() > 1e-9 {
                    return Err(bad("percentiles go to one decimal (p99.9)"));
                }
                Metric::Percentile(permille as u16)
            }
        };
        let number = |v: &str| -> Result<f64, String> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad(&format!("{v:?} is not a non-negative number")))
        };
        let (limit, percent) = match metric {
            Metric::Rps => (number(value.strip_suffix("/s").unwrap_or(value))?, false),
            Metric::Errors => match value.strip_suffix('%') {
                Some(v) => (number(v)?, true),
                None => (number(value)?, false),
            },
            _ => {
                let split = value
                    .find(|c: char| c.is_alphabetic() || c == 'µ')
                    .ok_or_else(|| bad("a latency needs a unit: us, ms or s (e.g. p99<10ms)"))?;
                let (n, unit) = value.split_at(split);
                let scale = match unit {
                    "us" | "µs" => 0.001,
                    "ms" => 1.0,
                    "s" => 1000.0,
                    _ => return Err(bad(&format!("unknown unit {unit:?}: us, ms or s"))),
                };
                (number(n)? * scale, false)
            }
        };
        Ok(Threshold {
            metric,
            op,
            limit,
            percent,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A threshold checked against a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// As written, e.g. `p99<10ms`.
    pub threshold: String,
    /// The run's figure, in the threshold's unit (ms, req/s, count, %).
    pub actual: f64,
    pub unit: &'static str,
    pub passed: bool,
}

impl ThresholdResult {
    /// One line: `ok   p99<10ms (p99 = 3.210 ms)`.
    pub fn line(&self) -> String {
        format!(
            "{} {} (actual {:.3}{})",
            if self.passed { "ok    " } else { "BROKEN" },
            self.threshold,
            self.actual,
            self.unit
        )
    }
}

/// The run's figure for `t`, in its unit.
fn actual(t: &Threshold, r: &RunReport) -> (f64, &'static str) {
    let l = &r.latency_ms;
    match t.metric {
        Metric::Percentile(500) => (l.p50, " ms"),
        Metric::Percentile(900) => (l.p90, " ms"),
        Metric::Percentile(950) => (l.p95, " ms"),
        Metric::Percentile(990) => (l.p99, " ms"),
        Metric::Percentile(999) => (l.p999, " ms"),
        Metric::Percentile(p) => (percentile_ms(r, f64::from(p) / 1000.0), " ms"),
        Metric::Mean => (l.mean, " ms"),
        Metric::Min => (l.min, " ms"),
        Metric::Max => (l.max, " ms"),
        Metric::Rps => (r.rps, " req/s"),
        Metric::Errors if t.percent => (
            if r.requests == 0 {
                0.0
            } else {
                r.errors.total as f64 * 100.0 / r.requests as f64
            },
            "%",
        ),
        Metric::Errors => (r.errors.total as f64, " failed requests"),
    }
}

/// Any other percentile, from the run's histogram (nearest rank).
fn percentile_ms(r: &RunReport, q: f64) -> f64 {
    let total: u64 = r.histogram_us.iter().map(|[_, n]| n).sum();
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for [v, n] in &r.histogram_us {
        seen += n;
        if seen >= rank {
            return *v as f64 / 1000.0;
        }
    }
    0.0
}

/// Checks every threshold against the run. A latency threshold of a run
/// without any response is broken: there is nothing to hold it.
pub fn check(thresholds: &[Threshold], report: &RunReport) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let (actual, unit) = actual(t, report);
            let latency = !matches!(t.metric, Metric::Rps | Metric::Errors);
            let passed = !(latency && report.responses == 0) && t.op.holds(actual, t.limit);
            ThresholdResult {
                threshold: t.text.clone(),
                actual,
                unit,
                passed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_thresholds() {
        let t = p("p99<10ms");
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Percentile(990), Op::Lt, 10.0)
        );
        let t = p(" p99.9 <= 1.5s ");
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Percentile(999), Op::Le, 1500.0)
        );
        assert_eq!(p("p50<250us").limit, 0.25);
        assert_eq!(p("p75<2ms").metric, Metric::Percentile(750));
        let t = p("errors<0.1%");
        assert_eq!((t.metric, t.limit, t.percent), (Metric::Errors, 0.1, true));
        let t = p("errors<=0");
        assert_eq!((t.op, t.limit, t.percent), (Op::Le, 0.0, false));
        let t = p("rps>1000");
        assert_eq!((t.metric, t.op, t.limit), (Metric::Rps, Op::Gt, 1000.0));
        assert_eq!(p("RPS>=5/s").op, Op::Ge);
        assert_eq!(p("avg<3ms").metric, Metric::Mean);
        assert_eq!(p("max<1s").to_string(), "max<1s");
    }

    #[test]
    fn refuses_bad_syntax_with_the_reason() {
        for (text, why) in [
            ("p99", "no comparison"),
            ("p99=10ms", "no comparison"),
            ("p99<10", "needs a unit"),
            ("p99<10parsecs", "unknown unit"),
            ("latency<10ms", "unknown metric"),
            ("p100<10ms", "unknown metric"),
            ("p99.95<10ms", "one decimal"),
            ("rps>fast", "not a non-negative number"),
            ("errors<-1%", "not a non-negative number"),
            ("<5", "unknown metric"),
        ] {
            let e = text.parse::<Threshold>().unwrap_err();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && !Op::Le.holds(2.1, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
        assert!(Op::Ge.holds(2.0, 2.0) && !Op::Ge.holds(1.9, 2.0));
    }
}

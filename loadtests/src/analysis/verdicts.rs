//! Claims tested against the intervals of [`super::inference`]: what a
//! claim says ([`ClaimKind`]: a difference with the document's figure, a
//! range or a direction; or no difference within a margin) and the verdict
//! our trials give it ([`test_claim`], [`claim_verdict`]).
//!
//! A claim of a difference is *refuted* when the document's figure lies
//! outside our 95 % interval and *confirmed* when it lies inside an interval
//! that excludes zero; a claim of no difference is tested for equivalence
//! with two one-sided tests against a stated margin (the 90 % interval
//! inside ±margin confirms it; a 95 % interval wholly beyond the margin
//! refutes it); anything else is *inconclusive*.
//!
//! Pure: it compares two samples of numbers.

use serde::{Deserialize, Serialize};

use super::inference::{mean, pct, welch_interval, WelchInterval};

/// The direction a claim of a difference states, for the candidate's
/// metric against the baseline's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Higher,
    Lower,
}

/// What a claim says about a candidate against a baseline, relative to the
/// baseline (0.24 = +24 %).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClaimKind {
    /// A difference: the document's figure (`expected`: a value, or a
    /// range such as 10–20 %) or, without a figure, its direction.
    Difference {
        /// `[low, high]`; a single figure has low = high.
        expected: Option<[f64; 2]>,
        direction: Option<Direction>,
    },
    /// No difference: equivalence within ±`margin` (0.10 = ±10 %).
    NoDifference { margin: f64 },
}

impl ClaimKind {
    pub fn validate(&self) -> anyhow::Result<()> {
        match self {
            ClaimKind::Difference {
                expected: None,
                direction: None,
            } => anyhow::bail!("a difference claim needs `expected` or `direction`"),
            ClaimKind::Difference {
                expected: Some([lo, hi]),
                ..
            } if lo > hi || !lo.is_finite() || !hi.is_finite() => {
                anyhow::bail!("expected range [{lo}, {hi}] is not a range")
            }
            ClaimKind::NoDifference { margin } if !(*margin > 0.0 && margin.is_finite()) => {
                anyhow::bail!("an equivalence margin must be positive, not {margin}")
            }
            _ => Ok(()),
        }
    }

    /// The claim in words, e.g. `+24% (difference)` or `within ±10%`.
    pub fn describe(&self) -> String {
        match self {
            ClaimKind::Difference {
                expected: Some([lo, hi]),
                ..
            } if lo == hi => format!("difference of {}", pct(*lo)),
            ClaimKind::Difference {
                expected: Some([lo, hi]),
                ..
            } => format!("difference of {} to {}", pct(*lo), pct(*hi)),
            ClaimKind::Difference { direction, .. } => format!(
                "{} than the baseline",
                match direction {
                    Some(Direction::Higher) => "higher",
                    _ => "lower",
                }
            ),
            ClaimKind::NoDifference { margin } => {
                format!("no difference (within ±{:.0}%)", margin * 100.0)
            }
        }
    }
}

/// What our trials say about a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVerdict {
    Confirms,
    Refutes,
    Inconclusive,
    /// Fewer than two trials on a side: no interval.
    Insufficient,
}

impl ClaimVerdict {
    pub fn word(&self) -> &'static str {
        match self {
            ClaimVerdict::Confirms => "confirms",
            ClaimVerdict::Refutes => "refutes",
            ClaimVerdict::Inconclusive => "inconclusive",
            ClaimVerdict::Insufficient => "insufficient trials",
        }
    }
}

/// A claim tested against trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimTest {
    pub verdict: ClaimVerdict,
    /// `mean(b) / mean(a) − 1`.
    pub relative: f64,
    /// The 95 % Welch interval, relative to the baseline mean.
    pub ci95: Option<[f64; 2]>,
    /// The 90 % interval (the two one-sided 5 % tests of equivalence).
    pub ci90: Option<[f64; 2]>,
    /// Why, in one sentence.
    pub reason: String,
}

/// The verdict on `kind` from the relative 95 % and 90 % intervals.
pub fn claim_verdict(kind: &ClaimKind, ci95: [f64; 2], ci90: [f64; 2]) -> (ClaimVerdict, String) {
    let [lo, hi] = ci95;
    let excludes_zero = lo > 0.0 || hi < 0.0;
    let ours = format!("95% CI [{}, {}]", pct(lo), pct(hi));
    match kind {
        ClaimKind::Difference {
            expected: Some([e_lo, e_hi]),
            ..
        } => {
            let figure = if e_lo == e_hi {
                pct(*e_lo)
            } else {
                format!("{} to {}", pct(*e_lo), pct(*e_hi))
            };
            if *e_hi < lo || *e_lo > hi {
                (
                    ClaimVerdict::Refutes,
                    format!("the document's {figure} lies outside our {ours}"),
                )
            } else if excludes_zero {
                (
                    ClaimVerdict::Confirms,
                    format!("the document's {figure} lies inside our {ours}, which excludes zero"),
                )
            } else {
                (
                    ClaimVerdict::Inconclusive,
                    format!("our {ours} holds the document's {figure} but also zero"),
                )
            }
        }
        ClaimKind::Difference { direction, .. } => {
            let (claimed, other) = match direction {
                Some(Direction::Higher) => (lo > 0.0, hi < 0.0),
                _ => (hi < 0.0, lo > 0.0),
            };
            if claimed {
                (
                    ClaimVerdict::Confirms,
                    format!("our {ours} lies on the claimed side of zero"),
                )
            } else if other {
                (
                    ClaimVerdict::Refutes,
                    format!("our {ours} lies on the other side of zero"),
                )
            } else {
                (ClaimVerdict::Inconclusive, format!("our {ours} holds zero"))
            }
        }
        ClaimKind::NoDifference { margin } => {
            let m = *margin;
            let [l90, h90] = ci90;
            if l90 > -m && h90 < m {
                (
                    ClaimVerdict::Confirms,
                    format!(
                        "equivalent within ±{:.0}%: 90% CI [{}, {}] (two one-sided tests at 5%)",
                        m * 100.0,
                        pct(l90),
                        pct(h90)
                    ),
                )
            } else if lo > m || hi < -m {
                (
                    ClaimVerdict::Refutes,
                    format!("our {ours} lies beyond the ±{:.0}% margin", m * 100.0),
                )
            } else {
                (
                    ClaimVerdict::Inconclusive,
                    format!(
                        "90% CI [{}, {}] is not within ±{:.0}%, nor is our {ours} beyond it",
                        pct(l90),
                        pct(h90),
                        m * 100.0
                    ),
                )
            }
        }
    }
}

/// Tests `kind` with trials `b` of the candidate against the baseline `a`.
pub fn test_claim(kind: &ClaimKind, a: &[f64], b: &[f64]) -> ClaimTest {
    let ma = mean(a);
    let rel = |w: Option<WelchInterval>| {
        w.filter(|_| ma != 0.0 && ma.is_finite())
            .map(|w| [w.low / ma.abs(), w.high / ma.abs()])
    };
    let ci95 = rel(welch_interval(a, b, 0.95));
    let ci90 = rel(welch_interval(a, b, 0.90));
    let relative = if ma != 0.0 {
        mean(b) / ma - 1.0
    } else {
        f64::NAN
    };
    let (verdict, reason) = match (ci95, ci90) {
        (Some(c95), Some(c90)) => claim_verdict(kind, c95, c90),
        _ => (
            ClaimVerdict::Insufficient,
            "fewer than two trials per side (or a zero baseline): no interval".into(),
        ),
    };
    ClaimTest {
        verdict,
        relative,
        ci95,
        ci90,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(expected: f64) -> ClaimKind {
        ClaimKind::Difference {
            expected: Some([expected, expected]),
            direction: None,
        }
    }

    /// Document 000's "+24%" against trials that are 5% slower with a
    /// narrow interval: the figure lies outside it.
    #[test]
    fn claim_refuted_by_a_narrow_interval() {
        let a = [100.0, 100.5, 99.5, 100.2, 99.8];
        let b = [105.0, 105.3, 104.7, 105.1, 104.9];
        let t = test_claim(&diff(0.24), &a, &b);
        let [lo, hi] = t.ci95.unwrap();
        assert!(lo > 0.0 && hi < 0.24, "narrow and excludes zero: {lo} {hi}");
        assert_eq!(t.verdict, ClaimVerdict::Refutes, "{}", t.reason);
        assert!(t.reason.contains("+24.0%"), "{}", t.reason);
    }

    #[test]
    fn claim_confirmed_by_a_difference() {
        let a = [100.0, 102.0, 98.0, 101.0, 99.0];
        let b = [124.0, 126.0, 122.0, 125.0, 123.0];
        let t = test_claim(&diff(0.24), &a, &b);
        assert_eq!(t.verdict, ClaimVerdict::Confirms, "{}", t.reason);
        // A range the interval overlaps confirms too; a direction alone too.
        let range = ClaimKind::Difference {
            expected: Some([0.20, 0.30]),
            direction: None,
        };
        assert_eq!(test_claim(&range, &a, &b).verdict, ClaimVerdict::Confirms);
        let up = ClaimKind::Difference {
            expected: None,
            direction: Some(Direction::Higher),
        };
        assert_eq!(test_claim(&up, &a, &b).verdict, ClaimVerdict::Confirms);
        let down = ClaimKind::Difference {
            expected: None,
            direction: Some(Direction::Lower),
        };
        assert_eq!(test_claim(&down, &a, &b).verdict, ClaimVerdict::Refutes);
    }

    /// Two one-sided tests: a difference of about 1% with a 90% interval
    /// inside ±10% confirms "no difference"; the same data with a ±0.5%
    /// margin does not.
    #[test]
    fn claim_of_no_difference_confirmed_by_equivalence() {
        let a = [100.0, 101.0, 99.0, 100.5, 99.5, 100.0];
        let b = [101.0, 102.0, 100.0, 101.5, 100.5, 101.0];
        let t = test_claim(&ClaimKind::NoDifference { margin: 0.10 }, &a, &b);
        assert_eq!(t.verdict, ClaimVerdict::Confirms, "{}", t.reason);
        let [l90, h90] = t.ci90.unwrap();
        let [l95, h95] = t.ci95.unwrap();
        assert!(l95 < l90 && h90 < h95, "the 90% interval is the narrower");
        let strict = test_claim(&ClaimKind::NoDifference { margin: 0.005 }, &a, &b);
        assert_ne!(strict.verdict, ClaimVerdict::Confirms, "{}", strict.reason);
        // A large difference refutes it.
        let far = [150.0, 151.0, 149.0, 150.5, 149.5, 150.0];
        let t = test_claim(&ClaimKind::NoDifference { margin: 0.10 }, &a, &far);
        assert_eq!(t.verdict, ClaimVerdict::Refutes, "{}", t.reason);
    }

    /// Noisy trials: the interval holds both the figure and zero.
    #[test]
    fn claim_inconclusive_when_the_interval_holds_zero() {
        let a = [80.0, 120.0, 95.0, 110.0, 100.0];
        let b = [90.0, 140.0, 100.0, 130.0, 110.0];
        let t = test_claim(&diff(0.10), &a, &b);
        let [lo, hi] = t.ci95.unwrap();
        assert!(lo < 0.0 && hi > 0.10, "{lo} {hi}");
        assert_eq!(t.verdict, ClaimVerdict::Inconclusive, "{}", t.reason);
        let eq = test_claim(&ClaimKind::NoDifference { margin: 0.10 }, &a, &b);
        assert_eq!(eq.verdict, ClaimVerdict::Inconclusive, "{}", eq.reason);
        assert_eq!(
            test_claim(&diff(0.1), &a[..1], &b).verdict,
            ClaimVerdict::Insufficient
        );
        assert!(diff(0.1).validate().is_ok());
        assert!(ClaimKind::NoDifference { margin: 0.0 }.validate().is_err());
    }
}

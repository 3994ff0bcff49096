//! Confidence intervals for comparing two configurations over several trials.
//!
//! One noisy run per configuration is what the seed documents had; this
//! module turns several trials per configuration into a statement with an
//! interval: the Welch t-interval on the difference of means (no equal-variance
//! assumption), expressed relative to the baseline's mean as well, and a
//! bootstrap percentile interval of the relative difference
//! `mean(b) / mean(a) - 1`. The verdict is "no significant difference" when
//! the Welch 95 % interval of the difference spans zero.
//!
//! A document's claims are tested against these intervals in `verdicts`.
//!
//! The Student-t distribution is `statrs`'s; the bootstrap uses a seeded
//! RNG, so results are reproducible; tested against t-table values. It
//! knows nothing of runs or experiments: it compares two samples of numbers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

/// Student's t with `df` degrees of freedom (df may be fractional, as
/// Welch's is).
fn students_t(df: f64) -> StudentsT {
    assert!(df > 0.0, "degrees of freedom must be positive");
    StudentsT::new(0.0, 1.0, df).expect("a standard t with positive df")
}

/// Cumulative distribution function of Student's t with `df` degrees of
/// freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    students_t(df).cdf(t)
}

/// Quantile (inverse CDF) of Student's t: the `t` with `cdf(t) = p`.
///
/// `statrs`'s inverse drifts as `df` grows (1.8266 instead of 1.95996 at
/// df = 10⁷) while its CDF stays exact, so Newton steps on the CDF polish
/// the inverse's answer.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0, "probability must be in (0, 1)");
    let dist = students_t(df);
    let mut t = dist.inverse_cdf(p);
    for _ in 0..20 {
        let step = (dist.cdf(t) - p) / dist.pdf(t);
        t -= step;
        if step.abs() <= 1e-12 * t.abs().max(1.0) {
            break;
        }
    }
    t
}

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample variance (n − 1 denominator); NaN for fewer than two values.
pub fn sample_variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Welch's t-interval for `mean(b) − mean(a)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WelchInterval {
    pub mean_a: f64,
    pub mean_b: f64,
    /// `mean_b − mean_a`.
    pub diff: f64,
    pub low: f64,
    pub high: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

/// Welch's t-interval for the difference of means `b − a` at `level`
/// (e.g. 0.95). `None` when either group has fewer than two trials.
pub fn welch_interval(a: &[f64], b: &[f64], level: f64) -> Option<WelchInterval> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean(a), mean(b));
    let (va, vb) = (sample_variance(a), sample_variance(b));
    let (qa, qb) = (va / na, vb / nb);
    let se2 = qa + qb;
    let diff = mb - ma;
    if se2 == 0.0 {
        // identical trials within each group: the interval collapses.
        return Some(WelchInterval {
            mean_a: ma,
            mean_b: mb,
            diff,
            low: diff,
            high: diff,
            df: na + nb - 2.0,
            se: 0.0,
            level,
        });
    }
    let df = se2 * se2 / (qa * qa / (na - 1.0) + qb * qb / (nb - 1.0));
    let t = student_t_quantile(0.5 + level / 2.0, df);
    let se = se2.sqrt();
    Some(WelchInterval {
        mean_a: ma,
        mean_b: mb,
        diff,
        low: diff - t * se,
        high: diff + t * se,
        df,
        se,
        level,
    })
}

/// A percentile-bootstrap interval of the relative difference
/// `mean(b) / mean(a) − 1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// Point estimate on the original samples.
    pub relative: f64,
    pub low: f64,
    pub high: f64,
    pub resamples: usize,
    pub level: f64,
}

/// Bootstrap percentile interval of `mean(b)/mean(a) − 1`, resampling each
/// group with replacement `resamples` times with a fixed `seed`. `None` when
/// a group is empty or the baseline mean is zero.
pub fn bootstrap_relative(
    a: &[f64],
    b: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<BootstrapInterval> {
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return None;
    }
    let ma = mean(a);
    if ma == 0.0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let resample_mean = |xs: &[f64], rng: &mut StdRng| {
        let mut s = 0.0;
        for _ in 0..xs.len() {
            s += xs[rng.random_range(0..xs.len())];
        }
        s / xs.len() as f64
    };
    for _ in 0..resamples {
        let ra = resample_mean(a, &mut rng);
        let rb = resample_mean(b, &mut rng);
        if ra != 0.0 {
            stats.push(rb / ra - 1.0);
        }
    }
    if stats.is_empty() {
        return None;
    }
    stats.sort_by(|x, y| x.total_cmp(y));
    let alpha = (1.0 - level) / 2.0;
    let pick = |q: f64| {
        let idx = ((q * stats.len() as f64).ceil() as usize).clamp(1, stats.len()) - 1;
        stats[idx]
    };
    Some(BootstrapInterval {
        relative: mean(b) / ma - 1.0,
        low: pick(alpha),
        high: pick(1.0 - alpha),
        resamples,
        level,
    })
}

/// Outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The 95 % interval lies above zero: b's mean is higher.
    Higher,
    /// The interval lies below zero: b's mean is lower.
    Lower,
    /// The interval spans zero.
    NoSignificantDifference,
    /// Too few trials (fewer than two per side) for an interval.
    Insufficient,
}

/// Comparison of a metric between a baseline `a` and a candidate `b`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub n_a: usize,
    pub n_b: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// `mean_b / mean_a − 1`.
    pub relative: f64,
    /// Welch interval of the absolute difference.
    pub welch: Option<WelchInterval>,
    /// The Welch interval divided by the baseline mean (relative scale;
    /// treats the baseline mean as fixed).
    pub relative_low: Option<f64>,
    pub relative_high: Option<f64>,
    pub bootstrap: Option<BootstrapInterval>,
    pub verdict: Verdict,
}

/// Number of bootstrap resamples used by [`compare`].
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Compares trials `b` against the baseline `a` at 95 % confidence.
pub fn compare(a: &[f64], b: &[f64]) -> Comparison {
    let level = 0.95;
    let welch = welch_interval(a, b, level);
    let (ma, mb) = (mean(a), mean(b));
    let (relative_low, relative_high) = match (&welch, ma != 0.0) {
        (Some(w), true) => (Some(w.low / ma.abs()), Some(w.high / ma.abs())),
        _ => (None, None),
    };
    let verdict = match &welch {
        None => Verdict::Insufficient,
        Some(w) if w.low > 0.0 => Verdict::Higher,
        Some(w) if w.high < 0.0 => Verdict::Lower,
        Some(_) => Verdict::NoSignificantDifference,
    };
    Comparison {
        n_a: a.len(),
        n_b: b.len(),
        mean_a: ma,
        mean_b: mb,
        relative: if ma != 0.0 { mb / ma - 1.0 } else { f64::NAN },
        welch,
        relative_low,
        relative_high,
        bootstrap: bootstrap_relative(a, b, level, BOOTSTRAP_RESAMPLES, 0x5eed_cafe),
        verdict,
    }
}

pub(crate) fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

impl Comparison {
    /// One line such as `2 processes: +24.0% mean latency, 95% CI [+18.0%,
    /// +30.0%]`, or `... : no significant difference (+1.2%, 95% CI [-3.0%,
    /// +5.4%])`.
    pub fn describe(&self, label: &str, metric: &str) -> String {
        match (self.verdict, self.relative_low, self.relative_high) {
            (Verdict::Insufficient, _, _) => format!(
                "{label}: {} {metric} (single trial per side: no confidence interval)",
                pct(self.relative)
            ),
            (Verdict::NoSignificantDifference, Some(lo), Some(hi)) => format!(
                "{label}: no significant difference in {metric} ({}, 95% CI [{}, {}])",
                pct(self.relative),
                pct(lo),
                pct(hi)
            ),
            (_, Some(lo), Some(hi)) => format!(
                "{label}: {} {metric}, 95% CI [{}, {}]",
                pct(self.relative),
                pct(lo),
                pct(hi)
            ),
            _ => format!("{label}: {metric} baseline is zero; no relative interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Two-sided 95 % critical values from a printed t table.
    #[test]
    fn t_quantiles_match_tables() {
        let table = [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (5.0, 2.571),
            (9.0, 2.262),
            (10.0, 2.228),
            (20.0, 2.086),
            (30.0, 2.042),
            (120.0, 1.980),
        ];
        for (df, t) in table {
            let q = student_t_quantile(0.975, df);
            assert!(close(q, t, 0.0006), "df {df}: {q} vs {t}");
        }
        // one-sided 99 %, df 7 = 2.998; 90 % two-sided df 15 = 1.753
        assert!(close(student_t_quantile(0.99, 7.0), 2.998, 0.0006));
        assert!(close(student_t_quantile(0.95, 15.0), 1.753, 0.0006));
        // large df tends to the normal 1.95996
        assert!(close(student_t_quantile(0.975, 1e7), 1.95996, 0.0001));
        // symmetry
        assert!(close(
            student_t_quantile(0.025, 4.0),
            -student_t_quantile(0.975, 4.0),
            1e-9
        ));
    }

    #[test]
    fn t_cdf_known_points() {
        assert!(close(student_t_cdf(0.0, 5.0), 0.5, 1e-12));
        // df = 1 is Cauchy: cdf(1) = 0.75
        assert!(close(student_t_cdf(1.0, 1.0), 0.75, 1e-10));
        // df = 2: cdf(t) = 1/2 + t / (2 sqrt(2 + t^2))
        let t: f64 = 1.5;
        let exact = 0.5 + t / (2.0 * (2.0 + t * t).sqrt());
        assert!(close(student_t_cdf(t, 2.0), exact, 1e-10));
    }

    /// Welch's degrees of freedom are fractional: the quantile still
    /// inverts the CDF there, and lies between its integer neighbours'.
    #[test]
    fn quantile_inverts_the_cdf_at_fractional_df() {
        for df in [1.5, 2.7, 9.9661, 33.3] {
            for p in [0.9, 0.975, 0.995] {
                let q = student_t_quantile(p, df);
                assert!(close(student_t_cdf(q, df), p, 1e-9), "df {df} p {p}");
                let (lo, hi) = (df.floor().max(1.0), df.ceil());
                assert!(q <= student_t_quantile(p, lo) && q >= student_t_quantile(p, hi));
            }
        }
    }

    /// Hand-computed Welch interval: a = {1,2,3,4,5}, b = {3,4,5,6,7,8,9}.
    #[test]
    fn welch_hand_computed() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        // var_a = 2.5, var_b = 4.666..; qa = 0.5, qb = 0.6667; se2 = 1.16667
        // df = 1.16667^2 / (0.25/4 + 0.44444/6) = 1.36111 / 0.136574 = 9.9661
        let w = welch_interval(&a, &b, 0.95).unwrap();
        assert!(close(w.diff, 3.0, 1e-12));
        assert!(close(w.se, (7.0f64 / 6.0).sqrt(), 1e-12));
        assert!(close(w.df, 9.9661, 0.0005), "{}", w.df);
        let t = student_t_quantile(0.975, w.df); // ≈ 2.2292
        assert!(close(t, 2.2292, 0.001), "{t}");
        assert!(close(w.low, 3.0 - t * w.se, 1e-12));
        assert!(close(w.low, 0.5922, 0.002), "{}", w.low);
        assert!(close(w.high, 5.4078, 0.002), "{}", w.high);
        assert!(welch_interval(&a[..1], &b, 0.95).is_none());
    }

    #[test]
    fn verdicts() {
        let a = [100.0, 102.0, 98.0, 101.0, 99.0];
        let slower = [124.0, 126.0, 122.0, 125.0, 123.0];
        let c = compare(&a, &slower);
        assert_eq!(c.verdict, Verdict::Higher);
        assert!(close(c.relative, 0.24, 1e-12));
        let lo = c.relative_low.unwrap();
        let hi = c.relative_high.unwrap();
        assert!(lo > 0.2 && hi < 0.28 && lo < 0.24 && hi > 0.24);
        let text = c.describe("2 processes", "mean latency");
        assert!(
            text.starts_with("2 processes: +24.0% mean latency, 95% CI [+"),
            "{text}"
        );
        let boot = c.bootstrap.unwrap();
        assert!(boot.low > 0.2 && boot.high < 0.28, "{boot:?}");

        let same = [101.0, 99.0, 103.0, 97.0, 100.0];
        let c = compare(&a, &same);
        assert_eq!(c.verdict, Verdict::NoSignificantDifference);
        assert!(c
            .describe("x", "mean latency")
            .contains("no significant difference"));

        let faster = [80.0, 81.0, 79.0];
        assert_eq!(compare(&a, &faster).verdict, Verdict::Lower);
        assert_eq!(compare(&a[..1], &faster).verdict, Verdict::Insufficient);
    }

    /// The bootstrap is reproducible for a given seed.
    #[test]
    fn bootstrap_is_deterministic() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 3.0, 4.0, 5.0];
        let x = bootstrap_relative(&a, &b, 0.95, 2000, 7).unwrap();
        let y = bootstrap_relative(&a, &b, 0.95, 2000, 7).unwrap();
        assert_eq!(x, y);
        assert!(close(x.relative, 0.4, 1e-12));
        assert!(x.low < 0.4 && x.high > 0.4);
    }
}

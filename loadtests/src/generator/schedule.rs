//! The open model's send schedule: when each request is *meant* to be sent.
//!
//! A schedule is a sequence of stages (`10s@100,10s@500`: a duration at a
//! constant rate) and an arrival process: `uniform` (evenly spaced) or
//! `poisson` (exponential gaps). Intended times are computed by inverting the
//! cumulative expected count Λ(t) = ∫ rate, so stage boundaries are exact
//! and the k-th uniform arrival sits at Λ⁻¹(k + phase). Each worker thread
//! owns its own [`Schedule`] with a share of the total rate (and a phase so
//! that the threads' uniform arrivals interleave evenly), which keeps the
//! schedule off any shared lock.
//!
//! Pure and deterministic for a given seed; it does not sleep or send.

use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How arrivals are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced at 1/rate.
    Uniform,
    /// A Poisson process: independent exponential gaps with mean 1/rate.
    Poisson,
}

/// A period of constant arrival rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Length in seconds (may be infinite for a schedule bounded by count).
    pub seconds: f64,
    /// Requests per second during the stage (total over all threads).
    pub rate: f64,
}

/// Parses `10s@100,30s@500,5s@0` into stages.
pub fn parse_stages(s: &str) -> anyhow::Result<Vec<Stage>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, r) = part
            .split_once('@')
            .with_context(|| format!("stage {part:?} is not DURATION@RATE, e.g. 10s@100"))?;
        let seconds = crate::units::parse_duration(d)?.as_secs_f64();
        let rate: f64 = r
            .trim()
            .parse()
            .with_context(|| format!("bad rate {r:?} in stage {part:?}"))?;
        if !(rate >= 0.0 && rate.is_finite()) {
            bail!("rate must be a non-negative number in stage {part:?}");
        }
        out.push(Stage { seconds, rate });
    }
    if out.is_empty() {
        bail!("no stages in {s:?}");
    }
    if out.iter().all(|s| s.rate == 0.0) {
        bail!("every stage has rate 0");
    }
    Ok(out)
}

/// Expected number of arrivals over the whole stage list (infinite for an
/// unbounded stage with a positive rate).
pub fn expected_total(stages: &[Stage]) -> f64 {
    stages
        .iter()
        .map(|s| {
            if s.rate > 0.0 {
                s.seconds * s.rate
            } else {
                0.0
            }
        })
        .sum()
}

/// One thread's stream of intended send times.
#[derive(Debug)]
pub struct Schedule {
    /// Stages with this thread's share of the rate.
    stages: Vec<Stage>,
    arrival: Arrival,
    /// Target of the next arrival on the Λ scale.
    next_target: f64,
    /// Cursor into `stages` and Λ / time at the start of that stage.
    stage: usize,
    stage_lambda: f64,
    stage_time: f64,
    /// Arrivals still allowed (count-bounded runs).
    remaining: Option<u64>,
    rng: SmallRng,
}

impl Schedule {
    /// A schedule carrying `share` (0..=1) of the `stages`' rate. `phase`
    /// in [0, 1) offsets uniform arrivals by that fraction of a gap; `limit`
    /// bounds the number of arrivals; `seed` drives Poisson gaps.
    pub fn new(
        stages: &[Stage],
        arrival: Arrival,
        share: f64,
        phase: f64,
        limit: Option<u64>,
        seed: u64,
    ) -> Self {
        let stages = stages
            .iter()
            .map(|s| Stage {
                seconds: s.seconds,
                rate: s.rate * share,
            })
            .collect();
        let mut rng = SmallRng::seed_from_u64(seed);
        let next_target = match arrival {
            Arrival::Uniform => phase,
            Arrival::Poisson => exp1(&mut rng),
        };
        Self {
            stages,
            arrival,
            next_target,
            stage: 0,
            stage_lambda: 0.0,
            stage_time: 0.0,
            remaining: limit,
            rng,
        }
    }

    /// The next intended send time as an offset from the start of the run,
    /// or `None` when the schedule is over.
    pub fn next_offset(&mut self) -> Option<Duration> {
        if self.remaining == Some(0) {
            return None;
        }
        let target = self.next_target;
        loop {
            let s = *self.stages.get(self.stage)?;
            let cap = if s.rate > 0.0 {
                s.rate * s.seconds
            } else {
                0.0
            };
            if s.rate > 0.0 && target < self.stage_lambda + cap {
                let t = self.stage_time + (target - self.stage_lambda) / s.rate;
                if !t.is_finite() || t > s.seconds + self.stage_time {
                    return None;
                }
                self.next_target += match self.arrival {
                    Arrival::Uniform => 1.0,
                    Arrival::Poisson => exp1(&mut self.rng),
                };
                if let Some(r) = &mut self.remaining {
                    *r -= 1;
                }
                return Some(Duration::from_secs_f64(t));
            }
            self.stage_lambda += cap;
            self.stage_time += s.seconds;
            self.stage += 1;
        }
    }
}

/// An exponential variate with mean 1.
fn exp1(rng: &mut SmallRng) -> f64 {
    // 1 - U is in (0, 1], so the log is finite.
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut s: Schedule) -> Vec<f64> {
        std::iter::from_fn(|| s.next_offset())
            .map(|d| d.as_secs_f64())
            .collect()
    }

    fn one_stage(seconds: f64, rate: f64) -> [Stage; 1] {
        [Stage { seconds, rate }]
    }

    #[test]
    fn uniform_single_stage() {
        let st = one_stage(1.0, 10.0);
        let t = all(Schedule::new(&st, Arrival::Uniform, 1.0, 0.0, None, 1));
        assert_eq!(t.len(), 10, "0.0, 0.1, ..., 0.9: {t:?}");
        for (k, v) in t.iter().enumerate() {
            assert!((v - k as f64 * 0.1).abs() < 1e-9);
        }
    }

    /// Two threads with half the rate and phases 0 and 0.5 interleave into
    /// the full uniform schedule.
    #[test]
    fn threads_interleave() {
        let st = one_stage(1.0, 100.0);
        let mut a = all(Schedule::new(&st, Arrival::Uniform, 0.5, 0.0, None, 1));
        let b = all(Schedule::new(&st, Arrival::Uniform, 0.5, 0.5, None, 2));
        a.extend(b);
        a.sort_by(f64::total_cmp);
        assert_eq!(a.len(), 100);
        for (k, v) in a.iter().enumerate() {
            assert!((v - k as f64 * 0.01).abs() < 1e-9, "{k}: {v}");
        }
    }

    #[test]
    fn stages_change_rate() {
        let st = parse_stages("1s@10, 1s@0, 1s@100").unwrap();
        let t = all(Schedule::new(&st, Arrival::Uniform, 1.0, 0.5, None, 1));
        let first = t.iter().filter(|v| **v < 1.0).count();
        let gap = t.iter().filter(|v| **v > 1.0 && **v < 2.0).count();
        let last = t.iter().filter(|v| **v >= 2.0).count();
        assert_eq!((first, gap, last), (10, 0, 100));
        assert_eq!(expected_total(&st), 110.0);
        assert!(parse_stages("10s").is_err());
        assert!(parse_stages("1s@0").is_err());
        assert!(parse_stages("1s@-3").is_err());
    }

    #[test]
    fn limit_bounds_count() {
        let st = one_stage(f64::INFINITY, 1000.0);
        let t = all(Schedule::new(&st, Arrival::Poisson, 1.0, 0.0, Some(500), 3));
        assert_eq!(t.len(), 500);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
    }

    /// Poisson arrivals at 1000/s over 20 s: count within 5 sigma of 20000,
    /// gaps with a coefficient of variation near 1.
    #[test]
    fn poisson_statistics() {
        let st = one_stage(20.0, 1000.0);
        let t = all(Schedule::new(&st, Arrival::Poisson, 1.0, 0.0, None, 42));
        let n = t.len() as f64;
        assert!((n - 20_000.0).abs() < 5.0 * 20_000f64.sqrt(), "{n}");
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - m) * (g - m)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / m;
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        // deterministic for a seed
        let again = all(Schedule::new(&st, Arrival::Poisson, 1.0, 0.0, None, 42));
        assert_eq!(t, again);
    }
}

//! What a run is asked to do ([`RunConfig`]: address, threads, VUs, stop
//! condition, load model, timeout, seed, progress) and what it hands back
//! raw ([`RunOutcome`]). Plain data: nothing here runs, measures or judges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::generator::schedule::{Arrival, Stage};
use crate::stats::RunRecorder;

/// A request sent more than this after its intended time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(5);
/// Period of the per-thread event-loop lag probe.
pub const LAG_PROBE_PERIOD: Duration = Duration::from_millis(20);
/// Setup requests (logins) in flight at once per thread.
pub const SETUP_CONCURRENCY_PER_THREAD: usize = 32;

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Stop starting requests after this long (in-flight ones finish).
    Duration(Duration),
    /// Send exactly this many requests in total.
    Requests(u64),
}

/// The load model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Each VU sends when its previous request is answered.
    Closed {
        /// Spread VU starts evenly over this long.
        ramp: Duration,
        /// Or start this many VUs per second (Locust's spawn rate).
        spawn_rate: Option<f64>,
    },
    /// Requests are sent on a schedule, whatever the answers do.
    Open {
        /// Rate stages (one stage for a fixed rate). With a duration stop
        /// the last stage is cut at the duration.
        stages: Vec<Stage>,
        arrival: Arrival,
        /// Requests later than this when a connection frees up are dropped.
        max_lag: Duration,
    },
}

/// Everything a run needs besides the scenario.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub addr: SocketAddr,
    /// Worker threads (at most one per VU).
    pub threads: usize,
    /// Virtual users, each with its own keep-alive connection.
    pub concurrency: usize,
    pub stop: Stop,
    pub model: Model,
    /// Per-request timeout (connect, send and full response).
    pub timeout: Duration,
    /// Seed of the VUs' random choices (think time, journey tasks, Poisson).
    pub seed: u64,
    /// Where the per-second progress of the measured phase goes.
    pub progress: Progress,
    /// Closed model with a ramp or spawn rate: open the measured window
    /// this long after the last VU has started (`Some(0)`: as it starts).
    /// What completes before is recorded with the setup, not measured, and
    /// a duration stop counts from the window's opening. `None`: measure
    /// from the first VU's start.
    pub settle: Option<Duration>,
}

/// The engine's progress once a second during the measured phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgressTick {
    /// Since the start of the measured phase.
    pub elapsed: Duration,
    /// Requests completed so far (all threads).
    pub requests: u64,
    /// Requests completed per second over the last tick.
    pub rate: f64,
}

/// A callback that receives the engine's progress ticks.
pub type ProgressHook = Arc<dyn Fn(&ProgressTick) + Send + Sync>;

/// Where the engine's per-second progress goes.
#[derive(Clone, Default)]
pub enum Progress {
    /// Nowhere.
    #[default]
    Off,
    /// The engine's own line on stderr, redrawn with `\r` (`quizload run`).
    Line,
    /// A caller's callback, e.g. the experiment runner's progress bar.
    Hook(ProgressHook),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Off => "Off",
            Progress::Line => "Line",
            Progress::Hook(_) => "Hook",
        })
    }
}

impl RunConfig {
    /// When a VU starts, after the run's start (ramp or spawn rate).
    pub fn start_offset(&self, vu: usize) -> Duration {
        match &self.model {
            Model::Closed {
                spawn_rate: Some(r),
                ..
            } if *r > 0.0 => Duration::from_secs_f64(vu as f64 / r),
            Model::Closed { ramp, .. } if !ramp.is_zero() => {
                ramp.mul_f64(vu as f64 / self.concurrency.max(1) as f64)
            }
            _ => Duration::ZERO,
        }
    }

    /// Whether VUs start one after another (closed model with a ramp or
    /// a spawn rate).
    pub fn ramped(&self) -> bool {
        matches!(
            &self.model,
            Model::Closed { ramp, spawn_rate } if !ramp.is_zero() || spawn_rate.is_some()
        )
    }

    /// How long after the run's start the measured window opens: the last
    /// VU's start plus `settle` for a ramped run with `settle`, else zero.
    pub fn window_offset(&self) -> Duration {
        match self.settle {
            Some(s) if self.ramped() => self.start_offset(self.concurrency.saturating_sub(1)) + s,
            _ => Duration::ZERO,
        }
    }

    /// Threads actually used: at least 1, at most one per VU.
    pub fn effective_threads(&self) -> usize {
        self.threads.clamp(1, self.concurrency.max(1))
    }
}

/// Raw result of a run, before it is turned into a report.
#[derive(Debug)]
pub struct RunOutcome {
    /// Measured phase, merged over threads.
    pub recorder: RunRecorder,
    /// Setup phase (logins), merged over threads.
    pub setup: RunRecorder,
    pub setup_elapsed: Duration,
    /// From the start of the measured phase to the last thread's end.
    pub elapsed: Duration,
    pub threads: usize,
    /// CPU time of the worker threads during the measured phase.
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// Event-loop lag probe, all threads, µs.
    pub loop_lag: Histogram<u64>,
    /// Fraction of the machine's CPUs busy during the measured phase.
    pub machine_busy: Option<f64>,
    pub max_rss_bytes: Option<u64>,
    /// VUs that still had setup requests failing when setup gave up.
    pub setup_failures: u64,
}

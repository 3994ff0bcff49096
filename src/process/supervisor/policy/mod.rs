//! Every decision the supervisor makes, as plain functions and small state
//! machines over plain data and the `Instant`s the caller passes in: no
//! process, descriptor, clock read, random draw or log line here, so each
//! rule has a unit test that runs in microseconds.
//!
//! The poll loop ([`super`]) reads events (signals, notifications, exits),
//! asks these rules what to do, and does it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::metrics::RestartReason;
use crate::process::budget::EXIT_BUDGET_REFUSED;
use crate::process::EXIT_BOOT_FAILURE;

/// Crash-loop breaker: this many crashes within the window stop the supervisor.
pub const CRASH_LIMIT: usize = 10;
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Consecutive workers dying before they were ever ready: a boot failure.
pub const BOOT_FAILURE_LIMIT: u32 = 3;
/// A worker that ran this long before crashing is respawned at once.
pub const STABLE_RUN: Duration = Duration::from_secs(10);
/// Longest respawn back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker not ready this long after it was started is killed (at least;
/// a longer HEARTBEAT_TIMEOUT_SECS raises it).
pub const MIN_BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// A draining worker is killed this long after the graceful timeout.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long a fast stop (SIGINT, SIGQUIT) waits before killing.
pub const FAST_STOP: Duration = Duration::from_secs(1);
/// How often the resident memory of each worker is read (MAX_RSS_MB).
pub const RSS_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait before a failed replacement (recycling) is tried again.
pub const MAX_REPLACE_RETRY: Duration = Duration::from_secs(60);
/// Exit code of a child whose exec failed.
pub const EXIT_EXEC_FAILED: i32 = 127;

/// Why the supervisor killed a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillCause {
    Heartbeat,
    BootTimeout,
    DrainTimeout,
}

/// The restart counter a worker's unrequested death is counted under.
pub fn restart_reason(killed: Option<KillCause>) -> RestartReason {
    match killed {
        Some(KillCause::Heartbeat) => RestartReason::Heartbeat,
        _ => RestartReason::Crash,
    }
}

/// Respawn back-off after `crashes` consecutive crashes of a slot: none
/// for the first, then 100 ms doubling up to [`MAX_BACKOFF`].
pub fn backoff(crashes: u32) -> Duration {
    if crashes == 0 {
        Duration::ZERO
    } else {
        (Duration::from_millis(100) * (1u32 << (crashes - 1).min(10))).min(MAX_BACKOFF)
    }
}

/// Consecutive crashes of one slot, for its respawn back-off.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CrashStreak(u32);

impl CrashStreak {
    /// The slot's worker died at `now`, ready since `ready_at` (None: it
    /// never was). A stable run ([`STABLE_RUN`]) forgets earlier crashes.
    /// Returns how long to wait before respawning.
    pub fn on_death(&mut self, ready_at: Option<Instant>, now: Instant) -> Duration {
        if ready_at.is_some_and(|t| now.duration_since(t) >= STABLE_RUN) {
            self.0 = 0;
        }
        let wait = backoff(self.0);
        self.0 += 1;
        wait
    }
}

/// The crash-loop breaker: crashes of every slot within a sliding window.
#[derive(Debug, Default)]
pub struct CrashWindow(VecDeque<Instant>);

impl CrashWindow {
    /// Records a crash at `now`; true when the window now holds
    /// [`CRASH_LIMIT`] crashes (a crash loop: stop).
    pub fn record(&mut self, now: Instant) -> bool {
        self.0.push_back(now);
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            self.0.pop_front();
        }
        self.0.len() >= CRASH_LIMIT
    }
}

/// Why a worker that exited before it was ready can never boot (stop at
/// once instead of respawning), from its exit code.
pub fn cannot_boot(code: Option<i32>) -> Option<&'static str> {
    match code {
        Some(EXIT_BOOT_FAILURE) => Some("it reported a boot failure (see its error above)"),
        Some(EXIT_EXEC_FAILED) => Some("the binary could not be executed"),
        Some(EXIT_BUDGET_REFUSED) => {
            Some("its connection budget check refused (CONNECTION_BUDGET=strict; numbers above)")
        }
        _ => None,
    }
}

/// Workers in a row that died before they were ready.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BootFailures(u32);

impl BootFailures {
    /// A worker died before it was ready; true at [`BOOT_FAILURE_LIMIT`]
    /// in a row (stop).
    pub fn died_unready(&mut self) -> bool {
        self.0 += 1;
        self.0 >= BOOT_FAILURE_LIMIT
    }

    /// A worker became ready: the count starts again.
    pub fn ready(&mut self) {
        self.0 = 0;
    }
}

/// How long a worker may take to become ready: [`MIN_BOOT_TIMEOUT`], or the
/// heartbeat timeout when that is longer.
pub fn boot_timeout(heartbeat: Option<Duration>) -> Duration {
    heartbeat.map_or(MIN_BOOT_TIMEOUT, |h| h.max(MIN_BOOT_TIMEOUT))
}

/// What a worker has reported through its pipe: which of its event loops
/// are ready, and when each last ticked.
#[derive(Debug, Clone)]
pub struct Reports {
    spawned: Instant,
    ready_loops: Vec<bool>,
    beats: Vec<Instant>,
    ready_at: Option<Instant>,
}

impl Reports {
    /// A worker with `loops` event loops, started at `spawned` (which
    /// counts as every loop's first tick).
    pub fn new(loops: usize, spawned: Instant) -> Reports {
        Reports {
            spawned,
            ready_loops: vec![false; loops],
            beats: vec![spawned; loops],
            ready_at: None,
        }
    }

    /// Records one report (`READY` when `ready`, else a heartbeat) from
    /// event loop `rt` at `now`. True when it made the worker ready: every
    /// loop has now reported `READY`. Reports from unknown loops are ignored.
    pub fn record(&mut self, ready: bool, rt: usize, now: Instant) -> bool {
        if rt >= self.beats.len() {
            return false;
        }
        self.beats[rt] = now;
        if ready && !self.ready_loops[rt] {
            self.ready_loops[rt] = true;
            if self.ready_at.is_none() && self.ready_loops.iter().all(|r| *r) {
                self.ready_at = Some(now);
                return true;
            }
        }
        false
    }

    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    pub fn ready_at(&self) -> Option<Instant> {
        self.ready_at
    }

    pub fn is_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// Milliseconds from spawn to ready (0 while not ready).
    pub fn boot_ms(&self) -> u64 {
        self.ready_at
            .map_or(0, |t| t.duration_since(self.spawned).as_millis() as u64)
    }

    /// Not ready, and started more than `timeout` before `now`.
    pub fn boot_overdue(&self, now: Instant, timeout: Duration) -> bool {
        !self.is_ready() && now.duration_since(self.spawned) > timeout
    }

    /// The event loop silent the longest, with its silence, when that is
    /// more than `limit` (gunicorn's `--timeout`: the loop is blocked or hung).
    pub fn silent_loop(&self, now: Instant, limit: Duration) -> Option<(usize, Duration)> {
        let (rt, last) = self
            .beats
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| now.duration_since(**t))?;
        let silent = now.duration_since(*last);
        (silent > limit).then_some((rt, silent))
    }
}

/// The recycling limits (`MAX_REQUESTS`, `MAX_REQUESTS_JITTER`,
/// `MAX_LIFETIME_SECS`, `MAX_RSS_MB`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecycleLimits {
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub max_lifetime: Option<Duration>,
    /// 0 = no memory limit.
    pub max_rss_bytes: u64,
}

/// The random parts of a worker's limits, drawn by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    /// Extra requests, in `0..=max_requests_jitter`.
    pub requests: u64,
    /// In `[0, 1)`: the lifetime is lengthened by up to 10%, so workers
    /// started together do not all recycle at the same moment.
    pub lifetime: f64,
}

/// Why a worker is due for replacement, with what the log line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    MaxRequests { served: u64, limit: u64 },
    Lifetime,
    Memory { rss: u64 },
}

impl Due {
    pub fn reason(self) -> RestartReason {
        match self {
            Due::MaxRequests { .. } => RestartReason::MaxRequests,
            Due::Lifetime => RestartReason::Lifetime,
            Due::Memory { .. } => RestartReason::Memory,
        }
    }
}

/// One worker's recycling state, set when it becomes its slot's worker.
#[derive(Debug, Clone, Default)]
pub struct Recycle {
    requests_base: u64,
    requests_limit: Option<u64>,
    retire_at: Option<Instant>,
    rss_checked: Option<Instant>,
    rss_exempt: bool,
}

impl Recycle {
    /// The limits of a worker promoted at `now`, when its slot had served
    /// `requests_now` requests and its resident memory was `rss_now`. A
    /// worker that starts at or above the memory limit is exempt from it
    /// (recycling it would only start another such worker).
    pub fn new(
        limits: &RecycleLimits,
        jitter: Jitter,
        now: Instant,
        requests_now: u64,
        rss_now: Option<u64>,
    ) -> Recycle {
        Recycle {
            requests_base: requests_now,
            requests_limit: (limits.max_requests > 0)
                .then(|| limits.max_requests + jitter.requests),
            retire_at: limits
                .max_lifetime
                .map(|l| now + l.mul_f64(1.0 + jitter.lifetime * 0.1)),
            rss_checked: None,
            rss_exempt: limits.max_rss_bytes > 0
                && rss_now.is_some_and(|rss| rss >= limits.max_rss_bytes),
        }
    }

    /// True when the memory limit does not apply to this worker.
    pub fn rss_exempt(&self) -> bool {
        self.rss_exempt
    }

    /// Whether the worker is due for replacement at `now`, its slot having
    /// served `requests` in all. Requests first, then lifetime, then memory
    /// (`rss` is read at most once per [`RSS_PERIOD`]). Answers `Some` once:
    /// the limits are then cleared, and a replacement that fails is retried
    /// by its own timer ([`replace_retry_wait`]).
    pub fn due(
        &mut self,
        limits: &RecycleLimits,
        requests: u64,
        now: Instant,
        rss: impl FnOnce() -> Option<u64>,
    ) -> Option<Due> {
        let mut due = None;
        if let Some(limit) = self.requests_limit {
            let served = requests.saturating_sub(self.requests_base);
            if served >= limit {
                due = Some(Due::MaxRequests { served, limit });
            }
        }
        if due.is_none() && self.retire_at.is_some_and(|t| now >= t) {
            due = Some(Due::Lifetime);
        }
        if due.is_none()
            && limits.max_rss_bytes > 0
            && !self.rss_exempt
            && self
                .rss_checked
                .is_none_or(|t| now.duration_since(t) >= RSS_PERIOD)
        {
            self.rss_checked = Some(now);
            if let Some(rss) = rss().filter(|r| *r > limits.max_rss_bytes) {
                due = Some(Due::Memory { rss });
            }
        }
        if due.is_some() {
            self.requests_limit = None;
            self.retire_at = None;
            self.rss_exempt = true;
        }
        due
    }
}

/// Wait before retrying a replacement that failed `failures` times in a
/// row (at least once): 2 s doubling, capped at [`MAX_REPLACE_RETRY`].
pub fn replace_retry_wait(failures: u32) -> Duration {
    (Duration::from_secs(1) * (1u32 << failures.min(6))).min(MAX_REPLACE_RETRY)
}

/// What the supervisor knows of a slot when it scales or rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotView {
    /// Removed by SIGTTOU.
    pub retired: bool,
    /// A worker or a replacement is running in it.
    pub occupied: bool,
}

/// SIGHUP: the slots to restart, one at a time, in order.
pub fn rolling_order(slots: &[SlotView]) -> VecDeque<usize> {
    (0..slots.len()).filter(|i| !slots[*i].retired).collect()
}

/// What the rolling restart does next for the slot at its front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingStep {
    /// The slot was removed: drop it from the order.
    Skip,
    /// A replacement, or the slot's worker, is still booting.
    Wait,
    /// No worker (being respawned): that start executes the binary; done
    /// with this slot.
    ExecOnRespawn,
    /// Start a replacement from the binary; the slot is done once it is ready.
    Replace,
}

/// The next rolling-restart step for a slot. `current` is None without a
/// worker, else whether that worker is ready.
pub fn rolling_step(retired: bool, replacing: bool, current: Option<bool>) -> RollingStep {
    if retired {
        return RollingStep::Skip;
    }
    if replacing {
        return RollingStep::Wait;
    }
    match current {
        None => RollingStep::ExecOnRespawn,
        Some(false) => RollingStep::Wait,
        Some(true) => RollingStep::Replace,
    }
}

/// Where SIGTTIN puts its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleUp {
    /// A removed slot that nothing serves any more comes back.
    Reuse(usize),
    /// A new slot at the end.
    Add,
}

/// SIGTTIN: the first removed slot that no process still serves, else a new one.
pub fn scale_up(slots: &[SlotView]) -> ScaleUp {
    slots
        .iter()
        .position(|s| s.retired && !s.occupied)
        .map_or(ScaleUp::Add, ScaleUp::Reuse)
}

/// SIGTTOU: the last active slot, unless it is the only one (None: one
/// worker is the minimum).
pub fn scale_down(slots: &[SlotView]) -> Option<usize> {
    if slots.iter().filter(|s| !s.retired).count() <= 1 {
        return None;
    }
    slots.iter().rposition(|s| !s.retired)
}

/// When a worker told at `now` to drain is killed.
pub fn drain_deadline(now: Instant, graceful: Duration) -> Instant {
    now + graceful + DRAIN_GRACE
}

/// True when a draining worker has passed its deadline.
pub fn drain_overdue(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// When the supervisor stops waiting for its workers and kills the rest:
/// after the drain for SIGTERM, after [`FAST_STOP`] for a fast stop.
pub fn stop_deadline(now: Instant, graceful: Duration, drain: bool) -> Instant {
    if drain {
        drain_deadline(now, graceful)
    } else {
        now + FAST_STOP
    }
}

#[cfg(test)]
mod tests;

//! The pre-fork supervisor: a small synchronous loop (a signalfd and the
//! workers' notification pipes in one `poll`, `waitpid`, synchronous
//! logging) that starts workers, replaces them and forwards signals. It
//! never starts a runtime or a second thread, because it forks again for
//! every worker and tokio does not survive a fork; it runs no query either
//! (worker 0 checks the connection budget; under `CONNECTION_BUDGET=strict`
//! the other workers start once it is ready).
//!
//! Three parts:
//! - [`spawn`]: starting a worker and the child's side of the fork;
//! - [`policy`]: every decision (back-off, crash loop, boot failures and
//!   timeouts, recycling, rolling restart, scaling, drain deadlines) as
//!   plain functions over plain data, each unit-tested;
//! - this module and [`events`]: the poll loop, which reads signals,
//!   notifications and exits, asks the policy, and applies its answers.
//!
//! Listening sockets are created here, before any fork:
//! - `LISTENER=reuseport`: one SO_REUSEPORT socket per worker slot (per
//!   event loop with thread-per-core). Every worker of a slot, and its
//!   replacement, serves that slot's socket, which stays open in the
//!   supervisor: a respawn, a recycle or a rolling restart never closes a
//!   listener and never drops a queued connection. Only removing a slot
//!   (SIGTTOU) closes its socket; the kernel then resets the connections
//!   still queued on it, unless `net.ipv4.tcp_migrate_req=1` lets it move
//!   them to another socket of the group.
//! - `LISTENER=shared`: one socket every worker accepts from.
//!
//! Replacing a worker (SIGHUP, `MAX_REQUESTS`, `MAX_LIFETIME_SECS`,
//! `MAX_RSS_MB`): the replacement is started next to the running worker and
//! serves the same socket; only once it has reported `READY` is the old one
//! sent SIGTERM, so it stops accepting, finishes what it has in flight and
//! exits. A replacement that fails to boot leaves the old worker serving
//! (SIGHUP: the rolling restart is abandoned; recycling: retried later with
//! back-off).
//!
//! A worker that dies is respawned, at once after a stable run, then with
//! exponential back-off; too many crashes in a window (a crash loop), three
//! workers in a row dying before they were ready, or a worker that reports
//! a boot failure (bad configuration, a refused connection budget, a binary
//! that cannot be executed) stop the supervisor with a clear message.
//!
//! Signals: SIGTERM drains every worker within the graceful timeout and
//! exits 0; SIGINT/SIGQUIT stop fast; SIGHUP restarts the workers one at a
//! time from the binary's path; SIGTTIN/SIGTTOU add or remove a worker.

mod events;
pub mod policy;
mod spawn;

use std::collections::VecDeque;
use std::ffi::CString;
use std::net::TcpListener;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use self::policy::{BootFailures, CrashStreak, CrashWindow, KillCause, Recycle, Reports};
use self::spawn::cstring;
use super::notify::Reader;
use super::{listeners, Shape};
use crate::config::{BudgetMode, Config, ListenerMode};
use crate::metrics::{Metrics, RestartReason, MAX_SLOTS};

/// Wake-up period of the loop for its timers.
const TICK: Duration = Duration::from_millis(50);

/// One worker process.
struct Proc {
    pid: Pid,
    notify: Reader,
    exec: bool,
    /// READY and heartbeats received from its event loops.
    reports: Reports,
    killed: Option<KillCause>,
    /// Recycling limits, set when the process becomes its slot's worker.
    recycle: Recycle,
    /// When draining: the time after which it is killed.
    drain_deadline: Option<Instant>,
}

impl Proc {
    fn is_ready(&self) -> bool {
        self.reports.is_ready()
    }

    fn kill(&mut self, signal: Signal, cause: Option<KillCause>) {
        if cause.is_some() {
            self.killed = cause;
        }
        let _ = kill(self.pid, signal);
    }
}

struct Successor {
    proc: Proc,
    reason: RestartReason,
}

struct WorkerSlot {
    /// This slot's sockets (reuseport), or clones of the shared one.
    listeners: Vec<TcpListener>,
    /// The worker serving the slot (ready or booting).
    current: Option<Proc>,
    /// A replacement booting next to `current`.
    successor: Option<Successor>,
    /// Consecutive crashes, for the back-off.
    crashes: CrashStreak,
    respawn_at: Option<Instant>,
    /// A failed replacement to try again.
    replace_retry: Option<(Instant, RestartReason)>,
    replace_failures: u32,
    /// A SIGHUP found no worker to replace: its next start executes the binary.
    force_exec: bool,
    /// Removed by SIGTTOU: not respawned.
    retired: bool,
}

impl WorkerSlot {
    fn new(listeners: Vec<TcpListener>) -> WorkerSlot {
        WorkerSlot {
            listeners,
            current: None,
            successor: None,
            crashes: CrashStreak::default(),
            respawn_at: None,
            replace_retry: None,
            replace_failures: 0,
            force_exec: false,
            retired: false,
        }
    }

    fn view(&self) -> policy::SlotView {
        policy::SlotView {
            retired: self.retired,
            occupied: self.current.is_some() || self.successor.is_some(),
        }
    }
}

/// Where a process is in the supervisor's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Current(usize),
    Successor(usize),
    Draining(usize),
}

struct Supervisor {
    cfg: Arc<Config>,
    shape: Shape,
    metrics: &'static Metrics,
    metrics_fd: Option<OwnedFd>,
    exe: CString,
    args: Vec<CString>,
    sfd: Option<SignalFd>,
    child_mask: SigSet,
    slots: Vec<WorkerSlot>,
    /// Replaced or removed workers finishing their requests: (slot, process).
    draining: Vec<(usize, Proc)>,
    shared: Option<TcpListener>,
    crash_window: CrashWindow,
    boot_failures: BootFailures,
    stopping: Option<Instant>,
    /// Why the supervisor stops with an error, once every worker has exited.
    fatal: Option<anyhow::Error>,
    /// Slots still to restart for a SIGHUP, one at a time.
    rolling: VecDeque<usize>,
    parent: Pid,
    /// The start-up checks (budget, exposure) are still to run: worker 0 of
    /// the first generation runs them.
    budget_pending: bool,
    /// `CONNECTION_BUDGET=strict`: the other slots start once worker 0 is
    /// ready, i.e. once its budget check has passed, so that no pool has
    /// taken PostgreSQL's connections before the check gets one.
    held_for_budget: bool,
}

pub fn run(cfg: Arc<Config>, shape: Shape) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot resolve the path of this binary: {e}"))?;
    let (metrics, metrics_fd) =
        Metrics::new_shared_memfd().map_err(|e| anyhow::anyhow!("shared metrics table: {e}"))?;
    let mut sup = Supervisor {
        exe: cstring(exe.as_os_str().as_bytes())?,
        args: std::env::args_os()
            .map(|a| cstring(a.as_bytes()))
            .collect::<anyhow::Result<_>>()?,
        metrics,
        metrics_fd: Some(metrics_fd),
        sfd: None,
        child_mask: SigSet::empty(),
        slots: Vec::new(),
        draining: Vec::new(),
        shared: None,
        crash_window: CrashWindow::default(),
        boot_failures: BootFailures::default(),
        stopping: None,
        fatal: None,
        rolling: VecDeque::new(),
        parent: nix::unistd::getpid(),
        budget_pending: true,
        held_for_budget: false,
        cfg,
        shape,
    };
    if sup.cfg.listener == ListenerMode::Shared {
        let l = listeners::bind(sup.cfg.bind, false, sup.cfg.listen_backlog)?;
        super::announce(&l);
        sup.shared = Some(l);
    }
    for _ in 0..sup.shape.processes {
        sup.add_slot()?;
    }
    if sup.shared.is_none() {
        if let Some(first) = sup.slots.first().and_then(|s| s.listeners.first()) {
            super::announce(first);
        }
    }

    // Signals arrive through a signalfd, never through handlers.
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        mask.add(s);
    }
    sup.child_mask = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
    sup.sfd = Some(SignalFd::with_flags(
        &mask,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )?);

    let first = if sup.cfg.connection_budget == BudgetMode::Strict {
        1
    } else {
        sup.slots.len()
    };
    sup.held_for_budget = first < sup.slots.len();
    for i in 0..first {
        sup.start_current(i)?;
    }
    tracing::info!(
        pid = sup.parent.as_raw(),
        workers = sup.slots.len(),
        exe = %exe.display(),
        spawn = ?sup.cfg.worker_spawn,
        "supervisor running"
    );
    sup.run_loop()
}

impl Supervisor {
    fn run_loop(&mut self) -> anyhow::Result<()> {
        loop {
            self.wait_for_events();
            self.read_signals()?;
            self.read_notifications();
            self.reap()?;
            if let Some(deadline) = self.stopping {
                if self.live() == 0 {
                    return self.finish();
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        workers = self.live(),
                        "stop deadline passed; killing the remaining workers"
                    );
                    self.for_each_proc(|p| p.kill(Signal::SIGKILL, None));
                    self.reap_blocking(Duration::from_secs(2));
                    return self.finish();
                }
                continue;
            }
            let now = Instant::now();
            self.respawn_due(now);
            self.check_liveness(now);
            self.check_recycling(now);
            self.advance_rolling();
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        match self.fatal.take() {
            Some(e) => Err(e),
            None => {
                tracing::info!("all workers stopped; supervisor exiting");
                Ok(())
            }
        }
    }

    /// Sleeps until a signal, a notification or the next tick.
    fn wait_for_events(&self) {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(1 + 2 * self.slots.len());
        if let Some(sfd) = &self.sfd {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        for slot in &self.slots {
            for p in slot
                .current
                .iter()
                .chain(slot.successor.as_ref().map(|s| &s.proc))
            {
                if let Some(fd) = p.notify.fd() {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                }
            }
        }
        for (_, p) in &self.draining {
            if let Some(fd) = p.notify.fd() {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        let _ = poll(&mut fds, PollTimeout::from(TICK.as_millis() as u16));
    }

    fn live(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.current.is_some() as usize + s.successor.is_some() as usize)
            .sum::<usize>()
            + self.draining.len()
    }

    fn for_each_proc(&mut self, mut f: impl FnMut(&mut Proc)) {
        for slot in &mut self.slots {
            if let Some(p) = &mut slot.current {
                f(p);
            }
            if let Some(s) = &mut slot.successor {
                f(&mut s.proc);
            }
        }
        for (_, p) in &mut self.draining {
            f(p);
        }
    }

    fn slot_views(&self) -> Vec<policy::SlotView> {
        self.slots.iter().map(WorkerSlot::view).collect()
    }

    fn add_slot(&mut self) -> anyhow::Result<usize> {
        let index = self.slots.len();
        if (index + 1) * self.shape.runtimes > MAX_SLOTS {
            anyhow::bail!("no more worker slots (at most {MAX_SLOTS} event loops)");
        }
        let listeners = self.bind_slot()?;
        self.slots.push(WorkerSlot::new(listeners));
        Ok(index)
    }

    fn bind_slot(&self) -> anyhow::Result<Vec<TcpListener>> {
        Ok(match &self.shared {
            Some(shared) => (0..self.shape.runtimes)
                .map(|_| shared.try_clone())
                .collect::<std::io::Result<Vec<_>>>()?,
            None => {
                // The first slot may resolve port 0; later ones reuse it.
                let addr = self
                    .slots
                    .iter()
                    .flat_map(|s| s.listeners.first())
                    .find_map(|l| l.local_addr().ok())
                    .unwrap_or(self.cfg.bind);
                listeners::bind_group(addr, self.shape.runtimes, true, self.cfg.listen_backlog)?
            }
        })
    }

    fn metrics_base(&self, slot: usize) -> usize {
        slot * self.shape.runtimes
    }

    /// The shared-table slots of worker slot `slot` (one per event loop).
    fn metrics_slots(&self, slot: usize) -> impl Iterator<Item = &'static crate::metrics::Slot> {
        let metrics = self.metrics;
        let base = self.metrics_base(slot);
        (base..base + self.shape.runtimes).map(move |i| metrics.slot(i))
    }

    fn slot_requests(&self, slot: usize) -> u64 {
        self.metrics_slots(slot).map(|s| s.requests()).sum()
    }

    fn respawn_due(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.current.is_none()
                && s.successor.is_none()
                && !s.retired
                && s.respawn_at.is_some_and(|t| t <= now)
            {
                if let Err(e) = self.start_current(i) {
                    tracing::error!(worker = i, error = %format!("{e:#}"), "could not start a worker; retrying");
                    self.slots[i].respawn_at = Some(now + Duration::from_secs(1));
                }
            }
        }
    }

    /// Heartbeats (gunicorn's `--timeout`), boot timeouts, drain deadlines.
    fn check_liveness(&mut self, now: Instant) {
        let heartbeat = self.cfg.heartbeat_timeout;
        let boot_timeout = policy::boot_timeout(heartbeat);
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let procs = slot
                .current
                .iter_mut()
                .chain(slot.successor.as_mut().map(|s| &mut s.proc));
            for p in procs {
                if p.killed.is_some() {
                    continue;
                }
                if !p.is_ready() {
                    if p.reports.boot_overdue(now, boot_timeout) {
                        tracing::error!(
                            worker = i,
                            pid = p.pid.as_raw(),
                            boot_timeout_secs = boot_timeout.as_secs(),
                            "worker not ready in time: killing it"
                        );
                        p.kill(Signal::SIGKILL, Some(KillCause::BootTimeout));
                    }
                    continue;
                }
                let Some(limit) = heartbeat else { continue };
                if let Some((rt, silent)) = p.reports.silent_loop(now, limit) {
                    tracing::error!(
                        worker = i,
                        pid = p.pid.as_raw(),
                        event_loop = rt,
                        silent_ms = silent.as_millis() as u64,
                        heartbeat_timeout_secs = limit.as_secs(),
                        "worker's event loop stopped ticking (blocked or hung): killing it"
                    );
                    p.kill(Signal::SIGKILL, Some(KillCause::Heartbeat));
                }
            }
        }
        for (i, p) in &mut self.draining {
            if p.killed.is_none() && policy::drain_overdue(p.drain_deadline, now) {
                tracing::warn!(
                    worker = *i,
                    pid = p.pid.as_raw(),
                    "draining worker passed the graceful timeout: killing it"
                );
                p.kill(Signal::SIGKILL, Some(KillCause::DrainTimeout));
            }
        }
    }

    fn recycle_limits(&self) -> policy::RecycleLimits {
        policy::RecycleLimits {
            max_requests: self.cfg.max_requests,
            max_requests_jitter: self.cfg.max_requests_jitter,
            max_lifetime: self.cfg.max_lifetime,
            max_rss_bytes: self.cfg.max_rss_mb << 20,
        }
    }

    /// MAX_REQUESTS, MAX_LIFETIME_SECS and MAX_RSS_MB: start a replacement
    /// for a worker past its limit (it keeps serving until that is ready).
    fn check_recycling(&mut self, now: Instant) {
        let limits = self.recycle_limits();
        for i in 0..self.slots.len() {
            let requests = self.slot_requests(i);
            let slot = &mut self.slots[i];
            if slot.retired || slot.successor.is_some() {
                continue;
            }
            if let Some((at, reason)) = slot.replace_retry {
                if now >= at {
                    slot.replace_retry = None;
                    self.start_successor(i, reason);
                }
                continue;
            }
            let Some(p) = slot
                .current
                .as_mut()
                .filter(|p| p.is_ready() && p.killed.is_none())
            else {
                continue;
            };
            let pid = p.pid;
            let Some(due) = p.recycle.due(&limits, requests, now, || {
                crate::procfs::rss_bytes_of(pid.as_raw())
            }) else {
                continue;
            };
            match due {
                policy::Due::MaxRequests { served, limit } => tracing::info!(
                    worker = i,
                    pid = pid.as_raw(),
                    served,
                    limit,
                    "MAX_REQUESTS reached: recycling"
                ),
                policy::Due::Lifetime => tracing::info!(
                    worker = i,
                    pid = pid.as_raw(),
                    "MAX_LIFETIME_SECS reached: recycling"
                ),
                policy::Due::Memory { rss } => tracing::info!(
                    worker = i,
                    pid = pid.as_raw(),
                    rss_mb = rss >> 20,
                    max_rss_mb = limits.max_rss_bytes >> 20,
                    "MAX_RSS_MB exceeded: recycling"
                ),
            }
            // Checked once: a failed replacement is retried by replace_retry.
            self.start_successor(i, due.reason());
        }
    }

    /// SIGHUP: one slot at a time, start a replacement from the binary and
    /// move on once it is ready (the worker it replaces then drains).
    fn advance_rolling(&mut self) {
        let Some(&i) = self.rolling.front() else {
            return;
        };
        let slot = &mut self.slots[i];
        let current = slot.current.as_ref().map(Proc::is_ready);
        match policy::rolling_step(slot.retired, slot.successor.is_some(), current) {
            policy::RollingStep::Skip => {
                self.rolling.pop_front();
            }
            policy::RollingStep::Wait => {}
            policy::RollingStep::ExecOnRespawn => {
                slot.force_exec = true;
                self.rolling.pop_front();
            }
            policy::RollingStep::Replace => self.start_successor(i, RestartReason::Hup),
        }
    }
}

fn describe_exit(code: Option<i32>, killed: Option<KillCause>) -> String {
    match (code, killed) {
        (_, Some(k)) => format!("killed by the supervisor ({k:?})"),
        (Some(c), None) => format!("exit code {c}"),
        (None, None) => "killed by a signal".to_string(),
    }
}

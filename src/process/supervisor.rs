//! The pre-fork supervisor: a small synchronous loop (signalfd + waitpid,
//! synchronous logging) that forks workers, respawns them and forwards
//! signals. It never starts a runtime or a second thread, because it forks
//! again on every respawn and tokio does not survive a fork.
//!
//! Listening sockets are created here, before any fork:
//! - `LISTENER=reuseport`: one SO_REUSEPORT socket per worker slot (per
//!   runtime with thread-per-core). A restarted worker takes over its
//!   slot's socket, so a respawn or a recycle never closes a listener and
//!   never drops the connections queued on it.
//! - `LISTENER=shared`: one socket every worker accepts from.
//!
//! Signals: SIGTERM drains every worker within the graceful timeout and
//! exits 0; SIGINT/SIGQUIT stop fast; SIGHUP restarts the workers one at a
//! time; SIGTTIN/SIGTTOU add or remove a worker. Workers die with the
//! supervisor (PR_SET_PDEATHSIG=SIGKILL, plus a parent check against the
//! race at fork).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::{listeners, worker, Shape, EXIT_BOOT_FAILURE};
use crate::config::{Config, ListenerMode};
use crate::metrics::{Metrics, RestartReason, WorkerState, MAX_SLOTS};

/// Crash-loop breaker: this many crashes within the window stop the supervisor.
const CRASH_LIMIT: usize = 10;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Consecutive workers dying before they were ever ready: a boot failure.
const BOOT_FAILURE_LIMIT: u32 = 3;

struct WorkerSlot {
    /// This slot's sockets (reuseport), or clones of the shared one.
    listeners: Vec<TcpListener>,
    pid: Option<Pid>,
    /// Why the running process will be replaced when it exits.
    pending_reason: Option<RestartReason>,
    /// Consecutive crashes, for the back-off.
    crashes: u32,
    respawn_at: Option<Instant>,
    /// Removed by SIGTTOU: not respawned.
    retired: bool,
}

struct Supervisor {
    cfg: Arc<Config>,
    shape: Shape,
    metrics: &'static Metrics,
    slots: Vec<WorkerSlot>,
    shared: Option<TcpListener>,
    crash_times: VecDeque<Instant>,
    boot_failures: u32,
    stopping: Option<Instant>,
    /// Slots still to restart for a SIGHUP, one at a time.
    rolling: VecDeque<(usize, Option<Pid>)>,
    parent: Pid,
}

pub fn run(cfg: Arc<Config>, shape: Shape) -> anyhow::Result<()> {
    let metrics = Metrics::new_shared();
    let mut sup = Supervisor {
        metrics,
        slots: Vec::new(),
        shared: None,
        crash_times: VecDeque::new(),
        boot_failures: 0,
        stopping: None,
        rolling: VecDeque::new(),
        parent: nix::unistd::getpid(),
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
    if let Some(first) = sup.slots.first().and_then(|s| s.listeners.first()) {
        if sup.shared.is_none() {
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
    let old_mask = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;

    for i in 0..sup.slots.len() {
        sup.spawn(i, &old_mask)?;
    }
    tracing::info!(
        pid = sup.parent.as_raw(),
        workers = sup.slots.len(),
        "supervisor running"
    );

    loop {
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(200u16));
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            sup.on_signal(signal, &old_mask)?;
        }
        sup.reap()?;
        if let Some(deadline) = sup.stopping {
            if sup.live() == 0 {
                tracing::info!("all workers stopped; supervisor exiting");
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!("graceful timeout passed; killing remaining workers");
                sup.signal_all(Signal::SIGKILL);
                std::thread::sleep(Duration::from_millis(100));
                sup.reap()?;
                return Ok(());
            }
            continue;
        }
        sup.respawn_due(&old_mask)?;
        sup.check_heartbeats();
        sup.advance_rolling();
    }
}

impl Supervisor {
    fn add_slot(&mut self) -> anyhow::Result<usize> {
        let index = self.slots.len();
        if (index + 1) * self.shape.runtimes > MAX_SLOTS {
            anyhow::bail!("no more worker slots");
        }
        let listeners = match &self.shared {
            Some(shared) => (0..self.shape.runtimes)
                .map(|_| shared.try_clone())
                .collect::<std::io::Result<Vec<_>>>()?,
            None => {
                // The first slot may resolve port 0; later ones reuse it.
                let addr = self
                    .slots
                    .first()
                    .and_then(|s| s.listeners.first())
                    .and_then(|l| l.local_addr().ok())
                    .unwrap_or(self.cfg.bind);
                listeners::bind_group(addr, self.shape.runtimes, true, self.cfg.listen_backlog)?
            }
        };
        self.slots.push(WorkerSlot {
            listeners,
            pid: None,
            pending_reason: None,
            crashes: 0,
            respawn_at: None,
            retired: false,
        });
        Ok(index)
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.pid.is_some()).count()
    }

    fn signal_all(&self, signal: Signal) {
        for slot in &self.slots {
            if let Some(pid) = slot.pid {
                let _ = kill(pid, signal);
            }
        }
    }

    fn metrics_index(&self, slot: usize) -> usize {
        slot * self.shape.runtimes
    }

    /// Forks a worker for `index`.
    fn spawn(&mut self, index: usize, child_mask: &SigSet) -> anyhow::Result<()> {
        let threads = super::thread_count();
        assert_eq!(
            threads, 1,
            "the supervisor must be single-threaded when it forks (found {threads} threads)"
        );
        let recycle_after = (self.cfg.max_requests > 0).then(|| {
            let jitter = if self.cfg.max_requests_jitter > 0 {
                rand::random_range(0..=self.cfg.max_requests_jitter)
            } else {
                0
            };
            self.cfg.max_requests + jitter
        });
        let metrics_index = self.metrics_index(index);
        // Requests already counted in this slot by earlier workers.
        let served_before = self.metrics.slot(metrics_index).requests();
        // SAFETY: the process has exactly one thread (asserted above), so the
        // child gets a consistent copy of memory: no lock can be held by a
        // thread that does not exist in the child. The child only sets up
        // its signal state and then builds everything it needs from scratch.
        #[allow(unsafe_code)]
        let forked = unsafe { fork() }?;
        match forked {
            ForkResult::Child => {
                let code = self.child(index, child_mask, recycle_after.map(|r| r + served_before));
                std::process::exit(code);
            }
            ForkResult::Parent { child } => {
                let slot = &mut self.slots[index];
                slot.pid = Some(child);
                slot.respawn_at = None;
                self.metrics
                    .slot(metrics_index)
                    .begin(child.as_raw() as u32);
                tracing::info!(worker = index, pid = child.as_raw(), "worker started");
                Ok(())
            }
        }
    }

    /// Runs in the forked child: becomes the worker and never returns to
    /// the supervisor loop.
    fn child(&mut self, index: usize, child_mask: &SigSet, recycle_after: Option<u64>) -> i32 {
        // Die with the supervisor, even when it is SIGKILLed; and if it
        // already died between fork and prctl, leave now.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if nix::unistd::getppid() != self.parent {
            return 0;
        }
        let _ = child_mask.thread_set_mask();
        // Keep only this slot's sockets; close the others.
        let mine = std::mem::take(&mut self.slots[index].listeners);
        self.slots.clear();
        self.shared = None;
        let mut info = super::worker_info(&self.cfg, &self.shape, self.metrics_index(index));
        info.index = self.metrics_index(index);
        let plan = worker::WorkerPlan {
            cfg: self.cfg.clone(),
            metrics: self.metrics,
            info,
            listeners: mine,
            recycle_after,
        };
        match worker::run(plan) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(worker = index, error = %format!("{e:#}"), "worker failed to boot");
                EXIT_BOOT_FAILURE
            }
        }
    }

    fn on_signal(&mut self, signal: Signal, child_mask: &SigSet) -> anyhow::Result<()> {
        match signal {
            Signal::SIGCHLD => {}
            Signal::SIGTERM if self.stopping.is_none() => {
                tracing::info!("SIGTERM: draining workers");
                self.stopping =
                    Some(Instant::now() + self.cfg.graceful_timeout + Duration::from_secs(2));
                self.signal_all(Signal::SIGTERM);
            }
            Signal::SIGINT | Signal::SIGQUIT => {
                tracing::info!(?signal, "fast stop");
                self.signal_all(Signal::SIGQUIT);
                self.stopping = Some(Instant::now() + Duration::from_secs(1));
            }
            Signal::SIGHUP => {
                tracing::info!("SIGHUP: rolling restart");
                self.rolling = (0..self.slots.len())
                    .filter(|i| !self.slots[*i].retired)
                    .map(|i| (i, None))
                    .collect();
            }
            Signal::SIGTTIN => {
                let index = match self.slots.iter().position(|s| s.retired && s.pid.is_none()) {
                    Some(i) => {
                        self.slots[i].retired = false;
                        i
                    }
                    None => self.add_slot()?,
                };
                tracing::info!(worker = index, "SIGTTIN: adding a worker");
                self.spawn(index, child_mask)?;
            }
            Signal::SIGTTOU => {
                let active = self.slots.iter().filter(|s| !s.retired).count();
                if active <= 1 {
                    tracing::warn!("SIGTTOU ignored: one worker is the minimum");
                } else if let Some(i) = self.slots.iter().rposition(|s| !s.retired) {
                    tracing::info!(worker = i, "SIGTTOU: removing a worker");
                    let slot = &mut self.slots[i];
                    slot.retired = true;
                    if let Some(pid) = slot.pid {
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Collects exited workers and schedules their replacement.
    fn reap(&mut self) -> anyhow::Result<()> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
                Ok(s) => s,
                Err(e) => return Err(e.into()),
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid, Some(code)),
                WaitStatus::Signaled(pid, _, _) => (pid, None),
                _ => continue,
            };
            let Some(index) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                continue;
            };
            let metrics_slot = self.metrics.slot(self.metrics_index(index));
            let was_ready = metrics_slot.state() != WorkerState::Starting as u64;
            let slot = &mut self.slots[index];
            slot.pid = None;
            tracing::info!(worker = index, pid = pid.as_raw(), ?status, "worker exited");
            if self.stopping.is_some() {
                continue;
            }
            if slot.retired {
                // SIGTTOU: its sockets close now. Connections still queued on
                // a reuseport socket are reset by the kernel (unless the
                // host has net.ipv4.tcp_migrate_req=1).
                slot.listeners.clear();
                continue;
            }
            if code == Some(EXIT_BOOT_FAILURE) {
                anyhow::bail!(
                    "worker {index} could not boot (see its error above); stopping the supervisor"
                );
            }
            let clean = code == Some(0);
            let reason = if clean {
                slot.pending_reason
                    .take()
                    .unwrap_or(RestartReason::MaxRequests)
            } else {
                slot.pending_reason.take().unwrap_or(RestartReason::Crash)
            };
            metrics_slot.restarted(reason);
            if reason == RestartReason::Crash {
                if !was_ready {
                    self.boot_failures += 1;
                } else {
                    self.boot_failures = 0;
                }
                if self.boot_failures >= BOOT_FAILURE_LIMIT {
                    anyhow::bail!(
                        "{BOOT_FAILURE_LIMIT} workers in a row died before becoming ready; stopping the supervisor"
                    );
                }
                let now = Instant::now();
                self.crash_times.push_back(now);
                while self
                    .crash_times
                    .front()
                    .is_some_and(|t| now - *t > CRASH_WINDOW)
                {
                    self.crash_times.pop_front();
                }
                if self.crash_times.len() >= CRASH_LIMIT {
                    anyhow::bail!(
                        "{CRASH_LIMIT} worker crashes within {}s: crash loop, stopping the supervisor",
                        CRASH_WINDOW.as_secs()
                    );
                }
                let slot = &mut self.slots[index];
                let backoff = Duration::from_millis(100 << slot.crashes.min(7));
                slot.crashes += 1;
                slot.respawn_at = Some(now + backoff);
                tracing::warn!(
                    worker = index,
                    backoff_ms = backoff.as_millis() as u64,
                    "worker crashed; respawning after back-off"
                );
            } else {
                let slot = &mut self.slots[index];
                slot.crashes = 0;
                slot.respawn_at = Some(Instant::now());
            }
        }
    }

    fn respawn_due(&mut self, child_mask: &SigSet) -> anyhow::Result<()> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.pid.is_none() && !s.retired && s.respawn_at.is_some_and(|t| t <= now) {
                self.spawn(i, child_mask)?;
            }
        }
        Ok(())
    }

    /// gunicorn's `--timeout`: a worker whose event loop stopped ticking is
    /// killed (and respawned as a crash).
    fn check_heartbeats(&mut self) {
        let Some(limit) = self.cfg.heartbeat_timeout else {
            return;
        };
        for i in 0..self.slots.len() {
            let Some(pid) = self.slots[i].pid else {
                continue;
            };
            let m = self.metrics.slot(self.metrics_index(i));
            if m.state() == WorkerState::Ready as u64
                && m.heartbeat_age_ms() > limit.as_millis() as u64
            {
                tracing::error!(
                    worker = i,
                    pid = pid.as_raw(),
                    silent_ms = m.heartbeat_age_ms(),
                    "worker's event loop stopped answering: killing it"
                );
                self.slots[i].pending_reason = Some(RestartReason::Heartbeat);
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }

    /// SIGHUP: one slot at a time, drain the old worker (its sockets stay
    /// open in the supervisor, so connections queue rather than being
    /// refused) and move on once its replacement is ready.
    fn advance_rolling(&mut self) {
        let Some((index, old)) = self.rolling.front_mut() else {
            return;
        };
        let index = *index;
        let slot = &mut self.slots[index];
        match *old {
            None => match slot.pid {
                Some(pid) => {
                    slot.pending_reason = Some(RestartReason::Hup);
                    let _ = kill(pid, Signal::SIGTERM);
                    *old = Some(pid);
                }
                None => {
                    self.rolling.pop_front();
                }
            },
            Some(old_pid) => {
                let m = self.metrics.slot(index * self.shape.runtimes);
                if let Some(pid) = slot.pid {
                    if pid != old_pid
                        && m.state() == WorkerState::Ready as u64
                        && m.pid() == pid.as_raw() as u64
                    {
                        self.rolling.pop_front();
                    }
                }
            }
        }
    }
}

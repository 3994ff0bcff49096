//! The pre-fork supervisor: a small synchronous loop (a signalfd and the
//! workers' notification pipes in one `poll`, `waitpid`, synchronous
//! logging) that starts workers, replaces them and forwards signals. It
//! never starts a runtime or a second thread, because it forks again for
//! every worker and tokio does not survive a fork; it runs no query either
//! (worker 0 checks the connection budget).
//!
//! Starting a worker: fork (asserting first that the supervisor has one
//! thread), then in the child set `PR_SET_PDEATHSIG` and check the parent
//! (so a supervisor killed with SIGKILL leaves no orphan), restore the
//! signal mask, and either execute the binary from the path resolved at
//! start-up (`WORKER_SPAWN=exec`, the default; always for SIGHUP) with the
//! slot's sockets, the metrics memfd and the notification pipe inherited
//! (see [`super::handoff`]), or run the worker code that the fork copied
//! (`WORKER_SPAWN=fork`).
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

use std::collections::VecDeque;
use std::ffi::CString;
use std::net::TcpListener;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::budget::EXIT_BUDGET_REFUSED;
use super::handoff::{self, Handoff};
use super::notify::{self, Notifier, Reader};
use super::{listeners, worker, Shape, EXIT_BOOT_FAILURE};
use crate::config::{Config, ListenerMode, WorkerSpawn};
use crate::metrics::{Metrics, RestartReason, WorkerState, MAX_SLOTS};

/// Crash-loop breaker: this many crashes within the window stop the supervisor.
const CRASH_LIMIT: usize = 10;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Consecutive workers dying before they were ever ready: a boot failure.
const BOOT_FAILURE_LIMIT: u32 = 3;
/// A worker that ran this long before crashing is respawned at once.
const STABLE_RUN: Duration = Duration::from_secs(10);
/// Longest respawn back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker not ready this long after it was started is killed (at least;
/// a longer HEARTBEAT_TIMEOUT_SECS raises it).
const MIN_BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// A draining worker is killed this long after the graceful timeout.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Wake-up period of the loop for its timers.
const TICK: Duration = Duration::from_millis(50);
/// How often the resident memory of each worker is read (MAX_RSS_MB).
const RSS_PERIOD: Duration = Duration::from_secs(1);
/// Exit code of a child whose exec failed.
pub const EXIT_EXEC_FAILED: i32 = 127;

/// Why the supervisor killed a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillCause {
    Heartbeat,
    BootTimeout,
    DrainTimeout,
}

/// One worker process.
struct Proc {
    pid: Pid,
    notify: Reader,
    spawned: Instant,
    exec: bool,
    /// Event loops that reported ready, and when each last ticked.
    ready_loops: Vec<bool>,
    beats: Vec<Instant>,
    ready_at: Option<Instant>,
    killed: Option<KillCause>,
    /// Recycling limits, set when the process becomes its slot's worker.
    requests_base: u64,
    requests_limit: Option<u64>,
    retire_at: Option<Instant>,
    rss_checked: Option<Instant>,
    rss_exempt: bool,
    /// When draining: the time after which it is killed.
    drain_deadline: Option<Instant>,
}

impl Proc {
    fn is_ready(&self) -> bool {
        self.ready_at.is_some()
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
    crashes: u32,
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
            crashes: 0,
            respawn_at: None,
            replace_retry: None,
            replace_failures: 0,
            force_exec: false,
            retired: false,
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
    crash_times: VecDeque<Instant>,
    boot_failures: u32,
    stopping: Option<Instant>,
    /// Why the supervisor stops with an error, once every worker has exited.
    fatal: Option<anyhow::Error>,
    /// Slots still to restart for a SIGHUP, one at a time.
    rolling: VecDeque<usize>,
    parent: Pid,
    /// The start-up checks (budget, exposure) are still to run: worker 0 of
    /// the first generation runs them.
    budget_pending: bool,
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
        crash_times: VecDeque::new(),
        boot_failures: 0,
        stopping: None,
        fatal: None,
        rolling: VecDeque::new(),
        parent: nix::unistd::getpid(),
        budget_pending: true,
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

    for i in 0..sup.slots.len() {
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

fn cstring(bytes: &[u8]) -> anyhow::Result<CString> {
    CString::new(bytes).map_err(|_| anyhow::anyhow!("argument or path with a NUL byte"))
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

    fn read_signals(&mut self) -> anyhow::Result<()> {
        loop {
            let Some(Ok(Some(info))) = self.sfd.as_ref().map(|s| s.read_signal()) else {
                return Ok(());
            };
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                self.on_signal(signal)?;
            }
        }
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

    fn slot_requests(&self, slot: usize) -> u64 {
        let base = self.metrics_base(slot);
        (base..base + self.shape.runtimes)
            .map(|i| self.metrics.slot(i).requests())
            .sum()
    }

    /// Starts the slot's worker (no worker is running in it).
    fn start_current(&mut self, slot: usize) -> anyhow::Result<()> {
        let exec = self.cfg.worker_spawn == WorkerSpawn::Exec || self.slots[slot].force_exec;
        // Worker 0 of the first generation runs the start-up checks.
        let budget = slot == 0 && std::mem::take(&mut self.budget_pending);
        let proc = self.spawn(slot, exec, budget)?;
        let s = &mut self.slots[slot];
        s.force_exec = false;
        s.respawn_at = None;
        tracing::info!(
            worker = slot,
            pid = proc.pid.as_raw(),
            exec,
            "worker started"
        );
        s.current = Some(proc);
        Ok(())
    }

    /// Starts a replacement next to the slot's worker.
    fn start_successor(&mut self, slot: usize, reason: RestartReason) {
        let exec = reason == RestartReason::Hup || self.cfg.worker_spawn == WorkerSpawn::Exec;
        match self.spawn(slot, exec, false) {
            Ok(proc) => {
                tracing::info!(
                    worker = slot,
                    pid = proc.pid.as_raw(),
                    old_pid = self.slots[slot].current.as_ref().map(|p| p.pid.as_raw()),
                    reason = reason_name(reason),
                    exec,
                    "starting a replacement worker"
                );
                self.slots[slot].successor = Some(Successor { proc, reason });
            }
            Err(e) => {
                tracing::error!(worker = slot, error = %format!("{e:#}"), "could not start a replacement worker");
                self.replacement_failed(slot, reason);
            }
        }
    }

    /// Forks a worker for `slot`: see the module documentation.
    fn spawn(&mut self, slot: usize, exec: bool, check_budget: bool) -> anyhow::Result<Proc> {
        let threads = super::thread_count();
        assert_eq!(
            threads, 1,
            "the supervisor must be single-threaded when it forks (found {threads} threads)"
        );
        let (notify_read, notify_write) = notify::pipe()?;
        let budget_pools = if check_budget {
            self.shape.processes * self.shape.runtimes
        } else {
            0
        };
        // Everything the exec needs is prepared before the fork.
        let env = if exec {
            let metrics_fd = self
                .metrics_fd
                .as_ref()
                .expect("the supervisor keeps the metrics memfd");
            let handoff = Handoff {
                slot,
                processes: self.shape.processes,
                listen: self.slots[slot]
                    .listeners
                    .iter()
                    .map(|l| l.as_raw_fd())
                    .collect(),
                metrics: metrics_fd.as_raw_fd(),
                notify: notify_write.as_raw_fd(),
                parent: self.parent.as_raw(),
                budget_pools,
            };
            let mut env: Vec<CString> = std::env::vars_os()
                .filter(|(k, _)| k != handoff::ENV)
                .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
                .collect::<anyhow::Result<_>>()?;
            env.push(cstring(
                format!("{}={}", handoff::ENV, handoff.encode()).as_bytes(),
            )?);
            Some(env)
        } else {
            None
        };
        let spawned = Instant::now();
        // SAFETY: the process has exactly one thread (asserted above), so the
        // child gets a consistent copy of memory: no lock can be held by a
        // thread that does not exist in the child. The child only sets up its
        // signal state and descriptors, then executes the binary or builds
        // everything it needs from scratch.
        #[allow(unsafe_code)]
        let forked = unsafe { fork() }?;
        match forked {
            ForkResult::Child => {
                let code = self.child(slot, notify_write, env, budget_pools);
                std::process::exit(code);
            }
            ForkResult::Parent { child } => {
                drop(notify_write);
                Ok(Proc {
                    pid: child,
                    notify: Reader::new(notify_read),
                    spawned,
                    exec,
                    ready_loops: vec![false; self.shape.runtimes],
                    beats: vec![spawned; self.shape.runtimes],
                    ready_at: None,
                    killed: None,
                    requests_base: 0,
                    requests_limit: None,
                    retire_at: None,
                    rss_checked: None,
                    rss_exempt: false,
                    drain_deadline: None,
                })
            }
        }
    }

    /// Runs in the forked child and never returns to the supervisor loop.
    fn child(
        &mut self,
        slot: usize,
        notify_write: OwnedFd,
        exec_env: Option<Vec<CString>>,
        budget_pools: usize,
    ) -> i32 {
        // Die with the supervisor, even when it is SIGKILLed; and if it
        // already died between fork and prctl, leave now.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if nix::unistd::getppid() != self.parent {
            exit_now(0);
        }
        let _ = self.child_mask.thread_set_mask();
        if let Some(env) = exec_env {
            // Only the handed-over descriptors survive the exec (everything
            // else the supervisor holds is close-on-exec).
            let metrics_fd = self.metrics_fd.as_ref().expect("metrics memfd");
            let inherit = self.slots[slot]
                .listeners
                .iter()
                .map(|l| l.as_fd())
                .chain([metrics_fd.as_fd(), notify_write.as_fd()]);
            for fd in inherit {
                if let Err(e) = fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())) {
                    eprintln!("quizbench worker: cannot pass a descriptor: {e}");
                    exit_now(EXIT_EXEC_FAILED);
                }
            }
            let err = nix::unistd::execve(&self.exe, &self.args, &env).unwrap_err();
            eprintln!(
                "quizbench worker: cannot execute {}: {err}",
                self.exe.to_string_lossy()
            );
            exit_now(EXIT_EXEC_FAILED);
        }
        // WORKER_SPAWN=fork: drop the supervisor's descriptors and become the
        // worker with the code this fork copied.
        let mine = std::mem::take(&mut self.slots[slot].listeners);
        self.sfd = None;
        self.slots.clear();
        self.draining.clear();
        self.shared = None;
        self.metrics_fd = None;
        let notifier = match Notifier::new(notify_write) {
            Ok(n) => n,
            Err(_) => return EXIT_BOOT_FAILURE,
        };
        let base = self.metrics_base(slot);
        let mut info = super::worker_info(&self.cfg, &self.shape, base);
        info.index = base;
        worker::run_supervised(worker::WorkerPlan {
            cfg: self.cfg.clone(),
            metrics: self.metrics,
            info,
            listeners: mine,
            supervised: Some(Arc::new(worker::Supervised {
                notifier,
                parent: self.parent,
            })),
            budget_pools: (budget_pools > 0).then_some(budget_pools),
        })
    }

    fn on_signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        match signal {
            Signal::SIGCHLD => {}
            Signal::SIGTERM if self.stopping.is_none() => {
                tracing::info!(
                    graceful_timeout_secs = self.cfg.graceful_timeout.as_secs(),
                    "SIGTERM: draining every worker"
                );
                self.begin_stop(Signal::SIGTERM);
            }
            Signal::SIGINT | Signal::SIGQUIT => {
                tracing::info!(?signal, "fast stop");
                self.for_each_proc(|p| p.kill(Signal::SIGQUIT, None));
                self.stopping = Some(Instant::now() + Duration::from_secs(1));
                self.release_sockets();
            }
            Signal::SIGHUP if self.stopping.is_none() => {
                self.rolling = (0..self.slots.len())
                    .filter(|i| !self.slots[*i].retired)
                    .collect();
                tracing::info!(
                    workers = self.rolling.len(),
                    exe = %self.exe.to_string_lossy(),
                    "SIGHUP: rolling restart from the binary's path, one worker at a time"
                );
            }
            Signal::SIGTTIN if self.stopping.is_none() => {
                let index = match self
                    .slots
                    .iter()
                    .position(|s| s.retired && s.current.is_none() && s.successor.is_none())
                {
                    Some(i) => {
                        if self.slots[i].listeners.is_empty() {
                            self.slots[i].listeners = self.bind_slot()?;
                        }
                        self.slots[i].retired = false;
                        i
                    }
                    None => self.add_slot()?,
                };
                tracing::info!(worker = index, "SIGTTIN: adding a worker");
                if let Err(e) = self.start_current(index) {
                    tracing::error!(worker = index, error = %format!("{e:#}"), "could not start the worker");
                    self.slots[index].respawn_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            Signal::SIGTTOU if self.stopping.is_none() => {
                let active = self.slots.iter().filter(|s| !s.retired).count();
                if active <= 1 {
                    tracing::warn!("SIGTTOU ignored: one worker is the minimum");
                } else if let Some(i) = self.slots.iter().rposition(|s| !s.retired) {
                    tracing::info!(worker = i, "SIGTTOU: removing a worker");
                    self.rolling.retain(|s| *s != i);
                    let slot = &mut self.slots[i];
                    slot.retired = true;
                    slot.respawn_at = None;
                    slot.replace_retry = None;
                    // The supervisor's copies close now; the draining worker
                    // takes what is queued and closes the last copy when it
                    // stops accepting. Connections that reach a reuseport
                    // socket in that instant are reset by the kernel, unless
                    // net.ipv4.tcp_migrate_req=1 moves them to another socket.
                    slot.listeners.clear();
                    let procs: Vec<Proc> = slot
                        .successor
                        .take()
                        .map(|s| s.proc)
                        .into_iter()
                        .chain(slot.current.take())
                        .collect();
                    for p in procs {
                        self.retire(i, p);
                    }
                    self.settle_retired(i);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Stops every worker: SIGTERM (drain) or SIGQUIT (fast).
    fn begin_stop(&mut self, signal: Signal) {
        let grace = if signal == Signal::SIGTERM {
            self.cfg.graceful_timeout + DRAIN_GRACE
        } else {
            Duration::from_secs(1)
        };
        self.stopping = Some(Instant::now() + grace);
        self.rolling.clear();
        self.for_each_proc(|p| p.kill(signal, None));
        self.release_sockets();
    }

    /// The supervisor's copies of the listening sockets close now, so the
    /// sockets close once the workers stop accepting: new connections are
    /// refused at once instead of waiting in a queue nobody serves.
    fn release_sockets(&mut self) {
        for slot in &mut self.slots {
            slot.listeners.clear();
        }
        self.shared = None;
    }

    /// SIGTERM to a worker that leaves its slot: it drains, then exits.
    fn retire(&mut self, slot: usize, mut proc: Proc) {
        proc.drain_deadline = Some(Instant::now() + self.cfg.graceful_timeout + DRAIN_GRACE);
        proc.kill(Signal::SIGTERM, None);
        self.draining.push((slot, proc));
    }

    /// Marks a removed slot empty once no process serves it any more.
    fn settle_retired(&mut self, i: usize) {
        let busy = self.draining.iter().any(|(s, _)| *s == i);
        let slot = &self.slots[i];
        if slot.retired && slot.current.is_none() && slot.successor.is_none() && !busy {
            tracing::info!(worker = i, "removed worker has stopped");
            let base = i * self.shape.runtimes;
            for m in base..base + self.shape.runtimes {
                self.metrics.slot(m).set_state(WorkerState::Empty);
            }
        }
    }

    /// Reads every worker's notifications and acts on the ready ones.
    fn read_notifications(&mut self) {
        let mut ready: Vec<Role> = Vec::new();
        let mut records = Vec::new();
        let now = Instant::now();
        let mut apply = |p: &mut Proc, role: Role, records: &mut Vec<(u8, u8)>| {
            records.clear();
            p.notify.drain(records);
            for &(kind, rt) in records.iter() {
                let rt = rt as usize;
                if rt >= p.beats.len() {
                    continue;
                }
                p.beats[rt] = now;
                if kind == notify::READY && !p.ready_loops[rt] {
                    p.ready_loops[rt] = true;
                    if p.ready_at.is_none() && p.ready_loops.iter().all(|r| *r) {
                        p.ready_at = Some(now);
                        ready.push(role);
                    }
                }
            }
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(p) = &mut slot.current {
                apply(p, Role::Current(i), &mut records);
            }
            if let Some(s) = &mut slot.successor {
                apply(&mut s.proc, Role::Successor(i), &mut records);
            }
        }
        for (slot, p) in &mut self.draining {
            apply(p, Role::Draining(*slot), &mut records);
        }
        if self.stopping.is_some() {
            return;
        }
        for role in ready {
            match role {
                Role::Current(i) => self.on_current_ready(i),
                Role::Successor(i) => self.on_successor_ready(i),
                Role::Draining(_) => {}
            }
        }
    }

    fn on_current_ready(&mut self, slot: usize) {
        self.boot_failures = 0;
        self.promote(slot);
        let p = self.slots[slot].current.as_ref().expect("current");
        tracing::info!(
            worker = slot,
            pid = p.pid.as_raw(),
            ready_ms = ready_ms(p),
            exec = p.exec,
            "worker ready"
        );
    }

    fn on_successor_ready(&mut self, slot: usize) {
        let Some(Successor { proc, reason }) = self.slots[slot].successor.take() else {
            return;
        };
        self.boot_failures = 0;
        let old = self.slots[slot].current.replace(proc);
        let s = &mut self.slots[slot];
        s.replace_failures = 0;
        s.replace_retry = None;
        let base = self.metrics_base(slot);
        for m in base..base + self.shape.runtimes {
            self.metrics.slot(m).restarted(reason);
        }
        self.promote(slot);
        let new = self.slots[slot].current.as_ref().expect("current");
        tracing::info!(
            worker = slot,
            pid = new.pid.as_raw(),
            old_pid = old.as_ref().map(|p| p.pid.as_raw()),
            reason = reason_name(reason),
            ready_ms = ready_ms(new),
            exec = new.exec,
            "replacement ready; draining the worker it replaces"
        );
        if let Some(old) = old {
            self.retire(slot, old);
        }
        if self.rolling.front() == Some(&slot) {
            self.rolling.pop_front();
            if self.rolling.is_empty() {
                tracing::info!("rolling restart complete");
            }
        }
    }

    /// Makes the slot's (ready) current process the one the shared table
    /// shows, and sets its recycling limits.
    fn promote(&mut self, slot: usize) {
        let requests_now = self.slot_requests(slot);
        let base = self.metrics_base(slot);
        let cfg = self.cfg.clone();
        let p = self.slots[slot].current.as_mut().expect("current");
        let boot_ms = ready_ms(p);
        for m in base..base + self.shape.runtimes {
            let s = self.metrics.slot(m);
            s.begin(p.pid.as_raw() as u32);
            s.set_state(WorkerState::Ready);
            s.set_boot_ms(boot_ms);
        }
        let now = Instant::now();
        p.requests_base = requests_now;
        p.requests_limit = (cfg.max_requests > 0).then(|| {
            let jitter = if cfg.max_requests_jitter > 0 {
                rand::random_range(0..=cfg.max_requests_jitter)
            } else {
                0
            };
            cfg.max_requests + jitter
        });
        // Up to 10% jitter, so workers started together do not all recycle
        // at the same moment.
        p.retire_at = cfg
            .max_lifetime
            .map(|l| now + l.mul_f64(1.0 + rand::random::<f64>() * 0.1));
        p.rss_checked = None;
        if cfg.max_rss_mb > 0 {
            if let Some(rss) = rss_bytes(p.pid) {
                if rss >= cfg.max_rss_mb << 20 {
                    p.rss_exempt = true;
                    tracing::warn!(
                        worker = slot,
                        rss_mb = rss >> 20,
                        max_rss_mb = cfg.max_rss_mb,
                        "MAX_RSS_MB is below the memory of a fresh worker: not recycling it for memory"
                    );
                }
            }
        }
    }

    /// Collects exited workers and decides what follows.
    fn reap(&mut self) -> anyhow::Result<()> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(s) => s,
                Err(e) => return Err(e.into()),
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid, Some(code)),
                WaitStatus::Signaled(pid, _, _) => (pid, None),
                _ => continue,
            };
            self.on_exit(pid, code, status);
        }
    }

    /// Waits (blocking, bounded) for every remaining worker.
    fn reap_blocking(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.live() > 0 && Instant::now() < until {
            let _ = self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn find(&self, pid: Pid) -> Option<Role> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.current.as_ref().is_some_and(|p| p.pid == pid) {
                return Some(Role::Current(i));
            }
            if slot.successor.as_ref().is_some_and(|s| s.proc.pid == pid) {
                return Some(Role::Successor(i));
            }
        }
        self.draining
            .iter()
            .find(|(_, p)| p.pid == pid)
            .map(|(i, _)| Role::Draining(*i))
    }

    fn on_exit(&mut self, pid: Pid, code: Option<i32>, status: WaitStatus) {
        let Some(role) = self.find(pid) else {
            return;
        };
        match role {
            Role::Draining(slot) => {
                let at = self
                    .draining
                    .iter()
                    .position(|(_, p)| p.pid == pid)
                    .expect("found");
                let (_, p) = self.draining.swap_remove(at);
                if code == Some(0) {
                    tracing::info!(worker = slot, pid = pid.as_raw(), "drained worker exited");
                } else {
                    tracing::warn!(
                        worker = slot,
                        pid = pid.as_raw(),
                        ?status,
                        killed = ?p.killed,
                        "draining worker did not exit cleanly"
                    );
                }
                self.settle_retired(slot);
            }
            Role::Successor(slot) => {
                let s = self.slots[slot].successor.take().expect("found");
                if self.stopping.is_some() {
                    return;
                }
                tracing::error!(
                    worker = slot,
                    pid = pid.as_raw(),
                    ?status,
                    killed = ?s.proc.killed,
                    reason = reason_name(s.reason),
                    exec = %self.exe.to_string_lossy(),
                    "the replacement worker died before it was ready; the running worker keeps serving"
                );
                self.replacement_failed(slot, s.reason);
            }
            Role::Current(slot) => {
                let p = self.slots[slot].current.take().expect("found");
                tracing::info!(worker = slot, pid = pid.as_raw(), ?status, "worker exited");
                if self.stopping.is_some() {
                    return;
                }
                let base = self.metrics_base(slot);
                for m in base..base + self.shape.runtimes {
                    let ms = self.metrics.slot(m);
                    if ms.pid() == pid.as_raw() as u64 {
                        ms.set_state(WorkerState::Empty);
                    }
                }
                self.on_current_exit(slot, p, code);
            }
        }
    }

    /// A slot's worker exited without being asked to.
    fn on_current_exit(&mut self, slot: usize, p: Proc, code: Option<i32>) {
        let now = Instant::now();
        if !p.is_ready() {
            let why = match code {
                Some(EXIT_BOOT_FAILURE) => Some("it reported a boot failure (see its error above)"),
                Some(EXIT_EXEC_FAILED) => Some("the binary could not be executed"),
                Some(EXIT_BUDGET_REFUSED) => Some(
                    "its connection budget check refused (CONNECTION_BUDGET=strict; numbers above)",
                ),
                _ => None,
            };
            if let Some(why) = why {
                return self.fail(anyhow::anyhow!(
                    "worker {slot} (pid {}) could not boot: {why}; stopping the supervisor",
                    p.pid
                ));
            }
            self.boot_failures += 1;
            if self.boot_failures >= BOOT_FAILURE_LIMIT {
                return self.fail(anyhow::anyhow!(
                    "{BOOT_FAILURE_LIMIT} workers in a row died before they were ready \
                     (last: worker {slot}, pid {}, {}); stopping the supervisor",
                    p.pid,
                    describe_exit(code, p.killed)
                ));
            }
        }
        let reason = match p.killed {
            Some(KillCause::Heartbeat) => RestartReason::Heartbeat,
            _ => RestartReason::Crash,
        };
        let base = self.metrics_base(slot);
        for m in base..base + self.shape.runtimes {
            self.metrics.slot(m).restarted(reason);
        }
        self.crash_times.push_back(now);
        while self
            .crash_times
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            self.crash_times.pop_front();
        }
        if self.crash_times.len() >= CRASH_LIMIT {
            return self.fail(anyhow::anyhow!(
                "{CRASH_LIMIT} worker crashes within {}s: crash loop, stopping the supervisor",
                CRASH_WINDOW.as_secs()
            ));
        }
        let slot_ref = &mut self.slots[slot];
        // A recycling retry was for the worker that just died.
        slot_ref.replace_retry = None;
        if p.ready_at
            .is_some_and(|t| now.duration_since(t) >= STABLE_RUN)
        {
            slot_ref.crashes = 0;
        }
        let backoff = backoff(slot_ref.crashes);
        slot_ref.crashes += 1;
        tracing::warn!(
            worker = slot,
            pid = p.pid.as_raw(),
            cause = describe_exit(code, p.killed),
            restart_reason = reason_name(reason),
            backoff_ms = backoff.as_millis() as u64,
            "worker died; respawning"
        );
        if slot_ref.retired {
            self.settle_retired(slot);
            return;
        }
        // A replacement already booting takes the slot over.
        if let Some(s) = slot_ref.successor.take() {
            slot_ref.current = Some(s.proc);
            return;
        }
        slot_ref.respawn_at = Some(now + backoff);
    }

    /// A replacement could not be started or died before it was ready.
    fn replacement_failed(&mut self, slot: usize, reason: RestartReason) {
        if reason == RestartReason::Hup {
            if !self.rolling.is_empty() {
                tracing::error!(
                    remaining = self.rolling.len(),
                    "rolling restart abandoned: the new build does not boot; the running workers keep serving"
                );
            }
            self.rolling.clear();
            return;
        }
        let s = &mut self.slots[slot];
        s.replace_failures += 1;
        let wait = (Duration::from_secs(1) * (1u32 << s.replace_failures.min(6)))
            .min(Duration::from_secs(60));
        s.replace_retry = Some((Instant::now() + wait, reason));
        tracing::warn!(
            worker = slot,
            retry_in_ms = wait.as_millis() as u64,
            "recycling postponed"
        );
    }

    /// Stops the supervisor with an error once the workers have drained.
    fn fail(&mut self, e: anyhow::Error) {
        tracing::error!(error = %format!("{e:#}"), "supervisor stopping");
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
        if self.stopping.is_none() {
            self.begin_stop(Signal::SIGTERM);
        }
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
        let boot_timeout = heartbeat.map_or(MIN_BOOT_TIMEOUT, |h| h.max(MIN_BOOT_TIMEOUT));
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
                    if now.duration_since(p.spawned) > boot_timeout {
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
                if let Some((rt, last)) = p
                    .beats
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, t)| now.duration_since(**t))
                {
                    let silent = now.duration_since(*last);
                    if silent > limit {
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
        }
        for (i, p) in &mut self.draining {
            if p.killed.is_none() && p.drain_deadline.is_some_and(|d| now >= d) {
                tracing::warn!(
                    worker = *i,
                    pid = p.pid.as_raw(),
                    "draining worker passed the graceful timeout: killing it"
                );
                p.kill(Signal::SIGKILL, Some(KillCause::DrainTimeout));
            }
        }
    }

    /// MAX_REQUESTS, MAX_LIFETIME_SECS and MAX_RSS_MB: start a replacement
    /// for a worker past its limit (it keeps serving until that is ready).
    fn check_recycling(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let requests = self.slot_requests(i);
            let max_rss = self.cfg.max_rss_mb << 20;
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
            let mut due = None;
            if let Some(limit) = p.requests_limit {
                let served = requests.saturating_sub(p.requests_base);
                if served >= limit {
                    tracing::info!(
                        worker = i,
                        pid = p.pid.as_raw(),
                        served,
                        limit,
                        "MAX_REQUESTS reached: recycling"
                    );
                    due = Some(RestartReason::MaxRequests);
                }
            }
            if due.is_none() && p.retire_at.is_some_and(|t| now >= t) {
                tracing::info!(
                    worker = i,
                    pid = p.pid.as_raw(),
                    "MAX_LIFETIME_SECS reached: recycling"
                );
                due = Some(RestartReason::Lifetime);
            }
            if due.is_none()
                && max_rss > 0
                && !p.rss_exempt
                && p.rss_checked
                    .is_none_or(|t| now.duration_since(t) >= RSS_PERIOD)
            {
                p.rss_checked = Some(now);
                if let Some(rss) = rss_bytes(p.pid).filter(|r| *r > max_rss) {
                    tracing::info!(
                        worker = i,
                        pid = p.pid.as_raw(),
                        rss_mb = rss >> 20,
                        max_rss_mb = max_rss >> 20,
                        "MAX_RSS_MB exceeded: recycling"
                    );
                    due = Some(RestartReason::Memory);
                }
            }
            if let Some(reason) = due {
                // Checked once: a failed replacement is retried by replace_retry.
                p.requests_limit = None;
                p.retire_at = None;
                p.rss_exempt = true;
                self.start_successor(i, reason);
            }
        }
    }

    /// SIGHUP: one slot at a time, start a replacement from the binary and
    /// move on once it is ready (the worker it replaces then drains).
    fn advance_rolling(&mut self) {
        let Some(&i) = self.rolling.front() else {
            return;
        };
        let slot = &mut self.slots[i];
        if slot.retired {
            self.rolling.pop_front();
            return;
        }
        if slot.successor.is_some() {
            return; // a replacement is booting: wait for it
        }
        match &slot.current {
            None => {
                // Being respawned: that start executes the binary.
                slot.force_exec = true;
                self.rolling.pop_front();
            }
            Some(p) if !p.is_ready() => {}
            Some(_) => self.start_successor(i, RestartReason::Hup),
        }
    }
}

/// Leaves a forked child at once: no destructor, no flush of buffers that
/// the fork copied from the supervisor.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only terminates the calling process.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(code)
    }
}

fn ready_ms(p: &Proc) -> u64 {
    p.ready_at
        .map_or(0, |t| t.duration_since(p.spawned).as_millis() as u64)
}

fn backoff(crashes: u32) -> Duration {
    if crashes == 0 {
        Duration::ZERO
    } else {
        (Duration::from_millis(100) * (1u32 << (crashes - 1).min(10))).min(MAX_BACKOFF)
    }
}

fn describe_exit(code: Option<i32>, killed: Option<KillCause>) -> String {
    match (code, killed) {
        (_, Some(k)) => format!("killed by the supervisor ({k:?})"),
        (Some(c), None) => format!("exit code {c}"),
        (None, None) => "killed by a signal".to_string(),
    }
}

fn reason_name(reason: RestartReason) -> &'static str {
    match reason {
        RestartReason::Crash => "crash",
        RestartReason::MaxRequests => "max_requests",
        RestartReason::Hup => "hup",
        RestartReason::Heartbeat => "heartbeat",
        RestartReason::Lifetime => "lifetime",
        RestartReason::Memory => "memory",
    }
}

/// Resident set size of a process, from /proc/PID/statm.
fn rss_bytes(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * super::page_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}

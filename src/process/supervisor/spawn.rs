//! Starting a worker process, and the child's side of the fork.
//!
//! Fork (asserting first that the supervisor has one thread), then in the
//! child set `PR_SET_PDEATHSIG` and check the parent (so a supervisor killed
//! with SIGKILL leaves no orphan), restore the signal mask, and either
//! execute the binary from the path resolved at start-up (`WORKER_SPAWN=exec`,
//! the default; always for SIGHUP) with the slot's sockets, the metrics
//! memfd and the notification pipe inherited (see [`handoff`]), or run the
//! worker code that the fork copied (`WORKER_SPAWN=fork`).
//!
//! Decides nothing: which worker to start, and when, is the loop's call.

use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::time::Instant;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult};

use super::policy::{Recycle, Reports, EXIT_EXEC_FAILED};
use super::{Proc, Successor, Supervisor};
use crate::config::WorkerSpawn;
use crate::metrics::RestartReason;
use crate::process::handoff::{self, Handoff};
use crate::process::notify::{self, Notifier, Reader};
use crate::process::{worker, EXIT_BOOT_FAILURE};

impl Supervisor {
    /// Starts the slot's worker (no worker is running in it).
    pub(super) fn start_current(&mut self, slot: usize) -> anyhow::Result<()> {
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
    pub(super) fn start_successor(&mut self, slot: usize, reason: RestartReason) {
        let exec = reason == RestartReason::Hup || self.cfg.worker_spawn == WorkerSpawn::Exec;
        match self.spawn(slot, exec, false) {
            Ok(proc) => {
                tracing::info!(
                    worker = slot,
                    pid = proc.pid.as_raw(),
                    old_pid = self.slots[slot].current.as_ref().map(|p| p.pid.as_raw()),
                    reason = reason.name(),
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
        let threads = crate::procfs::thread_count();
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
            Some(self.exec_env(slot, &notify_write, budget_pools)?)
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
                    exec,
                    reports: Reports::new(self.shape.runtimes, spawned),
                    killed: None,
                    recycle: Recycle::default(),
                    drain_deadline: None,
                })
            }
        }
    }

    /// The environment of an executed worker: ours, plus the handoff of the
    /// slot's descriptors.
    fn exec_env(
        &self,
        slot: usize,
        notify_write: &OwnedFd,
        budget_pools: usize,
    ) -> anyhow::Result<Vec<CString>> {
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
        Ok(env)
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
        let mut info = crate::process::worker_info(&self.cfg, &self.shape, base);
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
}

pub(super) fn cstring(bytes: &[u8]) -> anyhow::Result<CString> {
    CString::new(bytes).map_err(|_| anyhow::anyhow!("argument or path with a NUL byte"))
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

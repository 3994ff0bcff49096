//! The supervisor's reactions to events: signals, worker notifications
//! (READY, heartbeats) and worker exits. Each asks [`policy`] what to do and
//! does it; none blocks.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::policy::{self, Recycle, BOOT_FAILURE_LIMIT, CRASH_LIMIT, CRASH_WINDOW};
use super::{describe_exit, Proc, Role, Successor, Supervisor};
use crate::metrics::{RestartReason, WorkerState};
use crate::process::notify;

impl Supervisor {
    pub(super) fn read_signals(&mut self) -> anyhow::Result<()> {
        loop {
            let Some(Ok(Some(info))) = self.sfd.as_ref().map(|s| s.read_signal()) else {
                return Ok(());
            };
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                self.on_signal(signal)?;
            }
        }
    }

    pub(super) fn on_signal(&mut self, signal: Signal) -> anyhow::Result<()> {
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
                self.stopping = Some(policy::stop_deadline(
                    Instant::now(),
                    self.cfg.graceful_timeout,
                    false,
                ));
                self.release_sockets();
            }
            Signal::SIGHUP if self.stopping.is_none() => {
                self.rolling = policy::rolling_order(&self.slot_views());
                tracing::info!(
                    workers = self.rolling.len(),
                    exe = %self.exe.to_string_lossy(),
                    "SIGHUP: rolling restart from the binary's path, one worker at a time"
                );
            }
            Signal::SIGTTIN if self.stopping.is_none() => {
                let index = match policy::scale_up(&self.slot_views()) {
                    policy::ScaleUp::Reuse(i) => {
                        if self.slots[i].listeners.is_empty() {
                            self.slots[i].listeners = self.bind_slot()?;
                        }
                        self.slots[i].retired = false;
                        i
                    }
                    policy::ScaleUp::Add => self.add_slot()?,
                };
                tracing::info!(worker = index, "SIGTTIN: adding a worker");
                if let Err(e) = self.start_current(index) {
                    tracing::error!(worker = index, error = %format!("{e:#}"), "could not start the worker");
                    self.slots[index].respawn_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            Signal::SIGTTOU if self.stopping.is_none() => {
                if let Some(i) = policy::scale_down(&self.slot_views()) {
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
                } else {
                    tracing::warn!("SIGTTOU ignored: one worker is the minimum");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Stops every worker: SIGTERM (drain) or SIGQUIT (fast).
    pub(super) fn begin_stop(&mut self, signal: Signal) {
        self.stopping = Some(policy::stop_deadline(
            Instant::now(),
            self.cfg.graceful_timeout,
            signal == Signal::SIGTERM,
        ));
        self.rolling.clear();
        self.for_each_proc(|p| p.kill(signal, None));
        self.release_sockets();
    }

    /// The supervisor's copies of the listening sockets close now, so the
    /// sockets close once the workers stop accepting: new connections are
    /// refused at once instead of waiting in a queue nobody serves.
    pub(super) fn release_sockets(&mut self) {
        for slot in &mut self.slots {
            slot.listeners.clear();
        }
        self.shared = None;
    }

    /// SIGTERM to a worker that leaves its slot: it drains, then exits.
    pub(super) fn retire(&mut self, slot: usize, mut proc: Proc) {
        proc.drain_deadline = Some(policy::drain_deadline(
            Instant::now(),
            self.cfg.graceful_timeout,
        ));
        proc.kill(Signal::SIGTERM, None);
        self.draining.push((slot, proc));
    }

    /// Marks a removed slot empty once no process serves it any more.
    pub(super) fn settle_retired(&mut self, i: usize) {
        let busy = self.draining.iter().any(|(s, _)| *s == i);
        let slot = &self.slots[i];
        if slot.retired && slot.current.is_none() && slot.successor.is_none() && !busy {
            tracing::info!(worker = i, "removed worker has stopped");
            for m in self.metrics_slots(i) {
                m.set_state(WorkerState::Empty);
            }
        }
    }

    /// Reads every worker's notifications and acts on the ready ones.
    pub(super) fn read_notifications(&mut self) {
        let mut ready: Vec<Role> = Vec::new();
        let mut records = Vec::new();
        let now = Instant::now();
        let mut apply = |p: &mut Proc, role: Role, records: &mut Vec<(u8, u8)>| {
            records.clear();
            p.notify.drain(records);
            for &(kind, rt) in records.iter() {
                if p.reports.record(kind == notify::READY, rt as usize, now) {
                    ready.push(role);
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

    pub(super) fn on_current_ready(&mut self, slot: usize) {
        self.boot_failures.ready();
        self.promote(slot);
        let p = self.slots[slot].current.as_ref().expect("current");
        tracing::info!(
            worker = slot,
            pid = p.pid.as_raw(),
            ready_ms = p.reports.boot_ms(),
            exec = p.exec,
            "worker ready"
        );
        if slot == 0 && std::mem::take(&mut self.held_for_budget) {
            // The budget check passed: the held slots start now.
            let now = Instant::now();
            for s in &mut self.slots[1..] {
                if s.current.is_none() && s.successor.is_none() && !s.retired {
                    s.respawn_at.get_or_insert(now);
                }
            }
        }
    }

    pub(super) fn on_successor_ready(&mut self, slot: usize) {
        let Some(Successor { proc, reason }) = self.slots[slot].successor.take() else {
            return;
        };
        self.boot_failures.ready();
        let old = self.slots[slot].current.replace(proc);
        let s = &mut self.slots[slot];
        s.replace_failures = 0;
        s.replace_retry = None;
        for m in self.metrics_slots(slot) {
            m.restarted(reason);
        }
        self.promote(slot);
        let new = self.slots[slot].current.as_ref().expect("current");
        tracing::info!(
            worker = slot,
            pid = new.pid.as_raw(),
            old_pid = old.as_ref().map(|p| p.pid.as_raw()),
            reason = reason.name(),
            ready_ms = new.reports.boot_ms(),
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
    pub(super) fn promote(&mut self, slot: usize) {
        let requests_now = self.slot_requests(slot);
        let limits = self.recycle_limits();
        let metrics_slots: Vec<_> = self.metrics_slots(slot).collect();
        let p = self.slots[slot].current.as_mut().expect("current");
        let boot_ms = p.reports.boot_ms();
        for s in metrics_slots {
            s.begin(p.pid.as_raw() as u32);
            s.set_state(WorkerState::Ready);
            s.set_boot_ms(boot_ms);
        }
        let jitter = policy::Jitter {
            requests: if limits.max_requests > 0 && limits.max_requests_jitter > 0 {
                rand::random_range(0..=limits.max_requests_jitter)
            } else {
                0
            },
            lifetime: if limits.max_lifetime.is_some() {
                rand::random::<f64>()
            } else {
                0.0
            },
        };
        let rss = if limits.max_rss_bytes > 0 {
            crate::procfs::rss_bytes_of(p.pid.as_raw())
        } else {
            None
        };
        p.recycle = Recycle::new(&limits, jitter, Instant::now(), requests_now, rss);
        if p.recycle.rss_exempt() {
            tracing::warn!(
                worker = slot,
                rss_mb = rss.unwrap_or(0) >> 20,
                max_rss_mb = limits.max_rss_bytes >> 20,
                "MAX_RSS_MB is below the memory of a fresh worker: not recycling it for memory"
            );
        }
    }

    /// Collects exited workers and decides what follows.
    pub(super) fn reap(&mut self) -> anyhow::Result<()> {
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
    pub(super) fn reap_blocking(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.live() > 0 && Instant::now() < until {
            let _ = self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(super) fn find(&self, pid: Pid) -> Option<Role> {
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

    pub(super) fn on_exit(&mut self, pid: Pid, code: Option<i32>, status: WaitStatus) {
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
                    reason = s.reason.name(),
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
                for ms in self.metrics_slots(slot) {
                    if ms.pid() == pid.as_raw() as u64 {
                        ms.set_state(WorkerState::Empty);
                    }
                }
                self.on_current_exit(slot, p, code);
            }
        }
    }

    /// A slot's worker exited without being asked to.
    pub(super) fn on_current_exit(&mut self, slot: usize, p: Proc, code: Option<i32>) {
        let now = Instant::now();
        if !p.is_ready() {
            if let Some(why) = policy::cannot_boot(code) {
                return self.fail(anyhow::anyhow!(
                    "worker {slot} (pid {}) could not boot: {why}; stopping the supervisor",
                    p.pid
                ));
            }
            if self.boot_failures.died_unready() {
                return self.fail(anyhow::anyhow!(
                    "{BOOT_FAILURE_LIMIT} workers in a row died before they were ready \
                     (last: worker {slot}, pid {}, {}); stopping the supervisor",
                    p.pid,
                    describe_exit(code, p.killed)
                ));
            }
        }
        let reason = policy::restart_reason(p.killed);
        for m in self.metrics_slots(slot) {
            m.restarted(reason);
        }
        if self.crash_window.record(now) {
            return self.fail(anyhow::anyhow!(
                "{CRASH_LIMIT} worker crashes within {}s: crash loop, stopping the supervisor",
                CRASH_WINDOW.as_secs()
            ));
        }
        let slot_ref = &mut self.slots[slot];
        // A recycling retry was for the worker that just died.
        slot_ref.replace_retry = None;
        let backoff = slot_ref.crashes.on_death(p.reports.ready_at(), now);
        tracing::warn!(
            worker = slot,
            pid = p.pid.as_raw(),
            cause = describe_exit(code, p.killed),
            restart_reason = reason.name(),
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
    pub(super) fn replacement_failed(&mut self, slot: usize, reason: RestartReason) {
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
        let wait = policy::replace_retry_wait(s.replace_failures);
        s.replace_retry = Some((Instant::now() + wait, reason));
        tracing::warn!(
            worker = slot,
            retry_in_ms = wait.as_millis() as u64,
            "recycling postponed"
        );
    }

    /// Stops the supervisor with an error once the workers have drained.
    pub(super) fn fail(&mut self, e: anyhow::Error) {
        tracing::error!(error = %format!("{e:#}"), "supervisor stopping");
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
        if self.stopping.is_none() {
            self.begin_stop(Signal::SIGTERM);
        }
    }
}

//! Where CPU-heavy work runs: password hashing and grading.
//!
//! `CPU_OFFLOAD=pool` sends jobs to a small pool of OS threads (one per
//! usable CPU by default) running at a lower scheduling priority than the
//! event loop, behind a bounded queue: when the queue is full the caller
//! gets a 503 at once instead of joining an ever-growing line, so a login
//! flood cannot starve cheap reads. `CPU_OFFLOAD=inline` runs the job on the
//! event-loop thread itself, reproducing the single-threaded Python
//! pathology (one slow request blocks every other request of the worker).
//!
//! The pool's threads are created on first use, after any fork.
//!
//! Also how many CPUs this process may use (affinity mask and cgroup quota,
//! read by [`cgroup`]), which `PROCESSES=auto` and the pool size follow,
//! and CPU time burned on the calling thread ([`burn`]: `APP_CPU_COST_US`).

pub mod burn;
pub mod cgroup;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::CpuOffload;
use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct CpuPool {
    mode: CpuOffload,
    threads: usize,
    queue: usize,
    /// Jobs accepted and not yet finished (running or waiting).
    pending: Arc<AtomicUsize>,
    sender: OnceLock<Sender<Job>>,
}

impl CpuPool {
    pub fn new(mode: CpuOffload, threads: usize, queue: usize) -> Self {
        CpuPool {
            mode,
            threads: threads.max(1),
            queue,
            pending: Arc::new(AtomicUsize::new(0)),
            sender: OnceLock::new(),
        }
    }

    pub fn mode(&self) -> CpuOffload {
        self.mode
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` per the offload mode; `Unavailable` when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.mode == CpuOffload::Inline {
            return Ok(job());
        }
        // Admit at most one running job per thread plus `queue` waiting.
        let limit = self.threads + self.queue;
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(ApiError::Unavailable {
                what: "CPU pool",
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pending = self.pending.clone();
        let boxed: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            pending.fetch_sub(1, Ordering::AcqRel);
            if let Ok(value) = result {
                let _ = tx.send(value);
            }
        });
        if self.sender().send(boxed).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Internal(anyhow::anyhow!("CPU pool is gone")));
        }
        rx.await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("CPU pool job panicked")))
    }

    fn sender(&self) -> &Sender<Job> {
        self.sender.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("cpu-{i}"))
                    .spawn(move || worker_loop(rx))
                    .expect("spawn CPU pool thread");
            }
            tx
        })
    }
}

fn worker_loop(rx: Arc<Mutex<Receiver<Job>>>) {
    lower_thread_priority();
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job drops its result sender (the caller sees an
            // internal error) and this thread lives on.
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Renices the calling thread (Linux threads have their own nice value) so
/// the event loops win the CPU over hashing under contention.
#[allow(unsafe_code)]
fn lower_thread_priority() {
    // SAFETY: plain syscalls on the calling thread with no pointers involved.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5);
    }
}

/// CPUs this process may run on (affinity mask and cgroup CPU quota).
pub fn usable_cpus() -> (usize, String) {
    let affinity = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|i| set.is_set(*i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
        .max(1);
    match cgroup_cpu_quota() {
        Some(quota) if quota.ceil() < affinity as f64 => (
            (quota.ceil() as usize).max(1),
            format!("cgroup CPU quota {quota:.2} < {affinity} CPUs in the affinity mask"),
        ),
        Some(quota) => (
            affinity,
            format!("{affinity} CPUs in the affinity mask (cgroup quota {quota:.2})"),
        ),
        None => (
            affinity,
            format!("{affinity} CPUs in the affinity mask, no cgroup quota"),
        ),
    }
}

/// The cgroup CPU quota in CPUs, if one is set (see [`cgroup`]).
pub fn cgroup_cpu_quota() -> Option<f64> {
    cgroup::cpu_quota_at(Path::new("/proc/self"), Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never more than the CPUs the kernel lets this process use, read
    /// independently from /proc (never the host's cores).
    #[test]
    fn usable_cpus_stay_within_the_allowed_list() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let allowed: usize = list
            .split(',')
            .map(|range| match range.split_once('-') {
                Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                None => 1,
            })
            .sum();
        let (n, why) = usable_cpus();
        assert!(
            n >= 1 && n <= allowed,
            "{n} usable of {allowed} allowed: {why}"
        );
    }

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        let pool = Arc::new(CpuPool::new(CpuOffload::Pool, 1, 0));
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        // Occupies the only thread until we let it go.
        let p = pool.clone();
        let first = tokio::spawn(async move { p.run(move || block_rx.recv().ok()).await });
        // Give the job time to reach the thread.
        let mut refused = false;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if pool.run(|| ()).await.is_err() {
                refused = true;
                break;
            }
        }
        block_tx.send(()).unwrap();
        assert!(
            refused,
            "a second job must be refused while the only thread is busy"
        );
        assert!(first.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn inline_runs_on_the_caller() {
        let pool = CpuPool::new(CpuOffload::Inline, 1, 0);
        let caller = std::thread::current().id();
        let ran_on = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_eq!(ran_on, caller);
    }
}

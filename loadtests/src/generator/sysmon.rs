//! The generator's self-measurement: CPU time of its own worker threads
//! (`getrusage(RUSAGE_THREAD)`, so an in-process target or the main thread
//! is not counted), its peak RSS, and how busy the whole machine was
//! (`/proc/stat`, read by `procfs`), which tells when the generator and the server competed for
//! the same cores. Linux only; readings that are unavailable come back as
//! `None` rather than as made-up zeros. It reads; judging whether the
//! generator was saturated is the run report's business.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use procfs::prelude::*;
use procfs::{CpuTime, KernelStats};

fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(tv.tv_sec().max(0) as u64)
        + Duration::from_micros(tv.tv_usec().max(0) as u64)
}

/// CPU time consumed so far by the calling thread: `(user, system)`.
pub fn thread_cpu() -> Option<(Duration, Duration)> {
    let u = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    Some((timeval(u.user_time()), timeval(u.system_time())))
}

/// Peak resident set size of this process, in bytes.
pub fn process_max_rss_bytes() -> Option<u64> {
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    // Linux reports kilobytes.
    Some(u.max_rss().max(0) as u64 * 1024)
}

/// Aggregate CPU time counters of the machine from the first line of
/// `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat` now.
    pub fn read() -> Option<Self> {
        KernelStats::current()
            .ok()
            .map(|k| Self::from_ticks(&k.total))
    }

    /// Parses the text of a `/proc/stat`.
    pub fn parse(text: &str) -> Option<Self> {
        KernelStats::from_read(text.as_bytes(), procfs::current_system_info())
            .ok()
            .map(|k| Self::from_ticks(&k.total))
    }

    /// Busy and total time of the `cpu ` line: user nice system idle iowait
    /// irq softirq steal (guest time is already included in user).
    fn from_ticks(t: &CpuTime) -> Self {
        let idle = t.idle + t.iowait.unwrap_or(0);
        let total = [t.iowait, t.irq, t.softirq, t.steal]
            .into_iter()
            .flatten()
            .sum::<u64>()
            + t.user
            + t.nice
            + t.system
            + t.idle;
        Self {
            busy: total - idle,
            total,
        }
    }

    /// Fraction of all CPUs that was busy between `self` and `later`.
    pub fn busy_fraction_until(&self, later: &MachineCpu) -> Option<f64> {
        let dt = later.total.checked_sub(self.total)?;
        let db = later.busy.checked_sub(self.busy)?;
        (dt > 0).then(|| db as f64 / dt as f64)
    }
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let stat = |cpu: &str| format!("{cpu}\ncpu0 1 2 3 4\nctxt 9\nbtime 1\nprocesses 3\n");
        let a = MachineCpu::parse(&stat("cpu  100 0 50 800 50 0 0 0 0 0")).unwrap();
        assert_eq!(
            a,
            MachineCpu {
                busy: 150,
                total: 1000
            }
        );
        let b = MachineCpu::parse(&stat("cpu  200 0 100 1600 100 0 0 0 0 0")).unwrap();
        assert_eq!(a.busy_fraction_until(&b), Some(0.15));
        assert_eq!(MachineCpu::parse("intr 1 2 3"), None);
    }

    /// Burning CPU on this thread shows up in its own counters.
    #[test]
    fn thread_cpu_advances() {
        let (u0, s0) = thread_cpu().unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        // Spin until this thread has been charged 20 ms, however busy the
        // machine is (bounded by 10 s of wall time).
        let used = loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let (u1, s1) = thread_cpu().unwrap();
            let used = (u1 + s1) - (u0 + s0);
            if used >= Duration::from_millis(20) || t.elapsed() > Duration::from_secs(10) {
                break used;
            }
        };
        std::hint::black_box(x);
        assert!(used >= Duration::from_millis(20), "{used:?}");
        // it is this thread's time, not the wall clock's
        assert!(used <= t.elapsed() + Duration::from_millis(20));
        assert!(process_max_rss_bytes().unwrap() > 0);
        assert!(MachineCpu::read().is_some());
    }
}

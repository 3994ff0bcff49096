//! CPU time burned on the calling thread: the stand-in for a framework's
//! per-request work (`APP_CPU_COST_US`).
//!
//! The amount is measured with the thread's own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), not the wall clock and not a calibrated
//! count of work units. A wall-clock spin would burn less CPU the more the
//! thread is preempted (three workers on one CPU would each get a third),
//! so the cost per request would depend on the contention the experiment
//! measures; a count of work units would cost a different CPU time on
//! every machine and clock speed. The thread's CPU clock makes the knob
//! what the documents state: CPU per request, `1 / cost` requests per
//! second per CPU at most.

use std::hint::black_box;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// Multiply-adds between two reads of the clock (a few microseconds: the
/// read is a system call, so reading it less often keeps the burn mostly
/// user time; the overshoot is at most one round).
const ROUND: u32 = 4096;

/// This thread's CPU time so far (user and system).
pub fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Keeps the calling thread busy until it has used `cost` more CPU time
/// (time it spends preempted does not count). Zero returns at once.
pub fn burn(cost: Duration) {
    if cost.is_zero() {
        return;
    }
    let until = thread_cpu_time() + cost;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while thread_cpu_time() < until {
        for _ in 0..ROUND {
            x = black_box(
                x.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
    }
    black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's CPU clock advances by the cost asked, give or take a
    /// round of work.
    #[test]
    fn burns_the_cpu_time_asked_on_this_thread() {
        let before = thread_cpu_time();
        burn(Duration::from_millis(30));
        let used = thread_cpu_time() - before;
        assert!(
            used >= Duration::from_millis(30) && used < Duration::from_millis(40),
            "{used:?}"
        );
        let before = thread_cpu_time();
        burn(Duration::ZERO);
        assert!(thread_cpu_time() - before < Duration::from_millis(1));
    }
}

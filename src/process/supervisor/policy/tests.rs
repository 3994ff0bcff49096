//! One test per rule of the supervisor's policy.

use super::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff(0), Duration::ZERO);
    assert_eq!(backoff(1), Duration::from_millis(100));
    assert_eq!(backoff(3), Duration::from_millis(400));
    assert_eq!(backoff(30), MAX_BACKOFF);
}

#[test]
fn a_crash_streak_backs_off_until_a_stable_run() {
    let t0 = Instant::now();
    let mut streak = CrashStreak::default();
    // Died before it was ready: the first respawn is immediate, the
    // next ones wait longer and longer.
    assert_eq!(streak.on_death(None, t0), Duration::ZERO);
    assert_eq!(streak.on_death(None, t0), 100 * MS);
    assert_eq!(streak.on_death(Some(t0), t0 + 9 * SEC), 200 * MS);
    // Ready for STABLE_RUN before dying: the streak starts again.
    assert_eq!(streak.on_death(Some(t0), t0 + STABLE_RUN), Duration::ZERO);
    assert_eq!(streak.on_death(None, t0), 100 * MS);
}

#[test]
fn the_crash_window_trips_at_the_limit_within_the_window() {
    let t0 = Instant::now();
    let mut window = CrashWindow::default();
    for i in 0..CRASH_LIMIT - 1 {
        assert!(!window.record(t0 + i as u32 * SEC), "crash {i}");
    }
    assert!(window.record(t0 + CRASH_WINDOW));
    // Crashes spread wider than the window never trip it.
    let mut sparse = CrashWindow::default();
    for i in 0..3 * CRASH_LIMIT as u32 {
        assert!(!sparse.record(t0 + i * (CRASH_WINDOW / (CRASH_LIMIT as u32 - 1) + SEC)));
    }
}

#[test]
fn boot_failures_stop_after_the_limit_in_a_row() {
    let mut failures = BootFailures::default();
    for _ in 1..BOOT_FAILURE_LIMIT {
        assert!(!failures.died_unready());
    }
    failures.ready();
    for _ in 1..BOOT_FAILURE_LIMIT {
        assert!(!failures.died_unready());
    }
    assert!(failures.died_unready());
}

#[test]
fn exit_codes_that_mean_a_worker_cannot_boot() {
    assert!(cannot_boot(Some(EXIT_BOOT_FAILURE)).is_some());
    assert!(cannot_boot(Some(EXIT_EXEC_FAILED)).is_some());
    assert!(cannot_boot(Some(EXIT_BUDGET_REFUSED))
        .unwrap()
        .contains("CONNECTION_BUDGET"));
    for code in [None, Some(0), Some(1), Some(101)] {
        assert_eq!(cannot_boot(code), None, "{code:?}");
    }
}

#[test]
fn the_boot_timeout_is_at_least_the_minimum_or_the_heartbeat() {
    assert_eq!(boot_timeout(None), MIN_BOOT_TIMEOUT);
    assert_eq!(boot_timeout(Some(5 * SEC)), MIN_BOOT_TIMEOUT);
    assert_eq!(boot_timeout(Some(90 * SEC)), 90 * SEC);
    let t0 = Instant::now();
    let mut r = Reports::new(1, t0);
    assert!(!r.boot_overdue(t0 + MIN_BOOT_TIMEOUT, MIN_BOOT_TIMEOUT));
    assert!(r.boot_overdue(t0 + MIN_BOOT_TIMEOUT + MS, MIN_BOOT_TIMEOUT));
    r.record(true, 0, t0 + SEC);
    assert!(!r.boot_overdue(t0 + 10 * MIN_BOOT_TIMEOUT, MIN_BOOT_TIMEOUT));
}

#[test]
fn a_worker_is_ready_once_every_event_loop_reported_ready() {
    let t0 = Instant::now();
    let mut r = Reports::new(2, t0);
    assert!(!r.record(false, 0, t0 + MS), "a heartbeat is not READY");
    assert!(!r.record(true, 0, t0 + 2 * MS));
    assert!(
        !r.record(true, 0, t0 + 3 * MS),
        "one loop twice is not both"
    );
    assert!(!r.record(true, 7, t0 + 4 * MS), "unknown loops are ignored");
    assert!(!r.is_ready());
    assert!(r.record(true, 1, t0 + 5 * MS));
    assert_eq!(r.ready_at(), Some(t0 + 5 * MS));
    assert_eq!(r.boot_ms(), 5);
    assert!(!r.record(true, 1, t0 + 6 * MS), "ready only once");
}

#[test]
fn the_heartbeat_names_the_loop_silent_too_long() {
    let t0 = Instant::now();
    let mut r = Reports::new(3, t0);
    r.record(false, 0, t0 + 10 * SEC);
    r.record(false, 2, t0 + 10 * SEC);
    // Loop 1 has not ticked since the spawn.
    assert_eq!(r.silent_loop(t0 + 30 * SEC, 30 * SEC), None);
    assert_eq!(r.silent_loop(t0 + 31 * SEC, 30 * SEC), Some((1, 31 * SEC)));
    r.record(false, 1, t0 + 31 * SEC);
    assert_eq!(r.silent_loop(t0 + 31 * SEC, 30 * SEC), None);
}

#[test]
fn kills_for_a_heartbeat_count_as_heartbeat_restarts() {
    assert_eq!(
        restart_reason(Some(KillCause::Heartbeat)),
        RestartReason::Heartbeat
    );
    for killed in [
        None,
        Some(KillCause::BootTimeout),
        Some(KillCause::DrainTimeout),
    ] {
        assert_eq!(restart_reason(killed), RestartReason::Crash);
    }
}

fn limits() -> RecycleLimits {
    RecycleLimits {
        max_requests: 100,
        max_requests_jitter: 10,
        max_lifetime: Some(100 * SEC),
        max_rss_bytes: 1000,
    }
}

#[test]
fn max_requests_counts_from_promotion_plus_jitter() {
    let t0 = Instant::now();
    let l = RecycleLimits {
        max_requests: 100,
        max_requests_jitter: 10,
        // The other rules off (the default).
        ..RecycleLimits::default()
    };
    let jitter = Jitter {
        requests: 7,
        lifetime: 0.0,
    };
    let mut r = Recycle::new(&l, jitter, t0, 500, None);
    assert_eq!(r.due(&l, 606, t0, || None), None);
    assert_eq!(
        r.due(&l, 607, t0, || None),
        Some(Due::MaxRequests {
            served: 107,
            limit: 107
        })
    );
    // Answered once.
    assert_eq!(r.due(&l, 10_000, t0, || None), None);
    // MAX_REQUESTS=0: never.
    let off = RecycleLimits {
        max_requests: 0,
        ..l
    };
    let mut r = Recycle::new(&off, jitter, t0, 0, None);
    assert_eq!(r.due(&off, u64::MAX, t0, || None), None);
}

#[test]
fn lifetime_ends_after_its_jittered_length() {
    let t0 = Instant::now();
    let l = RecycleLimits {
        max_lifetime: Some(100 * SEC),
        ..RecycleLimits::default()
    };
    let jitter = Jitter {
        requests: 0,
        lifetime: 0.5,
    };
    // 100 s plus 5% (half of the 10% jitter).
    let mut r = Recycle::new(&l, jitter, t0, 0, None);
    assert_eq!(r.due(&l, 0, t0 + 104 * SEC, || None), None);
    assert_eq!(r.due(&l, 0, t0 + 105 * SEC, || None), Some(Due::Lifetime));
    assert_eq!(r.due(&l, 0, t0 + 500 * SEC, || None), None);
}

#[test]
fn memory_is_read_once_per_period_and_recycles_above_the_limit() {
    let t0 = Instant::now();
    let l = RecycleLimits {
        max_rss_bytes: 1000,
        ..RecycleLimits::default()
    };
    let mut r = Recycle::new(&l, Jitter::default(), t0, 0, Some(10));
    let reads = std::cell::Cell::new(0);
    let rss = |v: u64| {
        reads.set(reads.get() + 1);
        Some(v)
    };
    assert_eq!(r.due(&l, 0, t0, || rss(1000)), None, "at the limit is fine");
    assert_eq!(r.due(&l, 0, t0 + RSS_PERIOD / 2, || rss(5000)), None);
    assert_eq!(
        r.due(&l, 0, t0 + RSS_PERIOD, || rss(1001)),
        Some(Due::Memory { rss: 1001 })
    );
    assert_eq!(reads.get(), 2, "not read within the period");
    assert_eq!(r.due(&l, 0, t0 + 10 * RSS_PERIOD, || rss(5000)), None);
}

#[test]
fn a_worker_born_above_the_memory_limit_is_exempt() {
    let t0 = Instant::now();
    let l = limits();
    let mut r = Recycle::new(&l, Jitter::default(), t0, 0, Some(1000));
    assert!(r.rss_exempt());
    assert_eq!(r.due(&l, 0, t0, || Some(1 << 40)), None);
    assert!(!Recycle::new(&l, Jitter::default(), t0, 0, Some(999)).rss_exempt());
    assert!(!Recycle::new(&l, Jitter::default(), t0, 0, None).rss_exempt());
    let no_limit = RecycleLimits {
        max_rss_bytes: 0,
        ..l
    };
    assert!(!Recycle::new(&no_limit, Jitter::default(), t0, 0, Some(1 << 40)).rss_exempt());
}

#[test]
fn requests_win_over_lifetime_and_memory() {
    let t0 = Instant::now();
    let l = limits();
    let mut r = Recycle::new(&l, Jitter::default(), t0, 0, None);
    let due = r.due(&l, 100, t0 + 1000 * SEC, || panic!("not read"));
    assert_eq!(
        due,
        Some(Due::MaxRequests {
            served: 100,
            limit: 100
        })
    );
    assert_eq!(due.unwrap().reason(), RestartReason::MaxRequests);
    let mut r = Recycle::new(&l, Jitter::default(), t0, 0, None);
    let due = r.due(&l, 0, t0 + 1000 * SEC, || panic!("not read"));
    assert_eq!(due.map(Due::reason), Some(RestartReason::Lifetime));
}

#[test]
fn failed_replacements_are_retried_with_a_capped_back_off() {
    assert_eq!(replace_retry_wait(1), 2 * SEC);
    assert_eq!(replace_retry_wait(2), 4 * SEC);
    assert_eq!(replace_retry_wait(5), 32 * SEC);
    assert_eq!(replace_retry_wait(6), MAX_REPLACE_RETRY);
    assert_eq!(replace_retry_wait(40), MAX_REPLACE_RETRY);
}

fn view(retired: bool, occupied: bool) -> SlotView {
    SlotView { retired, occupied }
}

#[test]
fn a_rolling_restart_visits_the_active_slots_in_order() {
    let slots = [
        view(false, true),
        view(true, false),
        view(false, false),
        view(false, true),
    ];
    assert_eq!(rolling_order(&slots), VecDeque::from([0, 2, 3]));
}

#[test]
fn a_rolling_restart_replaces_ready_workers_one_at_a_time() {
    use RollingStep::*;
    assert_eq!(rolling_step(true, false, Some(true)), Skip);
    assert_eq!(rolling_step(false, true, Some(true)), Wait);
    assert_eq!(rolling_step(false, false, Some(false)), Wait);
    assert_eq!(rolling_step(false, false, None), ExecOnRespawn);
    assert_eq!(rolling_step(false, false, Some(true)), Replace);
}

#[test]
fn scaling_up_reuses_a_free_removed_slot_first() {
    assert_eq!(scale_up(&[view(false, true)]), ScaleUp::Add);
    // Removed but still draining: not reusable yet.
    assert_eq!(
        scale_up(&[view(false, true), view(true, true)]),
        ScaleUp::Add
    );
    assert_eq!(
        scale_up(&[view(false, true), view(true, false), view(true, false)]),
        ScaleUp::Reuse(1)
    );
}

#[test]
fn scaling_down_removes_the_last_active_slot_but_never_the_only_one() {
    assert_eq!(scale_down(&[view(false, true)]), None);
    assert_eq!(scale_down(&[view(false, true), view(true, false)]), None);
    assert_eq!(
        scale_down(&[view(false, true), view(false, true), view(true, false)]),
        Some(1)
    );
}

#[test]
fn draining_workers_get_the_graceful_timeout_plus_a_grace() {
    let t0 = Instant::now();
    let deadline = drain_deadline(t0, 30 * SEC);
    assert_eq!(deadline, t0 + 30 * SEC + DRAIN_GRACE);
    assert!(!drain_overdue(Some(deadline), deadline - MS));
    assert!(drain_overdue(Some(deadline), deadline));
    assert!(!drain_overdue(None, deadline + 1000 * SEC));
    assert_eq!(stop_deadline(t0, 30 * SEC, true), deadline);
    assert_eq!(stop_deadline(t0, 30 * SEC, false), t0 + FAST_STOP);
}

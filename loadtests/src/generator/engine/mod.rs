//! The load engine: worker threads, virtual users, the closed and open
//! models, and the self-measurement of each run.
//!
//! Architecture (wrk's): `threads` OS threads, each with its own tokio
//! current-thread runtime and a `LocalSet`, and the virtual users spread
//! round-robin over them. A VU never leaves its thread, so each thread's
//! [`RunRecorder`] is a plain `RefCell` shared by its VUs: recording a
//! request is a few increments in memory the thread owns, with no lock,
//! atomic or channel on the hot path. The recorders are merged exactly when
//! the threads finish.
//!
//! A run has two phases separated by a barrier over all threads: *setup*
//! (each VU's script setup requests, such as a login; timed and recorded
//! separately) and the *measured* phase, whose clock starts only once every
//! thread is ready. VUs without setup requests open their connection when
//! the measured phase starts, as wrk does (the connect is not part of any
//! request's latency).
//!
//! - Closed model: each VU sends its next request when the previous one is
//!   answered (plus think time), until the duration is over or the shared
//!   request budget (`-n`, split exactly over threads) is spent; VU starts
//!   can be ramped or spawned at a rate. Latency runs from the actual send.
//! - Open model: each thread owns a share of the arrival [`Schedule`]; a free
//!   VU takes the next intended send time, sleeps until it and sends, so the
//!   latency is measured from the *intended* time (coordinated omission
//!   corrected, as wrk2 does) and the service time from the actual send. A
//!   request that finds no free connection in time is sent late (counted);
//!   one later than `max_lag` is dropped (counted) instead.
//!
//! Each thread also measures its own CPU time and runs an event-loop lag
//! probe, so the report can tell when the generator itself was saturated.
//!
//! This module owns the threads and the phase change ([`run`]); the run's
//! parameters and raw result are in `config`, a VU's loops in `vu`. It must
//! not judge or format results (the analysis layer does): it
//! hands back a [`RunOutcome`] of merged recorders.

mod config;
mod vu;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::task::LocalSet;

pub use config::{
    Model, Progress, ProgressHook, ProgressTick, RunConfig, RunOutcome, Stop, LAG_PROBE_PERIOD,
    LATE_THRESHOLD, SETUP_CONCURRENCY_PER_THREAD,
};

use super::client::{ConnectCircuit, VuClient, Watchdog};
use super::http::Capture;
use super::scenarios::{ScenarioFactory, Script, SESSION_COOKIE};
use super::schedule::{Schedule, Stage};
use super::sysmon;
use crate::stats::{new_histogram, RunRecorder};
use vu::{closed_vu, lag_probe, open_vu, run_setup};

/// Per-thread state shared by that thread's VUs.
struct ThreadCtx {
    rec: RefCell<RunRecorder>,
    setup_rec: RefCell<RunRecorder>,
    /// The measured window's opening (later than `origin` with `settle`).
    start: Cell<Instant>,
    /// When the run started: ramped VUs start at their offset from it.
    origin: Cell<Instant>,
    deadline: Cell<Option<Instant>>,
    /// Closed model with a request budget: requests this thread may still start.
    budget: Cell<Option<u64>>,
    schedule: RefCell<Option<Schedule>>,
    max_lag: Duration,
    /// The run's connect circuit: the VUs stop when it opens.
    circuit: Arc<ConnectCircuit>,
    completed: Cell<u64>,
    lag: RefCell<Histogram<u64>>,
    setup_failures: Cell<u64>,
}

struct Vu {
    index: usize,
    client: VuClient,
    script: Box<dyn Script>,
    capture: Capture,
    rng: SmallRng,
}

struct ThreadResult {
    rec: RunRecorder,
    setup_rec: RunRecorder,
    end: Instant,
    cpu_user: Duration,
    cpu_system: Duration,
    lag: Histogram<u64>,
    setup_failures: u64,
}

/// Synchronisation of the phase change, used once per run.
struct PhaseSync {
    ready: Barrier,
    go: Barrier,
    start: OnceLock<Instant>,
}

/// Runs a load test to completion on dedicated threads (blocking). When no
/// connect succeeds, the run stops once [`ConnectCircuit::limit_for`] have
/// failed, with a [`super::client::CircuitTrip`] as its error.
pub fn run(cfg: &RunConfig, scenario: Arc<dyn ScenarioFactory>) -> anyhow::Result<RunOutcome> {
    let threads = cfg.effective_threads();
    let endpoints = scenario.endpoints();
    let circuit = Arc::new(ConnectCircuit::new(ConnectCircuit::limit_for(
        cfg.concurrency,
    )));
    let sync = Arc::new(PhaseSync {
        ready: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        start: OnceLock::new(),
    });
    let counters: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let setup_t0 = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for (t, counter) in counters.iter().enumerate() {
        let cfg = cfg.clone();
        let scenario = scenario.clone();
        let sync = sync.clone();
        let counter = counter.clone();
        let endpoints = endpoints.clone();
        let circuit = circuit.clone();
        let h = std::thread::Builder::new()
            .name(format!("quizload-{t}"))
            .spawn(move || {
                worker(
                    t, threads, &cfg, scenario, &endpoints, &sync, counter, circuit,
                )
            })
            .context("cannot spawn a worker thread")?;
        handles.push(h);
    }
    sync.ready.wait();
    let setup_elapsed = setup_t0.elapsed();
    let machine0 = sysmon::MachineCpu::read();
    let start = Instant::now();
    sync.start.set(start).expect("start set once");
    sync.go.wait();

    if !matches!(cfg.progress, Progress::Off) {
        let mut last = 0u64;
        let mut last_t = start;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if last_t.elapsed() >= Duration::from_secs(1) {
                let done: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                let now = Instant::now();
                let tick = ProgressTick {
                    elapsed: now - start,
                    requests: done,
                    rate: (done - last) as f64 / (now - last_t).as_secs_f64(),
                };
                match &cfg.progress {
                    Progress::Hook(hook) => hook(&tick),
                    _ => eprint!(
                        "\r  {:>6.1}s  {:>10} requests  {:>10.0} req/s   ",
                        tick.elapsed.as_secs_f64(),
                        tick.requests,
                        tick.rate
                    ),
                }
                last = done;
                last_t = now;
            }
        }
        if matches!(cfg.progress, Progress::Line) {
            eprintln!();
        }
    }

    let mut results = Vec::with_capacity(threads);
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??,
        );
    }
    let machine1 = sysmon::MachineCpu::read();
    // The measured phase starts when the window opens.
    let start = start + cfg.window_offset();
    let end = results.iter().map(|r| r.end).max().unwrap_or(start);

    let expected = expected_seconds(cfg);
    let mut recorder = RunRecorder::new(&endpoints, expected);
    let mut setup = RunRecorder::new(&endpoints, 1);
    let mut loop_lag = new_histogram();
    let (mut cpu_user, mut cpu_system) = (Duration::ZERO, Duration::ZERO);
    let mut setup_failures = 0;
    for r in &results {
        recorder.merge(&r.rec);
        setup.merge(&r.setup_rec);
        loop_lag.add(&r.lag).expect("same bounds");
        cpu_user += r.cpu_user;
        cpu_system += r.cpu_system;
        setup_failures += r.setup_failures;
    }
    let failed_steps = |rec: &RunRecorder, suffix: &str| -> Vec<(String, u64)> {
        rec.endpoints
            .iter()
            .filter(|e| e.transport.total() > 0)
            .map(|e| (format!("{}{suffix}", e.name), e.transport.total()))
            .collect()
    };
    let mut steps = failed_steps(&setup, " (setup)");
    steps.extend(failed_steps(&recorder, ""));
    if let Some(trip) = circuit.trip(cfg.addr, steps) {
        return Err(trip.into());
    }
    Ok(RunOutcome {
        recorder,
        setup,
        setup_elapsed,
        elapsed: end.saturating_duration_since(start),
        threads,
        cpu_user,
        cpu_system,
        loop_lag,
        machine_busy: match (machine0, machine1) {
            (Some(a), Some(b)) => a.busy_fraction_until(&b),
            _ => None,
        },
        max_rss_bytes: sysmon::process_max_rss_bytes(),
        setup_failures,
    })
}

fn expected_seconds(cfg: &RunConfig) -> usize {
    match (&cfg.stop, &cfg.model) {
        (Stop::Duration(d), _) => d.as_secs() as usize + 1,
        (_, Model::Open { stages, .. }) => stages
            .iter()
            .map(|s| s.seconds)
            .filter(|s| s.is_finite())
            .sum::<f64>() as usize,
        _ => 60,
    }
}

/// Requests of a total `n` that thread `t` of `threads` owns, given the VUs
/// each thread has; exact (the shares add up to `n`).
fn share_of(n: u64, weights: &[u64], t: usize) -> u64 {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return 0;
    }
    let floor = |i: usize| (u128::from(n) * u128::from(weights[i]) / u128::from(total)) as u64;
    let base: u64 = (0..weights.len()).map(floor).sum();
    let extra = n - base;
    floor(t) + u64::from((t as u64) < extra)
}

#[allow(clippy::too_many_arguments)]
fn worker(
    t: usize,
    threads: usize,
    cfg: &RunConfig,
    scenario: Arc<dyn ScenarioFactory>,
    endpoints: &[String],
    sync: &PhaseSync,
    counter: Arc<AtomicU64>,
    circuit: Arc<ConnectCircuit>,
) -> anyhow::Result<ThreadResult> {
    // Whatever happens, take part in both barriers so no thread blocks.
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a tokio runtime");
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            sync.ready.wait();
            sync.go.wait();
            return Err(e);
        }
    };
    let local = LocalSet::new();
    let watchdog = Rc::new(Watchdog::default());
    let vu_indices: Vec<usize> = (t..cfg.concurrency).step_by(threads).collect();
    let vus_per_thread: Vec<u64> = (0..threads)
        .map(|i| (i..cfg.concurrency).step_by(threads).count() as u64)
        .collect();

    let expected = expected_seconds(cfg);
    let ctx = Rc::new(ThreadCtx {
        rec: RefCell::new(RunRecorder::new(endpoints, expected)),
        setup_rec: RefCell::new(RunRecorder::new(endpoints, 1)),
        start: Cell::new(Instant::now()),
        origin: Cell::new(Instant::now()),
        deadline: Cell::new(None),
        budget: Cell::new(None),
        schedule: RefCell::new(None),
        max_lag: match &cfg.model {
            Model::Open { max_lag, .. } => *max_lag,
            Model::Closed { .. } => Duration::MAX,
        },
        circuit: circuit.clone(),
        completed: Cell::new(0),
        lag: RefCell::new(new_histogram()),
        setup_failures: Cell::new(0),
    });

    // Setup phase: connect and run the scripts' setup requests (unless VUs
    // are ramped, in which case they do both when they start).
    let ramped = cfg.ramped();
    let (vus, dog): (Vec<Vu>, _) = local.block_on(&rt, async {
        // Runs until the end of the measured phase (aborted there).
        let dog = tokio::task::spawn_local(watchdog.clone().run(Watchdog::period_for(cfg.timeout)));
        let sem = Rc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY_PER_THREAD));
        let mut handles = Vec::with_capacity(vu_indices.len());
        for &i in &vu_indices {
            let mut vu = Vu {
                index: i,
                client: VuClient::new(cfg.addr, cfg.timeout, &watchdog, circuit.clone()),
                script: scenario.make(i),
                capture: Capture {
                    cookie_name: Some(SESSION_COOKIE.to_string()),
                    ..Capture::default()
                },
                rng: SmallRng::seed_from_u64(
                    cfg.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ),
            };
            let ctx = ctx.clone();
            let sem = sem.clone();
            handles.push(tokio::task::spawn_local(async move {
                let _permit = sem.acquire().await.expect("semaphore never closed");
                if !ramped {
                    // Setup requests connect as they need to; the others
                    // connect when the measured phase starts (see
                    // `connect_at_start`).
                    run_setup(&ctx, &mut vu, false, &ctx.setup_rec).await;
                }
                vu
            }));
        }
        let mut vus = Vec::with_capacity(handles.len());
        for h in handles {
            vus.push(h.await.expect("setup task panicked"));
        }
        (vus, dog)
    });

    sync.ready.wait();
    sync.go.wait();
    let origin = *sync.start.get().expect("start set before go");
    ctx.origin.set(origin);
    let start = origin + cfg.window_offset();
    ctx.start.set(start);
    match cfg.stop {
        Stop::Duration(d) => ctx.deadline.set(Some(start + d)),
        Stop::Requests(n) => {
            if matches!(cfg.model, Model::Closed { .. }) {
                ctx.budget.set(Some(share_of(n, &vus_per_thread, t)));
            }
        }
    }
    if let Model::Open {
        stages, arrival, ..
    } = &cfg.model
    {
        let mut stages = stages.clone();
        let limit = match cfg.stop {
            Stop::Requests(n) => {
                for s in &mut stages {
                    s.seconds = f64::INFINITY;
                }
                stages.truncate(1);
                Some(share_of(n, &vec![1; threads], t))
            }
            Stop::Duration(d) => {
                cut_stages(&mut stages, d.as_secs_f64());
                None
            }
        };
        *ctx.schedule.borrow_mut() = Some(Schedule::new(
            &stages,
            *arrival,
            1.0 / threads as f64,
            t as f64 / threads as f64,
            limit,
            cfg.seed.wrapping_add(t as u64 * 7919),
        ));
    }

    let cpu0 = sysmon::thread_cpu();
    local.block_on(&rt, async {
        let probe = tokio::task::spawn_local(lag_probe(ctx.clone(), counter.clone()));
        let mut handles = Vec::with_capacity(vus.len());
        for vu in vus {
            let ctx = ctx.clone();
            let offset = cfg.start_offset(vu.index);
            let open = matches!(cfg.model, Model::Open { .. });
            handles.push(tokio::task::spawn_local(async move {
                if open {
                    open_vu(&ctx, vu).await;
                } else {
                    closed_vu(&ctx, vu, offset, ramped).await;
                }
            }));
        }
        for h in handles {
            h.await.expect("VU task panicked");
        }
        probe.abort();
        dog.abort();
    });
    let end = Instant::now();
    let cpu1 = sysmon::thread_cpu();
    counter.store(ctx.completed.get(), Ordering::Relaxed);
    let (cpu_user, cpu_system) = match (cpu0, cpu1) {
        (Some((u0, s0)), Some((u1, s1))) => (u1.saturating_sub(u0), s1.saturating_sub(s0)),
        _ => (Duration::ZERO, Duration::ZERO),
    };
    drop(local);
    drop(rt);
    let ctx = Rc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("thread context still shared"))?;
    Ok(ThreadResult {
        rec: ctx.rec.into_inner(),
        setup_rec: ctx.setup_rec.into_inner(),
        end,
        cpu_user,
        cpu_system,
        lag: ctx.lag.into_inner(),
        setup_failures: ctx.setup_failures.get(),
    })
}

/// Cuts a stage list at `total` seconds (a fixed-rate run's single
/// unbounded stage becomes exactly `total` long).
fn cut_stages(stages: &mut Vec<Stage>, total: f64) {
    let mut acc = 0.0;
    let mut out = Vec::with_capacity(stages.len());
    for s in stages.iter() {
        if acc >= total {
            break;
        }
        let len = s.seconds.min(total - acc);
        out.push(Stage {
            seconds: len,
            rate: s.rate,
        });
        acc += len;
    }
    *stages = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shares_are_exact() {
        let w = [3u64, 3, 2];
        for n in [0u64, 1, 7, 8, 1000, 1001] {
            let total: u64 = (0..3).map(|t| share_of(n, &w, t)).sum();
            assert_eq!(total, n, "n = {n}");
        }
        assert_eq!(share_of(10, &[1, 1], 0), 5);
        assert_eq!(share_of(11, &[1, 1], 0), 6);
        assert_eq!(share_of(11, &[1, 1], 1), 5);
    }

    #[test]
    fn stages_are_cut_at_duration() {
        let mut s = vec![Stage {
            seconds: f64::INFINITY,
            rate: 5.0,
        }];
        cut_stages(&mut s, 3.0);
        assert_eq!(
            s,
            vec![Stage {
                seconds: 3.0,
                rate: 5.0
            }]
        );
        let mut s = vec![
            Stage {
                seconds: 2.0,
                rate: 1.0,
            },
            Stage {
                seconds: 2.0,
                rate: 2.0,
            },
            Stage {
                seconds: 2.0,
                rate: 3.0,
            },
        ];
        cut_stages(&mut s, 3.0);
        assert_eq!(
            s,
            vec![
                Stage {
                    seconds: 2.0,
                    rate: 1.0
                },
                Stage {
                    seconds: 1.0,
                    rate: 2.0
                }
            ]
        );
    }
}

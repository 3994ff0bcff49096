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

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::task::LocalSet;

use crate::client::{Outcome, VuClient, Watchdog};
use crate::http::Capture;
use crate::scenario::{ScenarioFactory, Script, SESSION_COOKIE};
use crate::schedule::{Arrival, Schedule, Stage};
use crate::stats::{duration_us, new_histogram, RunRecorder};
use crate::sysmon;

/// A request sent more than this after its intended time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(5);
/// Period of the per-thread event-loop lag probe.
pub const LAG_PROBE_PERIOD: Duration = Duration::from_millis(20);
/// Setup requests (logins) in flight at once per thread.
pub const SETUP_CONCURRENCY_PER_THREAD: usize = 32;

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Stop starting requests after this long (in-flight ones finish).
    Duration(Duration),
    /// Send exactly this many requests in total.
    Requests(u64),
}

/// The load model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Each VU sends when its previous request is answered.
    Closed {
        /// Spread VU starts evenly over this long.
        ramp: Duration,
        /// Or start this many VUs per second (Locust's spawn rate).
        spawn_rate: Option<f64>,
    },
    /// Requests are sent on a schedule, whatever the answers do.
    Open {
        /// Rate stages (one stage for a fixed rate). With a duration stop
        /// the last stage is cut at the duration.
        stages: Vec<Stage>,
        arrival: Arrival,
        /// Requests later than this when a connection frees up are dropped.
        max_lag: Duration,
    },
}

/// Everything a run needs besides the scenario.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub addr: SocketAddr,
    /// Worker threads (at most one per VU).
    pub threads: usize,
    /// Virtual users, each with its own keep-alive connection.
    pub concurrency: usize,
    pub stop: Stop,
    pub model: Model,
    /// Per-request timeout (connect, send and full response).
    pub timeout: Duration,
    /// Seed of the VUs' random choices (think time, journey tasks, Poisson).
    pub seed: u64,
    /// Where the per-second progress of the measured phase goes.
    pub progress: Progress,
}

/// The engine's progress once a second during the measured phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgressTick {
    /// Since the start of the measured phase.
    pub elapsed: Duration,
    /// Requests completed so far (all threads).
    pub requests: u64,
    /// Requests completed per second over the last tick.
    pub rate: f64,
}

/// A callback that receives the engine's progress ticks.
pub type ProgressHook = Arc<dyn Fn(&ProgressTick) + Send + Sync>;

/// Where the engine's per-second progress goes.
#[derive(Clone, Default)]
pub enum Progress {
    /// Nowhere.
    #[default]
    Off,
    /// The engine's own line on stderr, redrawn with `\r` (`quizload run`).
    Line,
    /// A caller's callback, e.g. the experiment runner's progress bar.
    Hook(ProgressHook),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Off => "Off",
            Progress::Line => "Line",
            Progress::Hook(_) => "Hook",
        })
    }
}

impl RunConfig {
    /// Threads actually used: at least 1, at most one per VU.
    pub fn effective_threads(&self) -> usize {
        self.threads.clamp(1, self.concurrency.max(1))
    }
}

/// Raw result of a run, before it is turned into a report.
#[derive(Debug)]
pub struct RunOutcome {
    /// Endpoint names in index order.
    pub endpoints: Vec<String>,
    /// Measured phase, merged over threads.
    pub recorder: RunRecorder,
    /// Setup phase (logins), merged over threads.
    pub setup: RunRecorder,
    pub setup_elapsed: Duration,
    /// From the start of the measured phase to the last thread's end.
    pub elapsed: Duration,
    pub threads: usize,
    pub concurrency: usize,
    /// CPU time of the worker threads during the measured phase.
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// Event-loop lag probe, all threads, µs.
    pub loop_lag: Histogram<u64>,
    /// Fraction of the machine's CPUs busy during the measured phase.
    pub machine_busy: Option<f64>,
    pub max_rss_bytes: Option<u64>,
    /// VUs that still had setup requests failing when setup gave up.
    pub setup_failures: u64,
}

/// Per-thread state shared by that thread's VUs.
struct ThreadCtx {
    rec: RefCell<RunRecorder>,
    setup_rec: RefCell<RunRecorder>,
    start: Cell<Instant>,
    deadline: Cell<Option<Instant>>,
    /// Closed model with a request budget: requests this thread may still start.
    budget: Cell<Option<u64>>,
    schedule: RefCell<Option<Schedule>>,
    max_lag: Duration,
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

/// Runs a load test to completion on dedicated threads (blocking).
pub fn run(cfg: &RunConfig, scenario: Arc<dyn ScenarioFactory>) -> anyhow::Result<RunOutcome> {
    let threads = cfg.effective_threads();
    let endpoints = scenario.endpoints();
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
        let h = std::thread::Builder::new()
            .name(format!("quizload-{t}"))
            .spawn(move || worker(t, threads, &cfg, scenario, &endpoints, &sync, counter))
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
    Ok(RunOutcome {
        endpoints,
        recorder,
        setup,
        setup_elapsed,
        elapsed: end.saturating_duration_since(start),
        threads,
        concurrency: cfg.concurrency,
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
        deadline: Cell::new(None),
        budget: Cell::new(None),
        schedule: RefCell::new(None),
        max_lag: match &cfg.model {
            Model::Open { max_lag, .. } => *max_lag,
            Model::Closed { .. } => Duration::MAX,
        },
        completed: Cell::new(0),
        lag: RefCell::new(new_histogram()),
        setup_failures: Cell::new(0),
    });

    // Setup phase: connect and run the scripts' setup requests (unless VUs
    // are ramped, in which case they do both when they start).
    let ramped = matches!(
        &cfg.model,
        Model::Closed { ramp, spawn_rate } if !ramp.is_zero() || spawn_rate.is_some()
    );
    let (vus, dog): (Vec<Vu>, _) = local.block_on(&rt, async {
        // Runs until the end of the measured phase (aborted there).
        let dog = tokio::task::spawn_local(watchdog.clone().run(Watchdog::period_for(cfg.timeout)));
        let sem = Rc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY_PER_THREAD));
        let mut handles = Vec::with_capacity(vu_indices.len());
        for &i in &vu_indices {
            let mut vu = Vu {
                index: i,
                client: VuClient::new(cfg.addr, cfg.timeout, &watchdog),
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
    let start = *sync.start.get().expect("start set before go");
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
            let offset = start_offset(cfg, vu.index);
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

fn start_offset(cfg: &RunConfig, vu: usize) -> Duration {
    match &cfg.model {
        Model::Closed {
            spawn_rate: Some(r),
            ..
        } if *r > 0.0 => Duration::from_secs_f64(vu as f64 / r),
        Model::Closed { ramp, .. } if !ramp.is_zero() => {
            ramp.mul_f64(vu as f64 / cfg.concurrency.max(1) as f64)
        }
        _ => Duration::ZERO,
    }
}

/// Connects the VU (when `connect` is set; the connect is recorded in
/// `connects_into`) and runs its setup requests (recorded as setup).
async fn run_setup(
    ctx: &ThreadCtx,
    vu: &mut Vu,
    connect: bool,
    connects_into: &RefCell<RunRecorder>,
) {
    if connect {
        let _ = vu.client.ensure_connected().await;
        vu.client.drain_into(&mut connects_into.borrow_mut());
    }
    let mut last_failed = false;
    loop {
        let (endpoint, outcome, latency) = {
            let Some(p) = vu.script.setup() else { break };
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let t0 = Instant::now();
            let outcome = vu.client.request(t0, p.bytes, head, &mut vu.capture).await;
            (endpoint, outcome, t0.elapsed())
        };
        let status = {
            let mut rec = ctx.setup_rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            record(&mut rec, endpoint, 0, outcome, latency, None)
        };
        last_failed = !matches!(status, Some(s) if crate::stats::is_success_status(s));
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
    }
    if last_failed {
        ctx.setup_failures.set(ctx.setup_failures.get() + 1);
    }
}

/// Opens the VU's connection when the measured phase starts, unless its
/// setup already did. Connecting here rather than before the clock lets the
/// first requests flow as connections come up, as wrk does: a server whose
/// processes share one listening socket then spreads the connections over
/// its processes as it would in use, instead of one idle process accepting
/// a whole burst. The connect is recorded in the measured phase but not in
/// any request's latency.
async fn connect_at_start(ctx: &ThreadCtx, vu: &mut Vu) {
    if !vu.client.is_connected() {
        // A failure is left to the first request, which records it.
        let _ = vu.client.ensure_connected().await;
        vu.client.drain_into(&mut ctx.rec.borrow_mut());
    }
}

/// Records an outcome; returns the status if there was a response.
#[inline]
fn record(
    rec: &mut RunRecorder,
    endpoint: usize,
    second: usize,
    outcome: Outcome,
    latency: Duration,
    service: Option<Duration>,
) -> Option<u16> {
    match outcome {
        Outcome::Response(info) => {
            rec.record_response(
                endpoint,
                second,
                info.status,
                duration_us(latency),
                service.map(duration_us),
                info.wire_bytes,
            );
            Some(info.status)
        }
        Outcome::Failed(kind) => {
            rec.record_error(endpoint, second, kind);
            None
        }
    }
}

/// A closed-model VU: request, wait for the answer, think, repeat.
async fn closed_vu(ctx: &ThreadCtx, mut vu: Vu, offset: Duration, ramped: bool) {
    let start = ctx.start.get();
    if ramped {
        // A ramped VU connects (and logs in) when it starts: the connect
        // belongs to the measured phase, its setup requests to the setup.
        let at = start + offset;
        if ctx.deadline.get().is_some_and(|d| at >= d) {
            return;
        }
        tokio::time::sleep_until(at.into()).await;
        run_setup(ctx, &mut vu, true, &ctx.rec).await;
    }
    connect_at_start(ctx, &mut vu).await;
    // The clock reading of the previous response's end serves the deadline
    // check (two clock reads per request, not three).
    let mut now = Instant::now();
    loop {
        if ctx.deadline.get().is_some_and(|d| now >= d) {
            break;
        }
        if let Some(b) = ctx.budget.get() {
            if b == 0 {
                break;
            }
            ctx.budget.set(Some(b - 1));
        }
        let (endpoint, outcome, t0, t1) = {
            let p = vu.script.next(&mut vu.rng);
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let t0 = Instant::now();
            let outcome = vu.client.request(t0, p.bytes, head, &mut vu.capture).await;
            (endpoint, outcome, t0, Instant::now())
        };
        let status = {
            let mut rec = ctx.rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            let second = (t1 - start).as_secs() as usize;
            record(&mut rec, endpoint, second, outcome, t1 - t0, None)
        };
        ctx.completed.set(ctx.completed.get() + 1);
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
        now = t1;
        if let Some(think) = vu.script.think(&mut vu.rng) {
            let mut until = Instant::now() + think;
            if let Some(d) = ctx.deadline.get() {
                until = until.min(d);
            }
            tokio::time::sleep_until(until.into()).await;
            now = Instant::now();
        }
    }
}

/// An open-model VU: take the next intended send time, wait for it, send;
/// latency counts from the intended time.
async fn open_vu(ctx: &ThreadCtx, mut vu: Vu) {
    let start = ctx.start.get();
    connect_at_start(ctx, &mut vu).await;
    loop {
        let Some(offset) = ctx
            .schedule
            .borrow_mut()
            .as_mut()
            .and_then(|s| s.next_offset())
        else {
            break;
        };
        let intended = start + offset;
        let now = Instant::now();
        if intended > now {
            tokio::time::sleep_until(intended.into()).await;
            let woke = Instant::now();
            let mut rec = ctx.rec.borrow_mut();
            rec.schedule.intended += 1;
            rec.schedule
                .wake_lag
                .saturating_record(duration_us(woke.saturating_duration_since(intended)));
        } else {
            let mut rec = ctx.rec.borrow_mut();
            rec.schedule.intended += 1;
            if now - intended > ctx.max_lag {
                rec.schedule.dropped += 1;
                continue;
            }
        }
        let (endpoint, outcome, sent, done) = {
            let p = vu.script.next(&mut vu.rng);
            let endpoint = p.endpoint;
            vu.capture.body_wanted = p.want_body;
            let head = p.head;
            let sent = Instant::now();
            {
                let lag = sent.saturating_duration_since(intended);
                let mut rec = ctx.rec.borrow_mut();
                rec.schedule.sent += 1;
                rec.schedule.send_lag.saturating_record(duration_us(lag));
                if lag > LATE_THRESHOLD {
                    rec.schedule.late += 1;
                }
            }
            let outcome = vu
                .client
                .request(sent, p.bytes, head, &mut vu.capture)
                .await;
            (endpoint, outcome, sent, Instant::now())
        };
        let status = {
            let mut rec = ctx.rec.borrow_mut();
            vu.client.drain_into(&mut rec);
            let second = (done - start).as_secs() as usize;
            record(
                &mut rec,
                endpoint,
                second,
                outcome,
                done - intended,
                Some(done - sent),
            )
        };
        ctx.completed.set(ctx.completed.get() + 1);
        vu.script
            .on_response(endpoint, status, &vu.capture, &mut vu.rng);
    }
}

/// Measures how late the thread's event loop wakes a timer, every
/// [`LAG_PROBE_PERIOD`], and publishes the thread's completed count.
async fn lag_probe(ctx: Rc<ThreadCtx>, counter: Arc<AtomicU64>) {
    let mut next = Instant::now() + LAG_PROBE_PERIOD;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        ctx.lag
            .borrow_mut()
            .saturating_record(duration_us(now.saturating_duration_since(next)));
        counter.store(ctx.completed.get(), Ordering::Relaxed);
        next = now + LAG_PROBE_PERIOD;
    }
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

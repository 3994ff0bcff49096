//! One worker: builds its runtime, pools and router after any fork or exec,
//! then serves its listeners until told to drain.
//!
//! `THREADS=1` gives a tokio current-thread runtime (one event loop, the
//! Tornado/Node model); `THREADS=N` a multi-thread runtime with N worker
//! threads. Thread-per-core runs N current-thread runtimes in one process,
//! each with its own listener, pools and metrics slot.
//!
//! Under a supervisor a worker reports through its notification pipe
//! ([`super::notify`]): `READY` once every event loop serves, then a
//! heartbeat per event loop every half second. It leaves its slot's
//! identity in the shared metrics table (pid, state) to the supervisor,
//! which promotes a replacement there only once it is ready, so that a
//! worker still draining never overwrites the figures of the worker that
//! replaced it.

use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notify::{self, Notifier};
use super::EXIT_BOOT_FAILURE;
use crate::app;
use crate::cache::ContentCache;
use crate::config::{BudgetMode, CacheMode, Config};
use crate::cpu::CpuPool;
use crate::metrics::{Metrics, WorkerState};
use crate::password::Passwords;
use crate::server::{self, Lifecycle, ServeOptions};
use crate::sessions::SessionStore;
use crate::state::{AppState, Inner, WorkerInfo};

/// Test hook: a worker panics while booting when the file named by this
/// variable exists (the process tests use it to check how the supervisor
/// handles a worker that cannot boot, and a rolling restart onto a broken
/// build). Not a configuration knob.
pub const TEST_BOOT_PANIC_FILE: &str = "QUIZBENCH_TEST_BOOT_PANIC_FILE";

/// Set once this process has served (for the exit code: a failure before
/// it is a boot failure).
static BOOTED: AtomicBool = AtomicBool::new(false);

/// Builds a worker's state: pools (lazy, so a dependency that is down does
/// not stop the worker from starting), cache, CPU pool. Must run inside the
/// worker's runtime.
pub fn build_state(
    cfg: Arc<Config>,
    worker: WorkerInfo,
    metrics: &'static Metrics,
    lifecycle: Lifecycle,
    cpu_threads: usize,
) -> anyhow::Result<AppState> {
    let db = crate::db::pool(&cfg)?;
    let redis = redis_pool(&cfg)?;
    let sessions = SessionStore::new(
        redis.clone(),
        cfg.redis_prefix.clone(),
        cfg.session_idle,
        cfg.session_absolute,
        cfg.redis_timeout,
    );
    let cache = ContentCache::new(
        cfg.cache_mode,
        cfg.cache_ttl,
        redis.clone(),
        cfg.redis_prefix.clone(),
        cfg.redis_timeout,
    );
    let slot = metrics.slot(worker.index);
    Ok(AppState(Arc::new(Inner {
        passwords: Passwords::new(cfg.argon2)?,
        cpu: CpuPool::new(cfg.cpu_offload, cpu_threads, cfg.cpu_pool_queue),
        classifier: Default::default(),
        db,
        redis,
        sessions,
        cache,
        worker,
        metrics,
        slot,
        lifecycle,
        cfg,
    })))
}

fn redis_pool(cfg: &Config) -> anyhow::Result<crate::redis_pool::RedisPool> {
    crate::redis_pool::pool(
        secrecy::ExposeSecret::expose_secret(&cfg.redis_url),
        cfg.redis_pool_max,
        cfg.redis_timeout,
    )
}

/// The link of a supervised worker process to its supervisor.
pub struct Supervised {
    pub notifier: Notifier,
    /// The supervisor's pid: a worker whose parent changes drains and exits.
    pub parent: nix::unistd::Pid,
}

/// What one event loop needs besides its state.
#[derive(Clone)]
struct LoopContext {
    supervised: Option<Arc<Supervised>>,
    /// Index of this event loop in its process (thread-per-core), else 0.
    runtime: usize,
    handle_signals: bool,
    /// Run the start-up checks (connection budget, seeded accounts when
    /// exposed) with this many pools in the server.
    budget_pools: Option<usize>,
}

impl LoopContext {
    /// True when this process may write the slot's identity fields: always
    /// without a supervisor; under one, once it has promoted this process.
    fn owns_slot(&self, state: &AppState) -> bool {
        self.supervised.is_none() || state.slot.pid() == std::process::id() as u64
    }
}

/// Background duties of an event loop: heartbeat (to the supervisor, or in
/// the shared table), pool gauges and RSS, the content version, and the
/// parent check.
fn spawn_housekeeping(state: AppState, ctx: LoopContext) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            if let Some(sup) = &ctx.supervised {
                let gone = sup.notifier.send(notify::HEARTBEAT, ctx.runtime).is_err()
                    || nix::unistd::getppid() != sup.parent;
                if gone && !state.lifecycle.is_draining() {
                    tracing::warn!(
                        pid = std::process::id(),
                        "the supervisor is gone: draining and exiting"
                    );
                    state.lifecycle.drain();
                }
            }
            if n % 2 == 0 {
                if ctx.owns_slot(&state) {
                    state.publish_gauges();
                }
                if state.cfg.cache_mode != CacheMode::Off {
                    let _ = state.cache.refresh_version().await;
                }
            }
        }
    });
}

/// [`server::serve`] for this worker: its options, shortcut, slot and the
/// route labels.
fn serve(
    state: &AppState,
    listeners: Vec<tokio::net::TcpListener>,
    router: axum::Router,
    lifecycle: &Lifecycle,
) -> impl std::future::Future<Output = bool> {
    let site = server::Site {
        router,
        shortcut: app::shortcut(state),
        opts: ServeOptions::from_config(&state.cfg, state.worker.index),
        slot: state.slot,
        labels: crate::routes::labels(),
        lifecycle: lifecycle.clone(),
    };
    server::serve(listeners, site)
}

/// A worker serving in the current runtime, for tests and embedding.
pub struct RunningWorker {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    pub lifecycle: Lifecycle,
    pub done: tokio::task::JoinHandle<bool>,
}

/// Starts serving `listener` in the current tokio runtime.
pub async fn start(
    cfg: Arc<Config>,
    listener: StdListener,
    metrics: &'static Metrics,
    worker: WorkerInfo,
) -> anyhow::Result<RunningWorker> {
    let addr = listener.local_addr()?;
    let lifecycle = Lifecycle::default();
    let cpu_threads = resolve_cpu_threads(&cfg);
    let state = build_state(cfg.clone(), worker, metrics, lifecycle.clone(), cpu_threads)?;
    let router = app::router(state.clone());
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slot = state.slot;
    slot.begin(std::process::id());
    spawn_housekeeping(
        state.clone(),
        LoopContext {
            supervised: None,
            runtime: 0,
            handle_signals: false,
            budget_pools: None,
        },
    );
    let _ = state.cache.refresh_version().await;
    slot.set_state(WorkerState::Ready);
    let done = tokio::spawn(serve(&state, vec![listener], router, &lifecycle));
    Ok(RunningWorker {
        addr,
        state,
        lifecycle,
        done,
    })
}

pub fn resolve_cpu_threads(cfg: &Config) -> usize {
    if cfg.cpu_pool_threads > 0 {
        cfg.cpu_pool_threads
    } else {
        crate::cpu::usable_cpus().0
    }
}

/// What a worker process needs to run.
pub struct WorkerPlan {
    pub cfg: Arc<Config>,
    pub metrics: &'static Metrics,
    /// `info.index` is the metrics slot of the first event loop; with
    /// thread-per-core, loop `i` uses `info.index + i`.
    pub info: WorkerInfo,
    /// One listener per runtime (thread-per-core) or all of them for one runtime.
    pub listeners: Vec<StdListener>,
    /// The supervisor link (None for a bare single process).
    pub supervised: Option<Arc<Supervised>>,
    /// Run the start-up checks (connection budget, seeded accounts when
    /// exposed), counting this many pools in the whole server (worker 0 of
    /// the first generation only).
    pub budget_pools: Option<usize>,
}

/// Runs a worker to completion on the calling thread (which becomes the
/// event loop, or the first of the thread-per-core loops). Returns when the
/// drain is over.
pub fn run(plan: WorkerPlan) -> anyhow::Result<()> {
    boot_test_hook();
    if plan.cfg.thread_per_core && plan.cfg.threads > 1 {
        return run_thread_per_core(plan);
    }
    let rt = runtime(plan.cfg.threads)?;
    rt.block_on(async move {
        let lifecycle = Lifecycle::default();
        let cpu_threads = resolve_cpu_threads(&plan.cfg);
        let state = build_state(
            plan.cfg.clone(),
            plan.info,
            plan.metrics,
            lifecycle.clone(),
            cpu_threads,
        )?;
        let ctx = LoopContext {
            supervised: plan.supervised,
            runtime: 0,
            handle_signals: true,
            budget_pools: plan.budget_pools,
        };
        serve_state(state, plan.listeners, lifecycle, ctx).await
    })
}

/// Runs a supervised worker process and returns its exit code: 0 after a
/// drain, [`EXIT_BOOT_FAILURE`] when it failed (or panicked) before
/// serving, [`super::budget::EXIT_BUDGET_REFUSED`] when the strict budget
/// check refused, 1 for a failure after it served.
pub fn run_supervised(plan: WorkerPlan) -> i32 {
    let index = plan.info.index;
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(plan))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            if let Some(refused) = e.downcast_ref::<super::budget::BudgetRefused>() {
                tracing::error!(worker = index, "{refused}");
                return super::budget::EXIT_BUDGET_REFUSED;
            }
            let booted = BOOTED.load(Ordering::Relaxed);
            tracing::error!(
                worker = index,
                error = %format!("{e:#}"),
                "{}",
                if booted { "worker failed" } else { "worker failed to boot" }
            );
            if booted {
                1
            } else {
                EXIT_BOOT_FAILURE
            }
        }
        // The panic hook has printed the message.
        Err(_) if BOOTED.load(Ordering::Relaxed) => 1,
        Err(_) => {
            tracing::error!(worker = index, "worker panicked while booting");
            EXIT_BOOT_FAILURE
        }
    }
}

fn boot_test_hook() {
    if let Some(path) = std::env::var_os(TEST_BOOT_PANIC_FILE) {
        if std::path::Path::new(&path).exists() {
            panic!(
                "test hook {TEST_BOOT_PANIC_FILE}: {} exists, panicking at boot",
                path.to_string_lossy()
            );
        }
    }
}

async fn serve_state(
    state: AppState,
    listeners: Vec<StdListener>,
    lifecycle: Lifecycle,
    ctx: LoopContext,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let slot = state.slot;
    if ctx.supervised.is_none() {
        slot.begin(std::process::id());
    }
    let listeners = listeners
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<std::io::Result<Vec<_>>>()?;
    if ctx.handle_signals {
        spawn_signal_handlers(lifecycle.clone(), ctx.supervised.is_some())?;
    }
    spawn_housekeeping(state.clone(), ctx.clone());
    let _ = state.cache.refresh_version().await;
    if let Some(pools) = ctx.budget_pools {
        let strict = state.cfg.connection_budget == BudgetMode::Strict;
        if strict {
            super::budget::enforce(&state.cfg, pools).await?;
        }
        // The exposure check uses the pool: after the budget has counted.
        let state = state.clone();
        tokio::spawn(async move {
            if !strict {
                let _ = super::budget::enforce(&state.cfg, pools).await;
            }
            super::exposure::warn_if_seeded_accounts_exposed(&state).await;
        });
    }
    let router = app::router(state.clone());
    BOOTED.store(true, Ordering::Relaxed);
    match &ctx.supervised {
        Some(sup) => {
            let _ = sup.notifier.send(notify::READY, ctx.runtime);
        }
        None => slot.set_state(WorkerState::Ready),
    }
    tracing::debug!(
        worker = state.worker.index,
        pid = std::process::id(),
        ready_ms = started.elapsed().as_millis() as u64,
        "event loop ready"
    );
    let serving = serve(&state, listeners, router, &lifecycle);
    tokio::pin!(serving);
    let clean = tokio::select! {
        clean = &mut serving => clean,
        _ = lifecycle.wait_draining() => {
            if ctx.owns_slot(&state) {
                slot.set_state(WorkerState::Draining);
            }
            serving.await
        }
    };
    if !clean {
        tracing::warn!(
            worker = state.worker.index,
            pid = std::process::id(),
            "drain deadline reached; remaining connections closed"
        );
    }
    if ctx.owns_slot(&state) {
        slot.set_state(WorkerState::Empty);
    }
    state.db.close().await;
    Ok(())
}

fn spawn_signal_handlers(lifecycle: Lifecycle, supervised: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!(pid = std::process::id(), "SIGTERM: draining");
                    lifecycle.drain();
                }
                _ = int.recv() => fast_exit("SIGINT"),
                _ = quit.recv() => fast_exit("SIGQUIT"),
                // A worker never restarts itself: the supervisor handles
                // SIGHUP (a terminal hang-up reaches the whole group).
                _ = hup.recv() => if !supervised {
                    tracing::warn!(
                        "SIGHUP ignored: rolling restarts need a supervisor \
                         (PROCESSES>1 or SUPERVISOR=true)"
                    );
                },
            }
        }
    });
    Ok(())
}

/// SIGINT/SIGQUIT: stop at once, as gunicorn does.
fn fast_exit(signal: &str) {
    tracing::info!(pid = std::process::id(), signal, "fast stop");
    std::process::exit(0);
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("event-loop")
            .enable_all()
            .build()
    }
}

/// Thread-per-core: N OS threads, each a current-thread runtime with its
/// own listener (SO_REUSEPORT), pools and metrics slot; the first thread
/// also handles signals and shares the drain with the others.
fn run_thread_per_core(plan: WorkerPlan) -> anyhow::Result<()> {
    let lifecycle = Lifecycle::default();
    let cpu_threads = resolve_cpu_threads(&plan.cfg);
    let n = plan.listeners.len();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let mut handles = Vec::with_capacity(n);
    for (i, listener) in plan.listeners.into_iter().enumerate() {
        let cfg = plan.cfg.clone();
        let metrics = plan.metrics;
        let mut info = plan.info.clone();
        info.index = plan.info.index + i;
        let ctx = LoopContext {
            supervised: plan.supervised.clone(),
            runtime: i,
            handle_signals: i == 0,
            budget_pools: plan.budget_pools.filter(|_| i == 0),
        };
        let lifecycle = lifecycle.clone();
        let done = done_tx.clone();
        let event_loop = move || -> anyhow::Result<()> {
            let rt = runtime(1)?;
            rt.block_on(async move {
                // The CPU pool is per runtime here, sized to share the CPUs.
                let threads = (cpu_threads / n).max(1);
                let state = build_state(cfg, info, metrics, lifecycle.clone(), threads)?;
                serve_state(state, vec![listener], lifecycle, ctx).await
            })
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("event-loop-{i}"))
                .spawn(move || {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(event_loop))
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("event loop {i} panicked")));
                    let _ = done.send(result);
                })?,
        );
    }
    drop(done_tx);
    // The first loop that fails stops the others.
    let mut result = Ok(());
    for finished in done_rx.iter() {
        if let Err(e) = finished {
            lifecycle.drain();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    result
}

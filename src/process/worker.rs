//! One worker: builds its runtime, pools and router after any fork, then
//! serves its listeners until told to drain.
//!
//! `THREADS=1` gives a tokio current-thread runtime (one event loop, the
//! Tornado/Node model); `THREADS=N` a multi-thread runtime with N worker
//! threads. Thread-per-core runs N current-thread runtimes in one process,
//! each with its own listener, pools and metrics slot.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app;
use crate::cache::ContentCache;
use crate::config::{CacheMode, Config};
use crate::cpu::CpuPool;
use crate::metrics::{Metrics, WorkerState};
use crate::password::Passwords;
use crate::server::{self, Lifecycle, ServeOptions};
use crate::sessions::SessionStore;
use crate::state::{AppState, Inner, WorkerInfo};

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

fn redis_pool(cfg: &Config) -> anyhow::Result<deadpool_redis::Pool> {
    let t = Some(cfg.redis_timeout);
    deadpool_redis::Config::from_url(cfg.redis_url.clone())
        .builder()
        .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?
        .max_size(cfg.redis_pool_max)
        .wait_timeout(t)
        .create_timeout(t)
        .recycle_timeout(t)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .map_err(|e| anyhow::anyhow!("redis pool: {e}"))
}

/// Background duties of a worker: publish pool gauges and RSS, tick the
/// heartbeat, poll the content version, and start a drain once the worker
/// has served its `MAX_REQUESTS` (recycling).
fn spawn_housekeeping(state: AppState, recycle_after: Option<u64>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            state.slot.heartbeat();
            if n % 2 == 0 {
                crate::routes::ops::publish_pool_stats(&state);
                if state.cfg.cache_mode != CacheMode::Off {
                    let _ = state.cache.refresh_version().await;
                }
            }
            if let Some(limit) = recycle_after {
                if state.slot.requests() >= limit && !state.lifecycle.is_draining() {
                    tracing::info!(
                        worker = state.worker.index,
                        requests = state.slot.requests(),
                        "recycling worker after MAX_REQUESTS"
                    );
                    state.lifecycle.drain();
                }
            }
        }
    });
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
    let opts = ServeOptions::from_config(&cfg, state.worker.index);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slot = state.slot;
    slot.begin(std::process::id());
    spawn_housekeeping(state.clone(), None);
    let _ = state.cache.refresh_version().await;
    slot.set_state(WorkerState::Ready);
    let done = tokio::spawn(server::serve(
        vec![listener],
        router,
        opts,
        slot,
        lifecycle.clone(),
    ));
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
    pub info: WorkerInfo,
    /// One listener per runtime (thread-per-core) or all of them for one runtime.
    pub listeners: Vec<StdListener>,
    /// Drain and exit after this many requests (under a supervisor, which
    /// then starts a fresh worker).
    pub recycle_after: Option<u64>,
}

/// Runs a worker to completion on the calling thread (which becomes the
/// event loop, or the first of the thread-per-core loops). Returns when the
/// drain is over.
pub fn run(plan: WorkerPlan) -> anyhow::Result<()> {
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
        serve_state(state, plan.listeners, lifecycle, plan.recycle_after, true).await
    })
}

async fn serve_state(
    state: AppState,
    listeners: Vec<StdListener>,
    lifecycle: Lifecycle,
    recycle_after: Option<u64>,
    handle_signals: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let slot = state.slot;
    slot.begin(std::process::id());
    let listeners = listeners
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<std::io::Result<Vec<_>>>()?;
    if handle_signals {
        spawn_signal_handlers(lifecycle.clone())?;
    }
    spawn_housekeeping(state.clone(), recycle_after);
    let _ = state.cache.refresh_version().await;
    let router = app::router(state.clone());
    let opts = ServeOptions::from_config(&state.cfg, state.worker.index);
    slot.set_state(WorkerState::Ready);
    tracing::debug!(
        worker = state.worker.index,
        ready_ms = started.elapsed().as_millis() as u64,
        "worker ready"
    );
    let serving = server::serve(listeners, router, opts, slot, lifecycle.clone());
    tokio::pin!(serving);
    let clean = tokio::select! {
        clean = &mut serving => clean,
        _ = lifecycle.wait_draining() => {
            slot.set_state(WorkerState::Draining);
            serving.await
        }
    };
    if !clean {
        tracing::warn!(
            worker = state.worker.index,
            "drain deadline reached; remaining connections closed"
        );
    }
    slot.set_state(WorkerState::Empty);
    state.db.close().await;
    Ok(())
}

fn spawn_signal_handlers(lifecycle: Lifecycle) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(pid = std::process::id(), "SIGTERM: draining");
                lifecycle.drain();
            }
            _ = int.recv() => fast_exit("SIGINT"),
            _ = quit.recv() => fast_exit("SIGQUIT"),
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
    let mut handles = Vec::with_capacity(n);
    for (i, listener) in plan.listeners.into_iter().enumerate() {
        let cfg = plan.cfg.clone();
        let metrics = plan.metrics;
        let mut info = plan.info.clone();
        info.index = plan.info.index * n + i;
        let lifecycle = lifecycle.clone();
        let recycle_after = plan.recycle_after;
        handles.push(
            std::thread::Builder::new()
                .name(format!("event-loop-{i}"))
                .spawn(move || -> anyhow::Result<()> {
                    let rt = runtime(1)?;
                    rt.block_on(async move {
                        // The CPU pool is per runtime here, sized to share the CPUs.
                        let threads = (cpu_threads / n).max(1);
                        let state = build_state(cfg, info, metrics, lifecycle.clone(), threads)?;
                        serve_state(state, vec![listener], lifecycle, recycle_after, i == 0).await
                    })
                })?,
        );
    }
    let mut result = Ok(());
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(anyhow::anyhow!("an event-loop thread panicked")),
        }
    }
    result
}

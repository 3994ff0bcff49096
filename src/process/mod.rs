//! Process models: which processes and runtimes serve, chosen at start-up
//! by `PROCESSES`, `THREADS`, `THREAD_PER_CORE`, `SUPERVISOR` and `LISTENER`.
//!
//! Nothing here may create a thread, runtime, pool or connection before the
//! workers are forked: listening sockets are the only exception.

pub mod listeners;
pub mod supervisor;
pub mod worker;

use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, ListenerMode, Processes};
use crate::metrics::{Metrics, MAX_SLOTS};
use crate::state::WorkerInfo;

/// Exit code of a worker that could not boot (bad configuration): the
/// supervisor stops instead of respawning it.
pub const EXIT_BOOT_FAILURE: i32 = 3;

/// The resolved shape of the process model.
#[derive(Debug, Clone)]
pub struct Shape {
    pub processes: usize,
    /// Runtimes per process (THREADS with thread-per-core, else 1).
    pub runtimes: usize,
    pub supervised: bool,
    pub cpus: usize,
    pub cpu_note: String,
}

pub fn shape(cfg: &Config) -> anyhow::Result<Shape> {
    let (cpus, cpu_note) = crate::cpu::usable_cpus();
    let processes = match cfg.processes {
        Processes::Auto | Processes::Count(0) => cpus,
        Processes::Count(n) => n,
    };
    let runtimes = if cfg.thread_per_core { cfg.threads } else { 1 };
    if processes * runtimes > MAX_SLOTS {
        anyhow::bail!(
            "PROCESSES x runtimes = {} exceeds the {} worker slots",
            processes * runtimes,
            MAX_SLOTS
        );
    }
    Ok(Shape {
        processes,
        runtimes,
        supervised: processes > 1 || cfg.supervisor,
        cpus,
        cpu_note,
    })
}

/// Starts the configured process model and returns when it has stopped.
pub fn run(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let shape = shape(&cfg)?;
    if matches!(cfg.processes, Processes::Auto | Processes::Count(0)) {
        tracing::info!(workers = shape.processes, reason = %shape.cpu_note, "PROCESSES=auto");
    }
    log_startup(&cfg, &shape);
    if shape.supervised {
        return supervisor::run(cfg, shape);
    }
    let metrics = Metrics::new_shared();
    let reuse_port = shape.runtimes > 1;
    let listeners =
        listeners::bind_group(cfg.bind, shape.runtimes, reuse_port, cfg.listen_backlog)?;
    announce(&listeners[0]);
    if cfg.max_requests > 0 {
        tracing::warn!("MAX_REQUESTS needs a supervisor (PROCESSES>1 or SUPERVISOR=true); ignored");
    }
    worker::run(worker::WorkerPlan {
        info: worker_info(&cfg, &shape, 0),
        cfg,
        metrics,
        listeners,
        recycle_after: None,
    })
}

pub fn worker_info(cfg: &Config, shape: &Shape, index: usize) -> WorkerInfo {
    WorkerInfo {
        index,
        model: cfg.model_name(shape.processes),
        processes: shape.processes,
        threads: cfg.threads,
        thread_per_core: cfg.thread_per_core,
        listener: match cfg.listener {
            ListenerMode::ReusePort => "reuseport",
            ListenerMode::Shared => "shared",
        },
        started: Instant::now(),
    }
}

/// Prints the bound address (tests and scripts read this line).
pub fn announce(listener: &std::net::TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening on http://{addr}");
    }
}

/// The one start-up line with the effective configuration.
fn log_startup(cfg: &Config, shape: &Shape) {
    let somaxconn = listeners::somaxconn();
    let quota = crate::cpu::cgroup_cpu_quota();
    let runtimes = shape.processes * shape.runtimes;
    tracing::info!(
        model = %cfg.model_name(shape.processes),
        bind = %cfg.bind,
        processes = shape.processes,
        threads = cfg.threads,
        thread_per_core = cfg.thread_per_core,
        supervised = shape.supervised,
        listener = ?cfg.listener,
        backlog = cfg.listen_backlog,
        somaxconn = somaxconn.map_or(-1, i64::from),
        cgroup_cpu_quota = quota.map_or("none".to_string(), |q| format!("{q:.2}")),
        usable_cpus = shape.cpus,
        cpu_offload = ?cfg.cpu_offload,
        concurrency_cap = cfg.concurrency_cap,
        max_in_flight = cfg.max_in_flight,
        db_pool_max = cfg.db_pool_max,
        db_connections_total = runtimes as u64 * cfg.db_pool_max as u64,
        redis_pool_max = cfg.redis_pool_max,
        redis_connections_total = runtimes * cfg.redis_pool_max,
        cache = cfg.cache_mode.as_str(),
        compression = ?cfg.compression,
        argon2 = ?cfg.argon2,
        profile = cfg.profile.as_deref().unwrap_or("-"),
        "quizbench starting"
    );
    if let Some(max) = somaxconn {
        if cfg.listen_backlog > max {
            tracing::warn!(
                backlog = cfg.listen_backlog,
                somaxconn = max,
                "LISTEN_BACKLOG exceeds net.core.somaxconn; the kernel caps it at somaxconn"
            );
        }
    }
    if cfg.argon2.below_owasp() {
        tracing::warn!(
            argon2 = ?cfg.argon2,
            "argon2 parameters are below OWASP's minimum (19 MiB, t=2, p=1): for experiments only"
        );
    }
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    page_size_raw().unwrap_or(4096)
}

/// Threads of this process (the supervisor asserts it is 1 before forking).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

#[allow(unsafe_code)]
fn page_size_raw() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (n > 0).then_some(n as u64)
}

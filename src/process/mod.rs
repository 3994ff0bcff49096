//! Process models: which processes and runtimes serve, chosen at start-up
//! by `PROCESSES`, `THREADS`, `THREAD_PER_CORE`, `SUPERVISOR` and `LISTENER`.
//!
//! Nothing here may create a thread, runtime, pool or connection before the
//! workers are forked: listening sockets (and the shared metrics table) are
//! the only exceptions.
//!
//! A process started by the supervisor with `QUIZBENCH_WORKER` in its
//! environment (see [`handoff`]) is a worker: [`run`] hands it over to the
//! worker code at once, before any start-up logging.

pub mod budget;
pub mod exposure;
pub mod handoff;
pub mod listeners;
pub mod notify;
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
        // auto is the prefork model whatever the CPU count: supervised
        // even when it resolves to one worker.
        supervised: processes > 1 || cfg.supervisor || matches!(cfg.processes, Processes::Auto),
        cpus,
        cpu_note,
    })
}

/// Starts the configured process model and returns when it has stopped.
pub fn run(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    if let Some(handoff) = handoff::Handoff::take_from_env()? {
        // A worker executed by the supervisor: never returns.
        std::process::exit(run_handed_over(cfg, handoff));
    }
    let shape = shape(&cfg)?;
    if matches!(cfg.processes, Processes::Auto | Processes::Count(0)) {
        tracing::info!(
            workers = shape.processes,
            reason = %shape.cpu_note,
            "PROCESSES=auto: one worker per usable CPU"
        );
    }
    log_startup(&cfg, &shape);
    if shape.supervised {
        return supervisor::run(cfg, shape);
    }
    let metrics = Metrics::new_shared();
    let listeners = match cfg.listener {
        ListenerMode::Shared if shape.runtimes > 1 => {
            let one = listeners::bind(cfg.bind, false, cfg.listen_backlog)?;
            let mut all = (1..shape.runtimes)
                .map(|_| one.try_clone())
                .collect::<std::io::Result<Vec<_>>>()?;
            all.insert(0, one);
            all
        }
        _ => listeners::bind_group(
            cfg.bind,
            shape.runtimes,
            shape.runtimes > 1,
            cfg.listen_backlog,
        )?,
    };
    announce(&listeners[0]);
    if cfg.max_requests > 0 || cfg.max_lifetime.is_some() || cfg.max_rss_mb > 0 {
        tracing::warn!(
            "MAX_REQUESTS, MAX_LIFETIME_SECS and MAX_RSS_MB need a supervisor \
             (PROCESSES>1 or SUPERVISOR=true); ignored"
        );
    }
    if cfg.heartbeat_timeout.is_some() {
        tracing::debug!("HEARTBEAT_TIMEOUT_SECS needs a supervisor; not enforced");
    }
    let budget_pools = Some(shape.runtimes);
    worker::run(worker::WorkerPlan {
        info: worker_info(&cfg, &shape, 0),
        cfg,
        metrics,
        listeners,
        supervised: None,
        budget_pools,
    })
}

/// The worker side of a re-executed worker: adopts the inherited
/// descriptors and runs; returns the exit code.
fn run_handed_over(cfg: Arc<Config>, h: handoff::Handoff) -> i32 {
    let adopted = (|| -> anyhow::Result<_> {
        let metrics_fd = handoff::adopt(h.metrics)?;
        let metrics =
            Metrics::map_shared_fd(std::os::fd::AsFd::as_fd(&metrics_fd)).map_err(|e| {
                anyhow::anyhow!(
                    "{e}: this build's metrics table differs from the running supervisor's; \
                 restart the server instead of reloading it"
                )
            })?;
        drop(metrics_fd); // the mapping stays
        let listeners = h
            .listen
            .iter()
            .map(|fd| handoff::adopt(*fd).map(std::net::TcpListener::from))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let notifier = notify::Notifier::new(handoff::adopt(h.notify)?)?;
        Ok((metrics, listeners, notifier))
    })();
    let (metrics, listeners, notifier) = match adopted {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "worker cannot take over its sockets");
            return EXIT_BOOT_FAILURE;
        }
    };
    let (cpus, cpu_note) = crate::cpu::usable_cpus();
    let shape = Shape {
        processes: h.processes,
        runtimes: listeners.len(),
        supervised: true,
        cpus,
        cpu_note,
    };
    let base = h.slot * shape.runtimes;
    worker::run_supervised(worker::WorkerPlan {
        info: worker_info(&cfg, &shape, base),
        cfg,
        metrics,
        listeners,
        supervised: Some(Arc::new(worker::Supervised {
            notifier,
            parent: nix::unistd::Pid::from_raw(h.parent),
        })),
        budget_pools: (h.budget_pools > 0).then_some(h.budget_pools),
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
    let secs = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_secs());
    tracing::info!(
        model = %cfg.model_name(shape.processes),
        bind = %cfg.bind,
        pid = std::process::id(),
        processes = shape.processes,
        threads = cfg.threads,
        thread_per_core = cfg.thread_per_core,
        event_loops = runtimes,
        supervised = shape.supervised,
        worker_spawn = if shape.supervised {
            match cfg.worker_spawn {
                crate::config::WorkerSpawn::Exec => "exec",
                crate::config::WorkerSpawn::Fork => "fork",
            }
        } else {
            "-"
        },
        listener = match cfg.listener {
            ListenerMode::ReusePort => "reuseport",
            ListenerMode::Shared => "shared",
        },
        listen_sockets = match (shape.supervised, cfg.listener) {
            (_, ListenerMode::Shared) => 1,
            (true, ListenerMode::ReusePort) => runtimes,
            (false, ListenerMode::ReusePort) => shape.runtimes,
        },
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
        connection_budget = ?cfg.connection_budget,
        request_timeout_secs = cfg.request_timeout.as_secs(),
        header_read_timeout_ms = cfg.header_read_timeout.as_millis() as u64,
        keepalive_timeout_secs = cfg.keepalive_timeout.as_secs(),
        heartbeat_timeout_secs = secs(cfg.heartbeat_timeout),
        graceful_timeout_secs = cfg.graceful_timeout.as_secs(),
        max_requests = cfg.max_requests,
        max_requests_jitter = cfg.max_requests_jitter,
        max_lifetime_secs = secs(cfg.max_lifetime),
        max_rss_mb = cfg.max_rss_mb,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn shape_of(pairs: &[(&str, &str)]) -> anyhow::Result<Shape> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        let cfg = Config::from_lookup(None, |k| map.get(k).copied()).unwrap();
        shape(&cfg)
    }

    #[test]
    fn shapes_of_the_models() {
        let single = shape_of(&[]).unwrap();
        assert_eq!(
            (single.processes, single.runtimes, single.supervised),
            (1, 1, false)
        );
        let forced = shape_of(&[("SUPERVISOR", "true")]).unwrap();
        assert_eq!((forced.processes, forced.supervised), (1, true));
        let prefork = shape_of(&[("PROCESSES", "4"), ("THREADS", "2")]).unwrap();
        assert_eq!(
            (prefork.processes, prefork.runtimes, prefork.supervised),
            (4, 1, true)
        );
        let tpc = shape_of(&[("THREAD_PER_CORE", "true"), ("THREADS", "3")]).unwrap();
        assert_eq!((tpc.processes, tpc.runtimes, tpc.supervised), (1, 3, false));
        // auto: one worker per usable CPU, always under a supervisor.
        let auto = shape_of(&[("PROCESSES", "auto")]).unwrap();
        assert_eq!(auto.processes, crate::cpu::usable_cpus().0);
        assert!(auto.supervised);
        assert!(shape_of(&[
            ("PROCESSES", "200"),
            ("THREAD_PER_CORE", "true"),
            ("THREADS", "2")
        ])
        .is_err());
    }
}

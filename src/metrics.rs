//! Request metrics in memory shared by every worker of one server.
//!
//! The table is one anonymous `MAP_SHARED` mapping created before any fork,
//! holding one slot of plain atomics per worker. Each worker writes only its
//! own slot; whichever worker answers a `/metrics` scrape renders all slots,
//! so one scrape shows every worker (a scrape through SO_REUSEPORT reaches a
//! random worker). The supervisor writes the restart counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Most worker slots a server can have (PROCESSES x thread-per-core runtimes).
pub const MAX_SLOTS: usize = 256;

/// Route templates we count separately; anything else is `other`.
pub const ROUTES: &[&str] = &[
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/logout",
    "/api/v1/user",
    "/api/v1/user/password",
    "/api/v1/quizzes",
    "/api/v1/quizzes/{id}",
    "/api/v1/quizzes/{id}/attempts",
    "/api/v1/progress",
    "/api/v1/students/select-options",
    "/api/v1/grade",
    "/api/v1/files",
    "/api/v1/files/{name}",
    "/",
    "/quizzes",
    "/dashboard",
    "/static/{*path}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/runtime",
    "/openapi.json",
    "/json",
    "/plaintext",
    "/db",
    "/queries",
    "/fortunes",
    "/updates",
    "/cached-queries",
    "other",
];

/// `route_of_path("/healthz")`, for the liveness fast path.
pub const HEALTHZ_ROUTE: usize = 17;

/// Status codes we count separately; the rest are counted as `other`.
const STATUSES: &[u16] = &[
    200, 201, 204, 303, 304, 400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 422, 429, 431, 500,
    503, 504,
];
const N_STATUS: usize = 22; // STATUSES.len() + "other"

/// Latency histogram bucket upper bounds, in microseconds.
const BUCKETS_US: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
const N_BUCKETS: usize = 15; // BUCKETS_US.len() + "+Inf"
const N_ROUTES: usize = 30;

/// Why the supervisor restarted a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    Crash = 0,
    MaxRequests = 1,
    Hup = 2,
    Heartbeat = 3,
    Lifetime = 4,
    Memory = 5,
}
const RESTART_REASONS: &[&str] = &[
    "crash",
    "max_requests",
    "hup",
    "heartbeat",
    "lifetime",
    "memory",
];

/// Worker life-cycle state as shown in the stats view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Empty = 0,
    Starting = 1,
    Ready = 2,
    Draining = 3,
}

#[repr(C)]
struct RouteStats {
    status: [AtomicU64; N_STATUS],
    buckets: [AtomicU64; N_BUCKETS],
    sum_us: AtomicU64,
}

/// One worker's figures.
#[repr(C)]
pub struct Slot {
    pid: AtomicU64,
    state: AtomicU64,
    started_unix_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    shed: AtomicU64,
    timeouts: AtomicU64,
    connections: AtomicU64,
    rss_bytes: AtomicU64,
    db_size: AtomicU64,
    db_idle: AtomicU64,
    db_waiters: AtomicU64,
    redis_size: AtomicU64,
    redis_idle: AtomicU64,
    redis_waiters: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_bypass: AtomicU64,
    dummy_hashes: AtomicU64,
    /// Milliseconds from spawn to ready of the slot's current worker (set by the supervisor).
    boot_ms: AtomicU64,
    restarts: [AtomicU64; 6],
    routes: [RouteStats; N_ROUTES],
}

/// The shared table: one slot per worker.
#[repr(C)]
pub struct Metrics {
    slots: [Slot; MAX_SLOTS],
}

impl Metrics {
    /// Maps a zeroed shared table. Call before forking so children share it.
    pub fn new_shared() -> &'static Metrics {
        shared_zeroed::<Metrics>()
    }

    /// Like [`Metrics::new_shared`], backed by a memfd: a worker that the
    /// supervisor re-executes (and so does not inherit the mapping) maps the
    /// same table again from the inherited descriptor with [`Metrics::map_shared_fd`].
    pub fn new_shared_memfd() -> std::io::Result<(&'static Metrics, std::os::fd::OwnedFd)> {
        shared_memfd::<Metrics>()
    }

    /// Maps the table behind a descriptor made by [`Metrics::new_shared_memfd`]
    /// (refused when its size differs: a binary with another table layout).
    pub fn map_shared_fd(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<&'static Metrics> {
        map_shared::<Metrics>(fd)
    }

    pub fn slot(&self, index: usize) -> &Slot {
        &self.slots[index]
    }

    /// Prometheus text exposition of every worker slot that was ever used.
    pub fn render(&self, model: &str) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let _ = writeln!(
            out,
            "# HELP quizbench_info Process model of this server.\n# TYPE quizbench_info gauge\nquizbench_info{{model=\"{model}\"}} 1"
        );
        let used: Vec<(usize, &Slot)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.started_unix_ms.load(Relaxed) != 0)
            .collect();
        let gauges: &[Series] = &[
            ("quizbench_worker_pid", "Process id of the worker.", |s| {
                s.pid.load(Relaxed)
            }),
            (
                "quizbench_worker_state",
                "0 empty, 1 starting, 2 ready, 3 draining.",
                |s| s.state.load(Relaxed),
            ),
            (
                "quizbench_worker_start_time_seconds",
                "Unix time the worker started.",
                |s| s.started_unix_ms.load(Relaxed) / 1000,
            ),
            (
                "quizbench_requests_in_flight",
                "Requests being handled now.",
                |s| s.in_flight.load(Relaxed),
            ),
            (
                "quizbench_open_connections",
                "Open client connections.",
                |s| s.connections.load(Relaxed),
            ),
            (
                "quizbench_worker_boot_milliseconds",
                "Time from spawn to ready of the current worker (supervised).",
                |s| s.boot_ms.load(Relaxed),
            ),
            (
                "quizbench_worker_resident_memory_bytes",
                "Resident set size of the worker process.",
                |s| s.rss_bytes.load(Relaxed),
            ),
            (
                "quizbench_db_pool_size",
                "Database connections open in the pool.",
                |s| s.db_size.load(Relaxed),
            ),
            (
                "quizbench_db_pool_idle",
                "Idle database connections.",
                |s| s.db_idle.load(Relaxed),
            ),
            (
                "quizbench_db_pool_waiters",
                "Tasks waiting for a database connection.",
                |s| s.db_waiters.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_size",
                "Redis connections open in the pool.",
                |s| s.redis_size.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_idle",
                "Idle Redis connections.",
                |s| s.redis_idle.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_waiters",
                "Tasks waiting for a Redis connection.",
                |s| s.redis_waiters.load(Relaxed),
            ),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (i, s) in &used {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(s));
            }
        }
        let counters: &[Series] = &[
            (
                "quizbench_worker_requests_total",
                "Requests served by the worker.",
                |s| s.requests.load(Relaxed),
            ),
            (
                "quizbench_shed_total",
                "Requests refused with 503 by the in-flight limit.",
                |s| s.shed.load(Relaxed),
            ),
            (
                "quizbench_request_timeouts_total",
                "Requests that hit the request deadline.",
                |s| s.timeouts.load(Relaxed),
            ),
            (
                "quizbench_cache_hits_total",
                "Common-content cache hits.",
                |s| s.cache_hits.load(Relaxed),
            ),
            (
                "quizbench_cache_misses_total",
                "Common-content cache misses (rebuilt from Postgres).",
                |s| s.cache_misses.load(Relaxed),
            ),
            (
                "quizbench_cache_bypass_total",
                "Common content served from Postgres because Redis failed.",
                |s| s.cache_bypass.load(Relaxed),
            ),
            (
                "quizbench_dummy_hash_verifications_total",
                "Password verifications against the dummy hash (unknown users).",
                |s| s.dummy_hashes.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, s) in &used {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(s));
            }
        }
        let _ = writeln!(
            out,
            "# HELP quizbench_worker_restarts_total Worker restarts by reason.\n# TYPE quizbench_worker_restarts_total counter"
        );
        for (i, s) in &used {
            for (r, reason) in RESTART_REASONS.iter().enumerate() {
                let n = s.restarts[r].load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "quizbench_worker_restarts_total{{worker=\"{i}\",reason=\"{reason}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP quizbench_http_requests_total Requests by route and status.\n# TYPE quizbench_http_requests_total counter"
        );
        for (i, s) in &used {
            for (r, route) in ROUTES.iter().enumerate() {
                for (k, count) in s.routes[r].status.iter().enumerate() {
                    let n = count.load(Relaxed);
                    if n > 0 {
                        let status = STATUSES.get(k).map_or("other".to_string(), u16::to_string);
                        let _ = writeln!(
                            out,
                            "quizbench_http_requests_total{{worker=\"{i}\",route=\"{route}\",status=\"{status}\"}} {n}"
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP quizbench_http_request_duration_seconds Request latency by route.\n# TYPE quizbench_http_request_duration_seconds histogram"
        );
        for (i, s) in &used {
            for (r, route) in ROUTES.iter().enumerate() {
                let stats = &s.routes[r];
                let total: u64 = stats.buckets.iter().map(|b| b.load(Relaxed)).sum();
                if total == 0 {
                    continue;
                }
                let mut cumulative = 0;
                for (b, bucket) in stats.buckets.iter().enumerate() {
                    cumulative += bucket.load(Relaxed);
                    let le = BUCKETS_US
                        .get(b)
                        .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                    let _ = writeln!(
                        out,
                        "quizbench_http_request_duration_seconds_bucket{{worker=\"{i}\",route=\"{route}\",le=\"{le}\"}} {cumulative}"
                    );
                }
                let sum = stats.sum_us.load(Relaxed) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "quizbench_http_request_duration_seconds_sum{{worker=\"{i}\",route=\"{route}\"}} {sum}\nquizbench_http_request_duration_seconds_count{{worker=\"{i}\",route=\"{route}\"}} {total}"
                );
            }
        }
        out
    }

    /// The supervisor's stats view: one entry per used slot.
    pub fn workers_json(&self) -> serde_json::Value {
        let now = unix_ms();
        let workers: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.started_unix_ms.load(Relaxed) != 0)
            .map(|(i, s)| {
                let state = match s.state.load(Relaxed) {
                    1 => "starting",
                    2 if s.in_flight.load(Relaxed) > 0 => "busy",
                    2 => "idle",
                    3 => "draining",
                    _ => "stopped",
                };
                serde_json::json!({
                    "worker": i,
                    "pid": s.pid.load(Relaxed),
                    "state": state,
                    "requests": s.requests.load(Relaxed),
                    "in_flight": s.in_flight.load(Relaxed),
                    "connections": s.connections.load(Relaxed),
                    "rss_bytes": s.rss_bytes.load(Relaxed),
                    "age_secs": now.saturating_sub(s.started_unix_ms.load(Relaxed)) / 1000,
                    "restarts": s.restarts.iter().map(|r| r.load(Relaxed)).sum::<u64>(),
                    "restarts_by_reason": RESTART_REASONS
                        .iter()
                        .zip(&s.restarts)
                        .map(|(name, n)| (name.to_string(), n.load(Relaxed).into()))
                        .collect::<serde_json::Map<String, serde_json::Value>>(),
                    "boot_ms": s.boot_ms.load(Relaxed),
                })
            })
            .collect();
        serde_json::Value::Array(workers)
    }
}

/// A metric family read from each slot: name, help, getter.
type Series = (&'static str, &'static str, fn(&Slot) -> u64);

/// Index in [`ROUTES`] of the template a request path matches (the last
/// one, `other`, when none does). One trie lookup, the same matcher the
/// router uses, so metrics need no router middleware.
pub fn route_of_path(path: &str) -> usize {
    const _: () = assert!(N_ROUTES < 256, "route indexes fit in a u8");
    static TABLE: std::sync::LazyLock<matchit::Router<u8>> = std::sync::LazyLock::new(|| {
        let mut table = matchit::Router::new();
        for (i, template) in ROUTES[..N_ROUTES - 1].iter().enumerate() {
            table
                .insert(*template, i as u8)
                .expect("route templates are valid");
        }
        table
    });
    TABLE
        .at(path)
        .map_or(N_ROUTES - 1, |m| usize::from(*m.value))
}

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(N_STATUS - 1)
}

impl Slot {
    /// Marks the slot as taken by a starting worker process.
    pub fn begin(&self, pid: u32) {
        self.pid.store(pid as u64, Relaxed);
        self.started_unix_ms.store(unix_ms(), Relaxed);
        self.set_state(WorkerState::Starting);
    }

    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u64, Relaxed);
    }

    pub fn state(&self) -> u64 {
        self.state.load(Relaxed)
    }

    pub fn pid(&self) -> u64 {
        self.pid.load(Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    pub fn request_started(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed) + 1
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn record(&self, route: usize, status: u16, elapsed: Duration) {
        let stats = &self.routes[route.min(N_ROUTES - 1)];
        stats.status[status_index(status)].fetch_add(1, Relaxed);
        let us = elapsed.as_micros() as u64;
        let bucket = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(N_BUCKETS - 1);
        stats.buckets[bucket].fetch_add(1, Relaxed);
        stats.sum_us.fetch_add(us, Relaxed);
    }

    pub fn shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    pub fn timeout(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Relaxed);
    }

    pub fn cache_bypass(&self) {
        self.cache_bypass.fetch_add(1, Relaxed);
    }

    pub fn dummy_hash(&self) {
        self.dummy_hashes.fetch_add(1, Relaxed);
    }

    pub fn dummy_hash_count(&self) -> u64 {
        self.dummy_hashes.load(Relaxed)
    }

    pub fn restarted(&self, reason: RestartReason) {
        self.restarts[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn restarts(&self, reason: RestartReason) -> u64 {
        self.restarts[reason as usize].load(Relaxed)
    }

    pub fn set_boot_ms(&self, ms: u64) {
        self.boot_ms.store(ms, Relaxed);
    }

    pub fn set_rss(&self, bytes: u64) {
        self.rss_bytes.store(bytes, Relaxed);
    }

    pub fn set_pools(&self, db: (u64, u64, u64), redis: (u64, u64, u64)) {
        self.db_size.store(db.0, Relaxed);
        self.db_idle.store(db.1, Relaxed);
        self.db_waiters.store(db.2, Relaxed);
        self.redis_size.store(redis.0, Relaxed);
        self.redis_idle.store(redis.1, Relaxed);
        self.redis_waiters.store(redis.2, Relaxed);
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Allocates a zero-filled `T` in an anonymous shared mapping that lives for
/// the rest of the process and is inherited by forked children.
#[allow(unsafe_code)]
fn shared_zeroed<T>() -> &'static T {
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>()).expect("non-empty table");
    // SAFETY: a fresh anonymous mapping does not alias any Rust object. It is
    // never unmapped, so the reference is valid for 'static. T is made only of
    // atomics (repr(C) arrays of AtomicU64), for which all-zero bytes are a
    // valid value and which are safe to share between threads and processes.
    unsafe {
        let ptr = mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
        .expect("mmap of the shared metrics table");
        &*(ptr.as_ptr() as *const T)
    }
}

/// A zero-filled `T` in a shared mapping of a new memfd (close-on-exec;
/// the supervisor clears that flag in a child that it re-executes).
#[allow(unsafe_code)]
fn shared_memfd<T>() -> std::io::Result<(&'static T, std::os::fd::OwnedFd)> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create("quizbench-metrics", MFdFlags::MFD_CLOEXEC)?;
    nix::unistd::ftruncate(&fd, std::mem::size_of::<T>() as i64)?;
    let table = map_shared::<T>(std::os::fd::AsFd::as_fd(&fd))?;
    Ok((table, fd))
}

/// Maps a file holding exactly one `T` (shared, read-write) for the rest of
/// the process.
#[allow(unsafe_code)]
fn map_shared<T>(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<&'static T> {
    use nix::sys::mman::{mmap, MapFlags, ProtFlags};
    let size = std::mem::size_of::<T>();
    let actual = nix::sys::stat::fstat(fd)?.st_size;
    if actual != size as i64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("shared metrics table is {actual} bytes, this build expects {size}"),
        ));
    }
    let len = std::num::NonZeroUsize::new(size).expect("non-empty table");
    // SAFETY: the mapping is new, so it aliases no Rust object; it is never
    // unmapped, so the reference is valid for 'static. The file has exactly
    // size_of::<T>() bytes (checked above), zero-filled at creation, and T is
    // made only of atomics, for which any bytes written by other processes
    // through the same atomics are valid values.
    unsafe {
        let ptr = mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )?;
        Ok(&*(ptr.as_ptr() as *const T))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memfd_table_is_shared_by_a_second_mapping() {
        let (a, fd) = Metrics::new_shared_memfd().unwrap();
        let b = Metrics::map_shared_fd(std::os::fd::AsFd::as_fd(&fd)).unwrap();
        a.slot(7).begin(99);
        assert_eq!(b.slot(7).pid(), 99);
        let other =
            nix::sys::memfd::memfd_create("too-small", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .unwrap();
        assert!(Metrics::map_shared_fd(std::os::fd::AsFd::as_fd(&other)).is_err());
    }

    #[test]
    fn tables_match_their_lengths() {
        assert_eq!(ROUTES.len(), N_ROUTES);
        assert_eq!(STATUSES.len() + 1, N_STATUS);
        assert_eq!(BUCKETS_US.len() + 1, N_BUCKETS);
        assert_eq!(RESTART_REASONS.len(), 6);
    }

    #[test]
    fn paths_map_to_their_route_templates() {
        let index = |t: &str| ROUTES.iter().position(|r| *r == t).unwrap();
        assert_eq!(route_of_path("/healthz"), index("/healthz"));
        assert_eq!(HEALTHZ_ROUTE, index("/healthz"));
        assert_eq!(
            route_of_path("/api/v1/quizzes/17/attempts"),
            index("/api/v1/quizzes/{id}/attempts")
        );
        // Matched by template even when the id will not parse (a 400).
        assert_eq!(
            route_of_path("/api/v1/quizzes/x"),
            index("/api/v1/quizzes/{id}")
        );
        assert_eq!(
            route_of_path("/static/css/app.css"),
            index("/static/{*path}")
        );
        assert_eq!(route_of_path("/"), index("/"));
        assert_eq!(route_of_path("/api/v1/quizzes/"), N_ROUTES - 1);
        assert_eq!(route_of_path("/nope"), N_ROUTES - 1);
    }

    #[test]
    fn records_show_up_in_the_exposition() {
        let m = Metrics::new_shared();
        let slot = m.slot(3);
        slot.begin(4242);
        slot.record(
            route_of_path("/api/v1/quizzes"),
            200,
            Duration::from_millis(3),
        );
        slot.record(route_of_path("/nope"), 418, Duration::from_secs(20));
        let text = m.render("test");
        assert!(text.contains(
            "quizbench_http_requests_total{worker=\"3\",route=\"/api/v1/quizzes\",status=\"200\"} 1"
        ));
        assert!(text.contains("route=\"other\",status=\"other\"} 1"));
        assert!(text.contains(
            "quizbench_http_request_duration_seconds_bucket{worker=\"3\",route=\"/api/v1/quizzes\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("quizbench_worker_pid{worker=\"3\"} 4242"));
        assert!(!text.contains("worker=\"0\""));
    }
}

//! Request metrics in memory shared by every worker of one server.
//!
//! The table is one anonymous `MAP_SHARED` mapping created before any fork,
//! holding one slot of plain atomics per worker. Each worker writes only its
//! own slot; whichever worker answers a `/metrics` scrape renders all slots,
//! so one scrape shows every worker (a scrape through SO_REUSEPORT reaches a
//! random worker). The supervisor writes the restart counters.
//!
//! This module owns the table's layout and its writers; [`prometheus`]
//! renders it, [`labels`] names its route slots, [`shared_memory`] maps it.
//! It knows nothing of HTTP or of the router.
//!
//! Why not a metrics crate (a registry per process cannot show every
//! worker in one scrape): docs/exceptions.md.

mod labels;
mod prometheus;
mod shared_memory;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use labels::RouteLabels;
use shared_memory::{map_shared, shared_memfd, SharedTable};

/// Most worker slots a server can have (PROCESSES x thread-per-core runtimes).
pub const MAX_SLOTS: usize = 256;

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

/// Route slots per worker: the route templates metrics count separately
/// (see [`RouteLabels`]), plus one for `other`. Part of the table's layout,
/// so the same in every process of a server.
pub const ROUTE_SLOTS: usize = 40;

/// Why the supervisor restarted a worker. The discriminant (the order of
/// [`RestartReason::ALL`]) indexes a slot's restart counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    Crash,
    MaxRequests,
    Hup,
    Heartbeat,
    Lifetime,
    Memory,
}

impl RestartReason {
    pub const ALL: [RestartReason; 6] = [
        RestartReason::Crash,
        RestartReason::MaxRequests,
        RestartReason::Hup,
        RestartReason::Heartbeat,
        RestartReason::Lifetime,
        RestartReason::Memory,
    ];

    /// The reason as logs and the metrics' `reason` label name it.
    pub fn name(self) -> &'static str {
        match self {
            RestartReason::Crash => "crash",
            RestartReason::MaxRequests => "max_requests",
            RestartReason::Hup => "hup",
            RestartReason::Heartbeat => "heartbeat",
            RestartReason::Lifetime => "lifetime",
            RestartReason::Memory => "memory",
        }
    }
}

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
    restarts: [AtomicU64; RestartReason::ALL.len()],
    routes: [RouteStats; ROUTE_SLOTS],
}

/// The shared table: one slot per worker.
#[repr(C)]
pub struct Metrics {
    slots: [Slot; MAX_SLOTS],
}

// SAFETY: `Metrics` is `repr(C)` arrays of `repr(C)` structs of `AtomicU64`
// (and arrays of them): all-zero bytes are a valid value, it holds no
// pointer, and every field is read and written through atomics.
#[allow(unsafe_code)]
unsafe impl SharedTable for Metrics {}

impl Metrics {
    /// Maps a zeroed shared table (its descriptor closed: forked children
    /// share the mapping itself). Call before forking.
    pub fn new_shared() -> &'static Metrics {
        shared_memfd::<Metrics>().expect("shared metrics table").0
    }

    /// Like [`Metrics::new_shared`], with the memfd behind it: a worker that
    /// the supervisor re-executes (and so does not inherit the mapping) maps
    /// the same table again from the inherited descriptor with [`Metrics::map_shared_fd`].
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
}

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(N_STATUS - 1)
}

/// Methods of [`Slot`] over one field each (`method => field` where the
/// names differ): `read` ones return the field, `count` ones add one to it.
macro_rules! slot_fields {
    (read: $($r:ident $(=> $rf:ident)?),+; count: $($c:ident $(=> $cf:ident)?),+;) => {
        $(slot_fields!(@read $r $($rf)?);)+
        $(slot_fields!(@count $c $($cf)?);)+
    };
    (@read $m:ident) => { slot_fields!(@read $m $m); };
    (@read $m:ident $f:ident) => {
        pub fn $m(&self) -> u64 {
            self.$f.load(Relaxed)
        }
    };
    (@count $m:ident) => { slot_fields!(@count $m $m); };
    (@count $m:ident $f:ident) => {
        pub fn $m(&self) {
            self.$f.fetch_add(1, Relaxed);
        }
    };
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

    slot_fields! {
        read: state, pid, requests, in_flight, dummy_hash_count => dummy_hashes;
        count: shed, timeout => timeouts, connection_opened => connections,
            cache_hit => cache_hits, cache_miss => cache_misses, cache_bypass,
            dummy_hash => dummy_hashes;
    }

    pub fn request_started(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed) + 1
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn record(&self, route: usize, status: u16, elapsed: Duration) {
        let stats = &self.routes[route.min(ROUTE_SLOTS - 1)];
        stats.status[status_index(status)].fetch_add(1, Relaxed);
        let us = elapsed.as_micros() as u64;
        let bucket = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(N_BUCKETS - 1);
        stats.buckets[bucket].fetch_add(1, Relaxed);
        stats.sum_us.fetch_add(us, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
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
        assert_eq!(STATUSES.len() + 1, N_STATUS);
        assert_eq!(BUCKETS_US.len() + 1, N_BUCKETS);
        for (i, reason) in RestartReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
    }
}

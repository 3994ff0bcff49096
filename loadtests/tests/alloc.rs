//! The hot path does not allocate: with a counting global allocator, a run
//! of 20 000 requests allocates about as much as a run of 2 000 (the
//! difference is per-second time-series buckets, not per-request work).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadtests::calibrate::target::TrivialTarget;
use loadtests::generator::engine::{self, Model, RunConfig, Stop};
use loadtests::generator::http::RequestBuilder;
use loadtests::generator::scenarios::FixedRequest;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_for(target: &TrivialTarget, n: u64) -> u64 {
    let cfg = RunConfig {
        addr: target.addr(),
        threads: 2,
        concurrency: 8,
        stop: Stop::Requests(n),
        model: Model::Closed {
            ramp: Duration::ZERO,
            spawn_rate: None,
        },
        timeout: Duration::from_secs(10),
        seed: 1,
        progress: loadtests::generator::engine::Progress::Off,
        settle: None,
    };
    let builder = RequestBuilder::new(target.addr().to_string(), vec![]);
    let scenario = Arc::new(FixedRequest::new(&builder, "GET", "/", b""));
    let before = ALLOCS.load(Ordering::SeqCst);
    let out = engine::run(&cfg, scenario).unwrap();
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(out.recorder.endpoints[0].successes(), n);
    after - before
}

#[test]
fn no_allocation_per_request() {
    let target = TrivialTarget::start(1).unwrap();
    // warm up the target's connection handling
    allocations_for(&target, 500);
    let small = allocations_for(&target, 2_000);
    let large = allocations_for(&target, 20_000);
    let per_request = large.saturating_sub(small) as f64 / 18_000.0;
    assert!(
        per_request < 0.01,
        "{small} allocations for 2000 requests, {large} for 20000: {per_request:.3} per request"
    );
}

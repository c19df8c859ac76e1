//! The hot path allocates nothing: a counting allocator watches a run in this process.
//!
//! The echo server's threads, this test's own and the load generator's control thread (which
//! only waits for signals and events) are exempt, so what is counted is the message path: the
//! worker threads, plus the collector. Over two seconds of steady state the count must stay far
//! below one allocation per message. What remains (a few dozen a second here, whatever the
//! message rate) is per-interval work: compressing and writing one log entry per file and one
//! CSV row each second.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wsbench_core::plan::{LoadPlan, Mode};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: during thread teardown the flag may be gone; such allocations are not ours.
    if !EXEMPT.try_with(Cell::get).unwrap_or(true) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting has no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `plan` in this process and returns (allocations, messages) over two seconds of steady
/// state (from one second after warm-up).
fn steady_state_allocations(plan: LoadPlan) -> (u64, f64) {
    let server = common::EchoServer::start_with(|| EXEMPT.set(true));
    let plan = LoadPlan { url: server.url(), ..plan };
    let start = Instant::now();
    let warmup = plan.warmup;
    let runner = std::thread::spawn(move || {
        EXEMPT.set(true);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(wsbench_loadgen::run(plan, vec!["alloc-test".into()], std::future::pending())).unwrap()
    });
    EXEMPT.set(true);
    std::thread::sleep((start + warmup + Duration::from_secs(1)).saturating_duration_since(Instant::now()));
    let a0 = ALLOCATIONS.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    let a1 = ALLOCATIONS.load(Ordering::Relaxed);
    let summary = runner.join().unwrap();
    assert!(summary.complete, "{:?}", summary.reason);
    assert_eq!(summary.messages.received, summary.messages.sent);
    (a1 - a0, summary.throughput_msgs_per_s * 2.0)
}

#[test]
fn steady_state_sends_receives_and_records_without_allocating() {
    let closed = LoadPlan {
        connections: 4,
        in_flight: 4,
        threads: 2,
        duration: Duration::from_secs(4),
        warmup: Duration::from_millis(500),
        ..Default::default()
    };
    let (allocs, messages) = steady_state_allocations(closed);
    eprintln!("closed loop: {allocs} allocations for {messages:.0} messages");
    assert!(messages > 1_000.0);
    assert!((allocs as f64) < messages * 0.05, "{allocs} allocations for {messages:.0} messages");

    let open = LoadPlan {
        connections: 8,
        rate: Some(4_000.0),
        mode: Mode::Text,
        size: 1024,
        duration: Duration::from_secs(4),
        warmup: Duration::from_millis(500),
        ..Default::default()
    };
    let (allocs, messages) = steady_state_allocations(open);
    eprintln!("open loop, text, 1 KiB: {allocs} allocations for {messages:.0} messages");
    assert!((allocs as f64) < messages * 0.05, "{allocs} allocations for {messages:.0} messages");
}

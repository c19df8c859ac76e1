//! Writing interval-log entries allocates nothing once the buffers have grown: the load
//! generator's collector and the server's harvester write three or one entries every second, and
//! their steady state must stay allocation-free however low the message rate.

use std::time::{Duration, SystemTime};

use wsbench_core::alloc::thread_allocations;
use wsbench_core::hist::{interval_log_builder, log_serializer, new_histogram, record_ns};

wsbench_core::count_allocations!();

#[test]
fn interval_log_entries_allocate_nothing_in_steady_state() {
    let mut h = new_histogram();
    let mut serializer = log_serializer();
    let mut sink = std::io::sink();
    let mut log = interval_log_builder(SystemTime::now(), "test").begin_log_with(&mut sink, &mut serializer).unwrap();
    let mut entry = |i: u64, h: &mut hdrhistogram::Histogram<u64>| {
        h.reset();
        for v in 0..5_000u64 {
            record_ns(h, (v * 7_919 + i * 104_729) % 20_000_000 + 10_000);
        }
        log.write_histogram(h, Duration::from_secs(i), Duration::from_secs(1), None).unwrap();
    };
    // Warm-up: the buffers grow to the size of such entries (they grow again only for larger ones),
    // so it writes the very entries measured below: how large each compresses depends on the
    // zlib backend (zlib-rs since permessage-deflate needed it), and the largest may come late.
    for i in (0..10).chain(10..30) {
        entry(i, &mut h);
    }
    let before = thread_allocations();
    for i in 10..30 {
        entry(i, &mut h);
    }
    assert_eq!(thread_allocations() - before, 0, "allocations while writing 20 log entries");
}

//! What one worker thread records: three histograms and a few counters per one-second interval.
//!
//! Histograms are ~220 KB each, so there is one set per worker thread per interval, never one per
//! connection. The connections of a worker share its [`Recorder`] (they run on one thread, so a
//! `RefCell` is enough). At every interval boundary the worker hands the finished
//! [`IntervalSet`] to the collector and carries on with a recycled, emptied one that the collector
//! sent back, so the steady state allocates nothing. Recording never allocates: histograms are
//! pre-sized and values beyond their range are clamped, not resized for.

use hdrhistogram::Histogram;
use wsbench_core::hist::{new_histogram, record_ns};
use wsbench_core::result::MessageCounts;

/// One interval of one worker (or, after merging, of the whole process).
#[derive(Debug, Clone)]
pub struct IntervalSet {
    /// Worker thread that owns these histograms; they go back to it after merging.
    pub worker: usize,
    /// Interval index: 0 is the first second of the measured window.
    pub index: u64,
    /// Monotonic start and end of what this set covers.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The worker's last interval: nothing follows from this worker.
    pub last: bool,
    /// Intended send time to echo, in ns.
    pub latency: Histogram<u64>,
    /// Actual send time to echo, in ns.
    pub service_time: Histogram<u64>,
    /// Actual minus intended send time, in ns.
    pub send_lag: Histogram<u64>,
    pub counts: MessageCounts,
}

impl IntervalSet {
    /// Allocates a set (three histograms). Done at start-up and when no recycled set is at hand.
    pub fn new(worker: usize) -> Self {
        Self {
            worker,
            index: 0,
            start_ns: 0,
            end_ns: 0,
            last: false,
            latency: new_histogram(),
            service_time: new_histogram(),
            send_lag: new_histogram(),
            counts: MessageCounts::default(),
        }
    }

    /// Empties the set for reuse; keeps the allocations and the owner.
    pub fn reset(&mut self) {
        self.index = 0;
        self.start_ns = 0;
        self.end_ns = 0;
        self.last = false;
        self.latency.reset();
        self.service_time.reset();
        self.send_lag.reset();
        self.counts = MessageCounts::default();
    }

    /// Adds another worker's part of the same interval into this one.
    pub fn merge(&mut self, other: &IntervalSet) {
        // All sets share wsbench's histogram bounds, so `add` cannot fail.
        self.latency.add(&other.latency).expect("same bounds");
        self.service_time.add(&other.service_time).expect("same bounds");
        self.send_lag.add(&other.send_lag).expect("same bounds");
        self.counts += other.counts;
        self.start_ns = self.start_ns.min(other.start_ns);
        self.end_ns = self.end_ns.max(other.end_ns);
    }
}

/// The recording side of one worker thread.
#[derive(Debug)]
pub struct Recorder {
    current: IntervalSet,
    /// Sets ready to take over at the next boundary (recycled by the collector or pre-allocated).
    spare: Vec<IntervalSet>,
}

/// Spare interval sets per worker. The collector returns a set only after every worker has
/// handed in that interval and it has been merged and written, so on a busy machine it can be
/// late by more than a second; with this many spares a worker can run that long ahead without
/// allocating (each set is three histograms, about 1 MB).
const SPARE_SETS: usize = 3;
/// With intervals shorter than a second, enough spares for the collector to be this late.
const SPARE_COVER_NS: u64 = 2_000_000_000;

/// Spare sets for intervals of `interval_ns`: [`SPARE_SETS`], or enough to cover
/// [`SPARE_COVER_NS`] of shorter intervals (20 at 100 ms).
pub fn spare_sets_for(interval_ns: u64) -> usize {
    SPARE_SETS.max(SPARE_COVER_NS.div_ceil(interval_ns.max(1)) as usize)
}

impl Recorder {
    /// A recorder for `worker` with [`SPARE_SETS`] spare sets (one-second intervals).
    pub fn new(worker: usize) -> Self {
        Self::with_spares(worker, SPARE_SETS)
    }

    /// A recorder with `spares` spare sets, allocated now so that no interval boundary of the
    /// measured window allocates, even when the collector is slow to recycle.
    pub fn with_spares(worker: usize, spares: usize) -> Self {
        // Room for every set in circulation, so `give_back` never grows the vector either.
        let mut spare = Vec::with_capacity(spares + 1);
        spare.extend((0..spares).map(|_| IntervalSet::new(worker)));
        Self { current: IntervalSet::new(worker), spare }
    }

    /// Starts interval 0 at `start_ns` (the beginning of the measured window).
    pub fn begin(&mut self, start_ns: u64) {
        self.current.index = 0;
        self.current.start_ns = start_ns;
    }

    /// A measured message went out `lag_ns` after its intended time.
    #[inline]
    pub fn sent(&mut self, lag_ns: u64) {
        self.current.counts.sent += 1;
        record_ns(&mut self.current.send_lag, lag_ns);
    }

    /// A correct echo of a measured message arrived.
    #[inline]
    pub fn received(&mut self, latency_ns: u64, service_time_ns: u64) {
        self.current.counts.received += 1;
        record_ns(&mut self.current.latency, latency_ns);
        record_ns(&mut self.current.service_time, service_time_ns);
    }

    /// The echo just counted by [`Self::received`] or [`Self::corrupted`] arrived after the
    /// measured window had closed.
    #[inline]
    pub fn late(&mut self) {
        self.current.counts.late += 1;
    }

    /// An echo of a measured message arrived but did not match what was sent. It counts as
    /// received (it did come back) and as corrupted, and its timing is not recorded.
    pub fn corrupted(&mut self) {
        self.current.counts.received += 1;
        self.current.counts.corrupted += 1;
    }

    /// An echo arrived when no message was outstanding: the server sent something of its own.
    pub fn unexpected(&mut self) {
        self.current.counts.corrupted += 1;
    }

    /// A send or receive failed, or the peer dropped the connection.
    pub fn error(&mut self) {
        self.current.counts.errors += 1;
    }

    /// Measured messages never answered.
    pub fn lost(&mut self, n: u64) {
        self.current.counts.lost += n;
    }

    /// A set the collector sent back after merging.
    /// The collector resets it first, so the worker thread never spends time zeroing histograms.
    pub fn give_back(&mut self, set: IntervalSet) {
        debug_assert!(set.latency.is_empty() && set.counts == MessageCounts::default());
        self.spare.push(set);
    }

    /// Ends the current interval at `end_ns` and starts the next one; returns the finished set.
    pub fn rotate(&mut self, end_ns: u64) -> IntervalSet {
        let next_index = self.current.index + 1;
        let worker = self.current.worker;
        let fresh = self.spare.pop().unwrap_or_else(|| IntervalSet::new(worker));
        let mut done = std::mem::replace(&mut self.current, fresh);
        done.end_ns = end_ns;
        self.current.index = next_index;
        self.current.start_ns = end_ns;
        done
    }

    /// Ends the last interval at `end_ns` (never before it began); the recorder must not be used
    /// afterwards.
    pub fn finish(&mut self, end_ns: u64) -> IntervalSet {
        let mut done = self.rotate(end_ns.max(self.current.start_ns));
        done.last = true;
        done
    }

    /// Index of the interval being recorded.
    pub fn index(&self) -> u64 {
        self.current.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_intervals_get_more_spares() {
        assert_eq!(spare_sets_for(1_000_000_000), SPARE_SETS);
        assert_eq!(spare_sets_for(100_000_000), 20);
        assert_eq!(spare_sets_for(5_000_000_000), SPARE_SETS);
    }

    #[test]
    fn rotation_hands_over_and_starts_empty() {
        let mut r = Recorder::new(3);
        r.begin(1_000);
        r.sent(5);
        r.received(100, 90);
        r.corrupted();
        r.late();
        r.error();
        let first = r.rotate(2_000);
        assert_eq!((first.worker, first.index, first.start_ns, first.end_ns, first.last), (3, 0, 1_000, 2_000, false));
        assert_eq!(first.counts, MessageCounts { sent: 1, received: 2, late: 1, errors: 1, corrupted: 1, lost: 0 });
        assert_eq!((first.latency.len(), first.service_time.len(), first.send_lag.len()), (1, 1, 1));

        r.lost(4);
        let last = r.finish(2_500);
        assert_eq!((last.index, last.start_ns, last.end_ns, last.last), (1, 2_000, 2_500, true));
        assert_eq!(last.counts, MessageCounts { lost: 4, ..Default::default() });
        assert!(last.latency.is_empty(), "a rotated-in set starts empty");
    }

    #[test]
    fn recycled_sets_are_reset_and_reused_without_allocating_new_ones() {
        let mut r = Recorder::new(0);
        r.begin(0);
        r.received(7, 7);
        let mut a = r.rotate(1);
        // A pre-allocated spare is now current; `a` comes back reset, as the collector sends it.
        a.reset();
        r.give_back(a);
        assert_eq!(r.spare.len(), SPARE_SETS);
        let capacity = r.spare.capacity();
        let b = r.rotate(2);
        assert_eq!(r.spare.len(), SPARE_SETS - 1);
        assert_eq!(b.index, 1);
        // Every set in circulation fits without growing the spare list.
        for _ in 0..SPARE_SETS {
            r.rotate(3);
        }
        assert!(r.spare.is_empty());
        for _ in 0..=SPARE_SETS {
            r.give_back(IntervalSet::new(0));
        }
        assert_eq!(r.spare.capacity(), capacity, "give_back must not reallocate");
        assert!(r.current.latency.is_empty() && r.current.counts == MessageCounts::default());
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = IntervalSet::new(0);
        let mut b = IntervalSet::new(1);
        a.start_ns = 10;
        a.end_ns = 20;
        b.start_ns = 9;
        b.end_ns = 25;
        record_ns(&mut a.latency, 1_000);
        record_ns(&mut b.latency, 3_000);
        a.counts.sent = 2;
        b.counts.sent = 3;
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.counts.sent, 5);
        assert_eq!((a.start_ns, a.end_ns), (9, 25));
        assert_eq!(a.worker, 0, "the merged set still belongs to its first owner");
    }
}

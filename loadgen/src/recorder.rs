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
    /// Messages outstanding at the interval's end (after merging: of every worker).
    pub outstanding: u64,
    /// Age of the oldest of them at the interval's end, in ns (0 when none).
    pub oldest_outstanding_ns: u64,
    /// The youngest unanswered message's age when it was given up, in ns; `u64::MAX` when none.
    pub unanswered_min_ns: u64,
    /// Fewest and most connections open during the interval (after merging: sums over workers).
    pub open_min: u32,
    pub open_max: u32,
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
            outstanding: 0,
            oldest_outstanding_ns: 0,
            unanswered_min_ns: u64::MAX,
            open_min: 0,
            open_max: 0,
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
        self.outstanding = 0;
        self.oldest_outstanding_ns = 0;
        self.unanswered_min_ns = u64::MAX;
        self.open_min = 0;
        self.open_max = 0;
    }

    /// Adds another worker's part of the same interval into this one.
    pub fn merge(&mut self, other: &IntervalSet) {
        // All sets share wsbench's histogram bounds, so `add` cannot fail.
        self.latency.add(&other.latency).expect("same bounds");
        self.service_time.add(&other.service_time).expect("same bounds");
        self.send_lag.add(&other.send_lag).expect("same bounds");
        self.counts += other.counts;
        self.outstanding += other.outstanding;
        self.oldest_outstanding_ns = self.oldest_outstanding_ns.max(other.oldest_outstanding_ns);
        self.unanswered_min_ns = self.unanswered_min_ns.min(other.unanswered_min_ns);
        // Workers' intervals line up, so the sums bound the process's minimum from below and
        // its maximum from above.
        self.open_min += other.open_min;
        self.open_max += other.open_max;
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
    /// Per connection of the worker: the intended send time of its oldest outstanding message,
    /// `u64::MAX` when none. Sized once, so keeping it up to date never allocates.
    oldest_pending: Vec<u64>,
    /// Messages sent (warm-up included) and not yet answered or given up, over the worker.
    outstanding: u64,
    /// Connections of the worker open now.
    open: u32,
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
        Self { current: IntervalSet::new(worker), spare, oldest_pending: Vec::new(), outstanding: 0, open: 0 }
    }

    /// Tracks what `connections` connections (slots `0..connections`) leave outstanding.
    /// They are open now.
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.oldest_pending = vec![u64::MAX; connections];
        self.open = u32::try_from(connections).unwrap_or(u32::MAX);
        self.current.open_min = self.open;
        self.current.open_max = self.open;
        self
    }

    /// A connection of the worker ended. One that ends before the measured window does
    /// (`in_window`) lowers the interval's fewest open connections; closing after the window
    /// is the end of the run, not a connection the server stopped holding.
    pub fn closed(&mut self, in_window: bool) {
        self.open = self.open.saturating_sub(1);
        if in_window {
            self.current.open_min = self.current.open_min.min(self.open);
        }
    }

    /// A connection of the worker opened (a connection ramp reached its place).
    pub fn opened(&mut self) {
        self.open += 1;
        self.current.open_max = self.current.open_max.max(self.open);
    }

    /// Tracks `slots` places of which `open` are open now (a connection ramp opens the rest
    /// later, see [`Self::opened`]).
    pub fn with_slots(self, slots: usize, open: usize) -> Self {
        let mut r = self.with_connections(slots);
        r.open = u32::try_from(open).unwrap_or(u32::MAX);
        r.current.open_min = r.open;
        r.current.open_max = r.open;
        r
    }

    /// Connections of the worker open now.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// Connection `slot` has `outstanding` messages more (or fewer) outstanding than before, and
    /// its oldest was intended at `oldest_ns` (`u64::MAX`: none is).
    #[inline]
    pub fn pending(&mut self, slot: usize, change: i64, oldest_ns: u64) {
        self.outstanding = self.outstanding.saturating_add_signed(change);
        if let Some(p) = self.oldest_pending.get_mut(slot) {
            *p = oldest_ns;
        }
    }

    /// A measured message was still unanswered when its connection ended, `latency_ns` after
    /// its intended and `service_time_ns` after its actual send time: counted, and recorded at
    /// that age (a lower bound on its latency), so a stalled server cannot look fast.
    pub fn unanswered(&mut self, latency_ns: u64, service_time_ns: u64) {
        self.current.counts.lost += 1;
        record_ns(&mut self.current.latency, latency_ns);
        record_ns(&mut self.current.service_time, service_time_ns);
        self.current.unanswered_min_ns = self.current.unanswered_min_ns.min(latency_ns);
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

    /// `n` measured messages went out when they were allowed to (closed loop: no send lag).
    #[inline]
    pub fn sent_zero_lag(&mut self, n: u64) {
        if n > 0 {
            self.current.counts.sent += n;
            // Recording 0 cannot fail: it is within every histogram's bounds.
            let _ = self.current.send_lag.record_n(0, n);
        }
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

    /// Template loads: a reply that names a request never sent, or no readable number.
    pub fn unmatched(&mut self) {
        self.current.counts.unmatched += 1;
    }

    /// Template loads: a frame that answers no outstanding request (a push, a duplicate).
    pub fn unsolicited(&mut self) {
        self.current.counts.unsolicited += 1;
    }

    /// A send or receive failed, or the peer dropped the connection.
    pub fn error(&mut self) {
        self.current.counts.errors += 1;
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
        done.outstanding = self.outstanding;
        let oldest = self.oldest_pending.iter().copied().min().unwrap_or(u64::MAX);
        done.oldest_outstanding_ns = if self.outstanding > 0 && oldest != u64::MAX { end_ns.saturating_sub(oldest) } else { 0 };
        self.current.index = next_index;
        self.current.start_ns = end_ns;
        self.current.open_min = self.open;
        self.current.open_max = self.open;
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
        assert_eq!(first.counts, MessageCounts { sent: 1, received: 2, late: 1, errors: 1, corrupted: 1, lost: 0, ..Default::default() });
        assert_eq!((first.latency.len(), first.service_time.len(), first.send_lag.len()), (1, 1, 1));

        r.unanswered(1_400, 1_300);
        r.unanswered(900, 800);
        let last = r.finish(2_500);
        assert_eq!((last.index, last.start_ns, last.end_ns, last.last), (1, 2_000, 2_500, true));
        assert_eq!(last.counts, MessageCounts { lost: 2, ..Default::default() });
        assert_eq!((last.latency.len(), last.service_time.len(), last.unanswered_min_ns), (2, 2, 900), "unanswered messages are in the histograms");
    }

    #[test]
    fn closed_loop_sends_are_counted_per_batch_with_no_lag() {
        let mut r = Recorder::new(0);
        r.begin(0);
        r.sent_zero_lag(16);
        r.sent_zero_lag(0);
        r.sent(7);
        let a = r.rotate(1_000);
        assert_eq!(a.counts.sent, 17);
        assert_eq!((a.send_lag.len(), a.send_lag.count_at(0), a.send_lag.max()), (17, 16, 7));
    }

    #[test]
    fn an_interval_shows_what_is_outstanding_at_its_end() {
        let mut r = Recorder::new(0).with_connections(2);
        r.begin(0);
        r.pending(0, 1, 100);
        r.pending(1, 2, 400);
        let a = r.rotate(1_000);
        assert_eq!((a.outstanding, a.oldest_outstanding_ns), (3, 900));
        r.pending(0, -1, u64::MAX);
        r.pending(1, -2, u64::MAX);
        let b = r.rotate(2_000);
        assert_eq!((b.outstanding, b.oldest_outstanding_ns), (0, 0));
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!((merged.outstanding, merged.oldest_outstanding_ns), (3, 900));
    }

    #[test]
    fn intervals_show_the_fewest_and_most_open_connections() {
        let mut r = Recorder::new(0).with_connections(3);
        r.begin(0);
        let a = r.rotate(1_000);
        assert_eq!((a.open_min, a.open_max), (3, 3));
        r.closed(true);
        r.closed(true);
        let b = r.rotate(2_000);
        assert_eq!((b.open_min, b.open_max), (1, 3), "the interval began with 3 and fell to 1");
        // Closing after the window is the run's end, not a connection lost.
        r.closed(false);
        let c = r.finish(2_500);
        assert_eq!((c.open_min, c.open_max, r.open()), (1, 1, 0));
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!((merged.open_min, merged.open_max), (4, 6), "summed over workers");
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

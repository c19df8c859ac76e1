//! One-way latency recording: per-thread histograms, a once-per-second harvester, and the
//! `server-latency.hlog` interval log.
//!
//! Each message's header carries the client's send time on the host's monotonic clock; the
//! server records `now - sent` (warm-up messages excluded). Recording must neither allocate nor
//! contend per message, so every runtime thread records into its own histogram (found through a
//! thread-local, created the first time that thread records) behind a mutex that only the
//! harvester ever competes for, once per second, for the time of a pointer swap. The harvester
//! adds the swapped-out histograms into one interval, appends it to the log and to the total.
//!
//! Beside its histogram, each thread notes where the allocation counters
//! ([`wsbench_core::alloc`]) stood at its first and last measured message, so the server can
//! report the allocations of its steady state ([`Recorder::allocation_window`]) without a
//! shared write per message. A thread's slot is made at its first wsbench message, warm-up
//! included, so that this one-time allocation falls in the warm-up, not in the measured window.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use wsbench_core::alloc;
use wsbench_core::clock::now_ns;
use wsbench_core::header::MessageHeader;

use crate::pause::sleep_until;
use wsbench_core::hist::{interval_log_builder, log_serializer, new_histogram, record_ns};

/// The comment at the top of `server-latency.hlog`.
pub const LOG_COMMENT: &str = "wsbench server one-way latency";

const NS_PER_S: u64 = 1_000_000_000;

/// One thread's recording.
#[derive(Debug)]
struct ThreadRecord {
    histogram: Histogram<u64>,
    /// Set at the thread's first measured message; never harvested.
    marks: Option<AllocationMarks>,
    /// A connection of this thread ended after its first measured message: the steady state is
    /// over for allocation counting (closing allocates), so the marks stay where they are.
    frozen: bool,
}

/// The allocation counters at a thread's first and last measured message.
#[derive(Debug, Clone, Copy)]
struct AllocationMarks {
    messages: u64,
    first_process: u64,
    last_process: u64,
    first_thread: u64,
    last_thread: u64,
}

impl ThreadRecord {
    fn new() -> Self {
        Self {
            histogram: new_histogram(),
            marks: None,
            frozen: false,
        }
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        record_ns(&mut self.histogram, ns);
        if self.frozen {
            return;
        }
        // A relaxed load of a counter nobody writes while nothing allocates, and a thread-local.
        let (process, thread) = (alloc::allocations(), alloc::thread_allocations());
        match &mut self.marks {
            Some(m) => {
                m.messages += 1;
                m.last_process = process;
                m.last_thread = thread;
            }
            None => {
                self.marks = Some(AllocationMarks {
                    messages: 1,
                    first_process: process,
                    last_process: process,
                    first_thread: thread,
                    last_thread: thread,
                })
            }
        }
    }
}

/// Allocations over the measured messages a server received (see [`Recorder::allocation_window`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocationWindow {
    /// Measured messages recorded.
    pub messages: u64,
    /// Allocations of the whole process from the earliest first to the latest last measured message.
    pub process: u64,
    /// Allocations of the recording threads, each from its first to its last measured message.
    pub threads: u64,
}

type Slot = Arc<Mutex<ThreadRecord>>;

static NEXT_RECORDER_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's histogram for each live recorder (one, unless tests run several servers).
    static SLOTS: RefCell<Vec<(u64, Slot)>> = const { RefCell::new(Vec::new()) };
}

fn lock(slot: &Mutex<ThreadRecord>) -> MutexGuard<'_, ThreadRecord> {
    // A panic while holding the lock leaves a histogram that is still consistent enough to count.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The one-way latency histograms of one server, one per thread that has recorded.
#[derive(Debug)]
pub struct Recorder {
    id: u64,
    slots: Mutex<Vec<Slot>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            id: NEXT_RECORDER_ID.fetch_add(1, Relaxed),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Records the one-way latency of a received message that carries a wsbench header and is
    /// not a warm-up message; any other payload is ignored. Allocates nothing after a thread's
    /// first record.
    #[inline]
    pub fn observe(&self, payload: &[u8]) {
        if let Some(h) = MessageHeader::decode(payload) {
            if h.warmup {
                // Allocates the thread's slot now, while warm-up messages flow, if it has none.
                self.with_slot(|_| {});
            } else {
                self.record_ns(now_ns().saturating_sub(h.sent_ns));
            }
        }
    }

    /// Records one latency (of a measured message) into the calling thread's histogram.
    pub fn record_ns(&self, ns: u64) {
        self.with_slot(|record| record.record(ns));
    }

    /// A connection served by the calling thread ended. From then on the thread's measured
    /// messages still go into the latency histogram but no longer move its allocation window:
    /// closing a connection allocates, and when a load generator's connections finish one by
    /// one, the last measured messages of some arrive after others have closed. The window is
    /// the steady state, from the first measured message to the last one before any connection
    /// of the thread ended.
    pub fn connection_ended(&self) {
        let _ = SLOTS.try_with(|cell| {
            if let Some((_, slot)) = cell.borrow().iter().find(|(id, _)| *id == self.id) {
                let mut record = lock(slot);
                record.frozen = record.marks.is_some();
            }
        });
    }

    /// Runs `f` on the calling thread's record, making it first if this thread has none.
    #[inline]
    fn with_slot(&self, f: impl FnOnce(&mut ThreadRecord)) {
        // `try_with` fails only while the thread is being torn down; a record then is moot.
        let _ = SLOTS.try_with(|cell| {
            if let Some((_, slot)) = cell.borrow().iter().find(|(id, _)| *id == self.id) {
                f(&mut lock(slot));
                return;
            }
            let slot = self.register();
            f(&mut lock(&slot));
            let mut slots = cell.borrow_mut();
            // Forget histograms of recorders that are gone (only the thread-local still holds them).
            slots.retain(|(_, s)| Arc::strong_count(s) > 1);
            slots.push((self.id, slot));
        });
    }

    fn register(&self) -> Slot {
        let slot = Arc::new(Mutex::new(ThreadRecord::new()));
        lock_slots(&self.slots).push(Arc::clone(&slot));
        slot
    }

    /// Allocations between the measured messages recorded so far: the process's from the first
    /// to the last of them (on any thread), and the recording threads' own, each between its
    /// first and last. `None` before any measured message.
    pub fn allocation_window(&self) -> Option<AllocationWindow> {
        let slots = lock_slots(&self.slots);
        let marks: Vec<AllocationMarks> = slots.iter().filter_map(|s| lock(s).marks).collect();
        let first = marks.iter().map(|m| m.first_process).min()?;
        let last = marks.iter().map(|m| m.last_process).max()?;
        Some(AllocationWindow {
            messages: marks.iter().map(|m| m.messages).sum(),
            process: last.saturating_sub(first),
            threads: marks
                .iter()
                .map(|m| m.last_thread.saturating_sub(m.first_thread))
                .sum(),
        })
    }

    /// Moves everything recorded so far into `into`, leaving every thread's histogram empty.
    /// `spare` is an empty histogram lent for the swap; it comes back empty.
    pub fn harvest_into(&self, spare: &mut Histogram<u64>, into: &mut Histogram<u64>) {
        let slots = lock_slots(&self.slots);
        for slot in slots.iter() {
            // Swap under the lock (constant time), add outside it, so recording never waits long.
            std::mem::swap(&mut lock(slot).histogram, spare);
            into.add(&*spare)
                .expect("all wsbench histograms share bounds");
            spare.reset();
        }
    }
}

fn lock_slots(slots: &Mutex<Vec<Slot>>) -> MutexGuard<'_, Vec<Slot>> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An interval log file opened for writing, with the wall-clock time its entries count from.
#[derive(Debug)]
pub struct IntervalLogFile {
    file: File,
    path: PathBuf,
}

impl IntervalLogFile {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
            path: path.to_owned(),
        })
    }
}

/// What the harvester hands back when it stops.
#[derive(Debug)]
pub struct Harvest {
    /// Everything recorded over the server's life.
    pub total: Histogram<u64>,
    /// Why the interval log is incomplete, if it is.
    pub log_error: Option<String>,
}

/// The thread that collects every thread's histogram once per second.
#[derive(Debug)]
pub struct Harvester {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Harvest>>,
}

impl Harvester {
    /// Starts harvesting `recorder` once per second from (`start`, `start_ns`), the same instant
    /// on the wall and monotonic clocks, writing each interval to `log` when given.
    pub fn start(
        recorder: Arc<Recorder>,
        log: Option<IntervalLogFile>,
        start: SystemTime,
        start_ns: u64,
    ) -> io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wsbench-harvest".into())
            .spawn(move || harvest_loop(&recorder, log, start, start_ns, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Harvests the last partial interval, closes the log and returns the total. Blocks for the
    /// time of one harvest; call it from a blocking context.
    pub fn finish(mut self) -> Harvest {
        self.stop.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(harvest)) => harvest,
            _ => Harvest {
                total: new_histogram(),
                log_error: Some("the histogram harvester panicked".into()),
            },
        }
    }
}

impl Drop for Harvester {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn harvest_loop(
    recorder: &Recorder,
    log: Option<IntervalLogFile>,
    start: SystemTime,
    start_ns: u64,
    stopped: &mpsc::Receiver<()>,
) -> Harvest {
    let mut total = new_histogram();
    let mut interval = new_histogram();
    let mut spare = new_histogram();
    let mut log_error = None;

    // The interval log writer borrows its file and its serializer, so all three live here.
    let mut serializer = log_serializer();
    let (mut file, path) = match log {
        Some(l) => (Some(l.file), l.path),
        None => (None, PathBuf::new()),
    };
    let mut writer = match file.as_mut() {
        Some(f) => {
            match interval_log_builder(start, LOG_COMMENT).begin_log_with(f, &mut serializer) {
                Ok(w) => Some(w),
                Err(e) => {
                    log_error = Some(format!("cannot write {}: {e}", path.display()));
                    None
                }
            }
        }
        None => None,
    };

    let mut from = start_ns;
    loop {
        // Intervals end on whole seconds since the start; one missed while stalled is skipped.
        let due = start_ns + ((now_ns().max(from) - start_ns) / NS_PER_S + 1) * NS_PER_S;
        let stop = sleep_until(stopped, due);
        let to = now_ns();
        recorder.harvest_into(&mut spare, &mut interval);
        if let Some(w) = writer.as_mut() {
            let offset = Duration::from_nanos(from - start_ns);
            if let Err(e) =
                w.write_histogram(&interval, offset, Duration::from_nanos(to - from), None)
            {
                log_error = Some(format!("cannot write {}: {e}", path.display()));
                writer = None;
            }
        }
        total
            .add(&interval)
            .expect("all wsbench histograms share bounds");
        interval.reset();
        from = to;
        if stop {
            break;
        }
    }
    Harvest { total, log_error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::header::HEADER_LEN;
    use wsbench_core::hist::read_interval_log;

    fn message(sent_ns: u64, warmup: bool) -> [u8; HEADER_LEN] {
        let mut buf = [0u8; HEADER_LEN];
        MessageHeader {
            seq: 1,
            intended_ns: sent_ns,
            sent_ns,
            warmup,
        }
        .encode(&mut buf);
        buf
    }

    #[test]
    fn records_headers_from_every_thread_and_skips_the_rest() {
        let rec = Arc::new(Recorder::new());
        let sent = now_ns();
        rec.observe(&message(sent, false));
        rec.observe(&message(sent, true));
        rec.observe(b"not a wsbench message");
        let r = Arc::clone(&rec);
        std::thread::spawn(move || {
            for _ in 0..3 {
                r.observe(&message(sent, false));
            }
        })
        .join()
        .unwrap();
        let (mut spare, mut into) = (new_histogram(), new_histogram());
        rec.harvest_into(&mut spare, &mut into);
        assert_eq!(into.len(), 4);
        assert!(spare.is_empty());
        // A second harvest finds every thread's histogram empty.
        let mut again = new_histogram();
        rec.harvest_into(&mut spare, &mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn the_allocation_window_covers_measured_messages_only() {
        let rec = Recorder::new();
        assert_eq!(rec.allocation_window(), None);
        let sent = now_ns();
        rec.observe(&message(sent, true));
        assert_eq!(
            rec.allocation_window(),
            None,
            "a warm-up message only prepares the slot"
        );
        rec.observe(&message(sent, false));
        rec.observe(&message(sent, false));
        let w = rec.allocation_window().unwrap();
        // This test binary does not count allocations, so only the message count moves.
        assert_eq!(
            w,
            AllocationWindow {
                messages: 2,
                process: 0,
                threads: 0
            }
        );
        // Harvesting empties the histograms but keeps the window.
        let (mut spare, mut into) = (new_histogram(), new_histogram());
        rec.harvest_into(&mut spare, &mut into);
        assert_eq!(rec.allocation_window().map(|w| w.messages), Some(2));
    }

    #[test]
    fn the_allocation_window_ends_when_a_connection_ends() {
        let rec = Recorder::new();
        let sent = now_ns();
        // A connection ending before any measured message does not close the window.
        rec.connection_ended();
        rec.observe(&message(sent, false));
        rec.observe(&message(sent, false));
        rec.connection_ended();
        // Later messages (other connections still draining) are recorded but not windowed.
        rec.observe(&message(sent, false));
        assert_eq!(rec.allocation_window().map(|w| w.messages), Some(2));
        let (mut spare, mut into) = (new_histogram(), new_histogram());
        rec.harvest_into(&mut spare, &mut into);
        assert_eq!(into.len(), 3);
    }

    #[test]
    fn two_recorders_on_one_thread_stay_apart() {
        let (a, b) = (Recorder::new(), Recorder::new());
        a.record_ns(10);
        b.record_ns(20);
        b.record_ns(30);
        let (mut spare, mut ha, mut hb) = (new_histogram(), new_histogram(), new_histogram());
        a.harvest_into(&mut spare, &mut ha);
        b.harvest_into(&mut spare, &mut hb);
        assert_eq!((ha.len(), hb.len()), (1, 2));
    }

    #[test]
    fn harvester_writes_a_readable_log_with_every_record() {
        let dir =
            std::env::temp_dir().join(format!("wsbench-server-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server-latency.hlog");
        let rec = Arc::new(Recorder::new());
        let harvester = Harvester::start(
            Arc::clone(&rec),
            Some(IntervalLogFile::create(&path).unwrap()),
            SystemTime::now(),
            now_ns(),
        )
        .unwrap();
        for v in 1..=100u64 {
            rec.record_ns(v * 1_000);
        }
        let harvest = harvester.finish();
        assert_eq!(harvest.log_error, None);
        assert_eq!(harvest.total.len(), 100);
        let intervals = read_interval_log(&path).unwrap();
        assert!(!intervals.is_empty());
        assert_eq!(wsbench_core::hist::total(&intervals).len(), 100);
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! The one output door: interval logs, `intervals.csv` and `summary.json`.
//!
//! The collector thread receives every worker's finished intervals, merges the k-th intervals of
//! all workers (`Histogram::add`, never an average), writes one entry per second to each
//! `.hlog` file and one row to `intervals.csv` as soon as an interval is complete, adds it into
//! the run totals, updates the progress line, and sends the emptied histograms back to their
//! worker. Files are written as the run goes, so an interrupted run keeps everything measured
//! so far. `summary.json` is written once at the end, through a temporary file and a rename, so
//! a reader never sees half of it.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use wsbench_core::hist::{interval_log_builder, log_serializer, new_histogram};
use wsbench_core::layout::{INTERVALS_CSV, LATENCY_LOG, SEND_LAG_LOG, SERVICE_TIME_LOG, SUMMARY};
use wsbench_core::result::{IntervalRow, LoadgenSummary, MessageCounts};

use crate::progress::Progress;
use crate::recorder::IntervalSet;

/// What the collector learns once every connection is open: when the measured window begins
/// and how many workers will report.
#[derive(Debug, Clone)]
pub struct Begin {
    /// Wall-clock start of the measured window: the interval logs' start and base time.
    pub start: SystemTime,
    pub measured_start_ns: u64,
    pub workers: usize,
    /// On a ramp: where each stage ends, in ns after the measured window's start.
    pub stage_ends_ns: Vec<u64>,
}

/// The run's whole distributions and counts, merged from every interval.
#[derive(Debug, Clone)]
pub struct Totals {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    pub counts: MessageCounts,
    /// The youngest unanswered message's age when it was given up, in ns; `u64::MAX` when none.
    pub unanswered_min_ns: u64,
    /// Intervals written.
    pub intervals: u64,
    /// The fewest connections open in any interval written; `u32::MAX` before the first.
    pub held_min: u32,
    /// The first failure to write a file; later intervals are still merged into the totals.
    pub write_error: Option<String>,
}

impl Default for Totals {
    fn default() -> Self {
        Self { latency: new_histogram(), service_time: new_histogram(), send_lag: new_histogram(), counts: MessageCounts::default(), unanswered_min_ns: u64::MAX, intervals: 0, held_min: u32::MAX, write_error: None }
    }
}

/// The output files of one run, created (empty) before the run starts so that a folder that
/// cannot be written fails the run at once, not after the measurement.
pub struct OutputFiles {
    dir: Option<PathBuf>,
    latency: Box<dyn Write + Send>,
    service_time: Box<dyn Write + Send>,
    send_lag: Box<dyn Write + Send>,
    intervals: Box<dyn Write + Send>,
}

impl OutputFiles {
    /// Creates `dir` and the per-interval files in it; with no `dir`, everything written is discarded.
    pub fn create(dir: Option<&Path>) -> Result<Self, String> {
        let Some(dir) = dir else {
            return Ok(Self { dir: None, latency: Box::new(io::sink()), service_time: Box::new(io::sink()), send_lag: Box::new(io::sink()), intervals: Box::new(io::sink()) });
        };
        fs::create_dir_all(dir).map_err(|e| format!("cannot create output folder {}: {e}", dir.display()))?;
        let open = |name: &str| -> Result<Box<dyn Write + Send>, String> {
            let path = dir.join(name);
            // Unbuffered on purpose: one entry per second, and each is on disk when written.
            File::create(&path).map(|f| Box::new(f) as Box<dyn Write + Send>).map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        Ok(Self {
            dir: Some(dir.to_owned()),
            latency: open(LATENCY_LOG)?,
            service_time: open(SERVICE_TIME_LOG)?,
            send_lag: open(SEND_LAG_LOG)?,
            intervals: open(INTERVALS_CSV)?,
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// Writes `summary.json` into `dir` (via a temporary file and a rename).
pub fn write_summary(dir: &Path, summary: &LoadgenSummary) -> Result<(), String> {
    let path = dir.join(SUMMARY);
    let tmp = dir.join(format!(".{SUMMARY}.tmp"));
    let mut text = serde_json::to_string_pretty(summary).map_err(|e| format!("cannot serialize the summary: {e}"))?;
    text.push('\n');
    fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, &path)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The header line of `intervals.csv`, taken from [`IntervalRow`]'s serde names so the two never disagree.
fn csv_header() -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(IntervalRow::default()).expect("a row of numbers serializes");
    let bytes = w.into_inner().expect("writing to memory");
    let end = bytes.iter().position(|&b| b == b'\n').expect("a header line") + 1;
    bytes[..end].to_vec()
}

/// One interval index, being merged from the workers' parts.
struct Slot {
    merged: Option<IntervalSet>,
    parts: usize,
}

/// Runs the collector until every worker has sent its last interval (or all senders are gone).
/// `recycle[w]` sends emptied sets back to worker `w`.
pub fn collect(
    mut files: OutputFiles,
    begin: std_mpsc::Receiver<Begin>,
    rx: std_mpsc::Receiver<IntervalSet>,
    recycle: Vec<std_mpsc::Sender<IntervalSet>>,
    mut progress: Progress,
) -> Totals {
    let mut totals = Totals::default();
    let Ok(Begin { start, measured_start_ns, workers, stage_ends_ns }) = begin.recv() else {
        return totals;
    };

    // The interval log writers borrow their file and serializer, so all three live here, for
    // the collector's whole life.
    let (mut ser_l, mut ser_s, mut ser_g) = (log_serializer(), log_serializer(), log_serializer());
    let mut failed: Option<String> = None;
    let mut fail = |what: &str, e: String| {
        failed.get_or_insert_with(|| format!("cannot write {what}: {e}"));
    };
    let dir = files.dir.clone().unwrap_or_default();
    let name = |f: &str| dir.join(f).display().to_string();
    let mut log_l = interval_log_builder(start, "wsbench loadgen latency").begin_log_with(&mut files.latency, &mut ser_l).map_err(|e| fail(&name(LATENCY_LOG), e.to_string())).ok();
    let mut log_s = interval_log_builder(start, "wsbench loadgen service time").begin_log_with(&mut files.service_time, &mut ser_s).map_err(|e| fail(&name(SERVICE_TIME_LOG), e.to_string())).ok();
    let mut log_g = interval_log_builder(start, "wsbench loadgen send lag").begin_log_with(&mut files.send_lag, &mut ser_g).map_err(|e| fail(&name(SEND_LAG_LOG), e.to_string())).ok();
    if let Err(e) = files.intervals.write_all(&csv_header()) {
        fail(&name(INTERVALS_CSV), e.to_string());
    }
    let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(&mut files.intervals);

    let mut write = |set: &IntervalSet, totals: &mut Totals, progress: &mut Progress| {
        let start_rel = Duration::from_nanos(set.start_ns.saturating_sub(measured_start_ns));
        let length = Duration::from_nanos(set.end_ns.saturating_sub(set.start_ns));
        totals.latency.add(&set.latency).expect("same bounds");
        totals.service_time.add(&set.service_time).expect("same bounds");
        totals.send_lag.add(&set.send_lag).expect("same bounds");
        totals.counts += set.counts;
        totals.unanswered_min_ns = totals.unanswered_min_ns.min(set.unanswered_min_ns);
        // A last interval of no length and no data (the run stopped on a boundary) is not a row.
        if length.is_zero() && set.counts == MessageCounts::default() && set.latency.is_empty() {
            return;
        }
        totals.intervals += 1;
        totals.held_min = totals.held_min.min(set.open_min);
        for (log, h, file) in [(&mut log_l, &set.latency, LATENCY_LOG), (&mut log_s, &set.service_time, SERVICE_TIME_LOG), (&mut log_g, &set.send_lag, SEND_LAG_LOG)] {
            if let Some(w) = log {
                if let Err(e) = w.write_histogram(h, start_rel, length, None) {
                    fail(&name(file), format!("{e:?}"));
                    *log = None;
                }
            }
        }
        let row = IntervalRow { stage: stage_of(set, measured_start_ns, &stage_ends_ns), ..interval_row(set, measured_start_ns) };
        if let Err(e) = csv.serialize(row).and_then(|()| csv.flush().map_err(csv::Error::from)) {
            fail(&name(INTERVALS_CSV), e.to_string());
        }
        progress.update(row.elapsed_s, row.throughput, row.p99_us);
    };

    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut base = 0u64; // interval index of slots[0]
    let mut last_index: Vec<Option<u64>> = vec![None; workers];
    let give_back = |mut set: IntervalSet| {
        let w = set.worker;
        set.reset();
        // The worker may have ended already; then the set is simply dropped.
        if let Some(tx) = recycle.get(w) {
            let _ = tx.send(set);
        }
    };

    while let Ok(set) = rx.recv() {
        if set.index < base {
            // A part for an interval already written (only after a protocol slip): keep its counts.
            write(&set, &mut totals, &mut progress);
            give_back(set);
            continue;
        }
        if let Some(l) = last_index.get_mut(set.worker) {
            if set.last {
                *l = Some(set.index);
            }
        }
        let pos = (set.index - base) as usize;
        while slots.len() <= pos {
            slots.push_back(Slot { merged: None, parts: 0 });
        }
        let slot = &mut slots[pos];
        slot.parts += 1;
        match &mut slot.merged {
            None => slot.merged = Some(set),
            Some(m) => {
                m.merge(&set);
                give_back(set);
            }
        }
        // Write every leading interval that has all its parts: one from each worker that had not
        // finished before it.
        while let Some(front) = slots.front() {
            let expected = last_index.iter().filter(|l| l.is_none_or(|l| l >= base)).count();
            if front.parts < expected {
                break;
            }
            let slot = slots.pop_front().expect("front exists");
            if let Some(set) = slot.merged {
                write(&set, &mut totals, &mut progress);
                give_back(set);
            }
            base += 1;
        }
        if slots.is_empty() && last_index.iter().all(Option::is_some) {
            break;
        }
    }
    // Senders gone with parts missing (a worker died): write what there is.
    for slot in slots {
        if let Some(set) = slot.merged {
            write(&set, &mut totals, &mut progress);
        }
    }
    progress.clear();
    totals.write_error = failed;
    totals
}

/// The stage (from 1) that holds the middle of an interval; `None` without stages.
pub fn stage_of(set: &IntervalSet, measured_start_ns: u64, stage_ends_ns: &[u64]) -> Option<u32> {
    if stage_ends_ns.is_empty() {
        return None;
    }
    let mid = (set.start_ns / 2 + set.end_ns / 2).saturating_sub(measured_start_ns);
    let passed = stage_ends_ns.iter().filter(|&&end| end <= mid).count();
    Some(passed.min(stage_ends_ns.len() - 1) as u32 + 1)
}

/// The `intervals.csv` row of a merged interval.
pub fn interval_row(set: &IntervalSet, measured_start_ns: u64) -> IntervalRow {
    let secs = set.end_ns.saturating_sub(set.start_ns) as f64 / 1e9;
    let us = |q: f64| (!set.latency.is_empty()).then(|| set.latency.value_at_quantile(q) as f64 / 1_000.0);
    IntervalRow {
        elapsed_s: set.end_ns.saturating_sub(measured_start_ns) as f64 / 1e9,
        sent: set.counts.sent,
        received: set.counts.received,
        errors: set.counts.errors,
        throughput: if secs > 0.0 { set.counts.received as f64 / secs } else { 0.0 },
        p50_us: us(0.50),
        p90_us: us(0.90),
        p99_us: us(0.99),
        p99_9_us: us(0.999),
        max_us: (!set.latency.is_empty()).then(|| set.latency.max() as f64 / 1_000.0),
        outstanding: set.outstanding,
        oldest_outstanding_us: set.oldest_outstanding_ns as f64 / 1_000.0,
        open_min: set.open_min,
        open_max: set.open_max,
        stage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::hist::{read_interval_log, record_ns};

    fn part(worker: usize, index: u64, last: bool, latency_ns: &[u64], ms: u64) -> IntervalSet {
        let mut s = IntervalSet::new(worker);
        s.index = index;
        s.start_ns = ms + index * 1_000_000_000;
        s.end_ns = s.start_ns + 1_000_000_000;
        s.last = last;
        for &v in latency_ns {
            record_ns(&mut s.latency, v);
            s.counts.received += 1;
            s.counts.sent += 1;
        }
        s
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wsbench-loadgen-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn merges_workers_interval_by_interval_and_recycles() {
        let dir = temp_dir("collect");
        let files = OutputFiles::create(Some(&dir)).unwrap();
        let (tx, rx) = std_mpsc::channel();
        let (begin_tx, begin) = std_mpsc::channel();
        let (r0_tx, r0) = std_mpsc::channel();
        let (r1_tx, r1) = std_mpsc::channel();
        let ms = 5_000_000_000;
        begin_tx.send(Begin { start: SystemTime::now(), measured_start_ns: ms, workers: 2, stage_ends_ns: Vec::new() }).unwrap();
        // Worker 1 runs ahead; worker 0 ends one interval earlier (stopped near a boundary).
        tx.send(part(1, 0, false, &[1_000, 2_000], ms)).unwrap();
        tx.send(part(1, 1, false, &[3_000], ms)).unwrap();
        tx.send(part(0, 0, false, &[4_000], ms)).unwrap();
        tx.send(part(0, 1, true, &[5_000], ms)).unwrap();
        tx.send(part(1, 2, true, &[6_000], ms)).unwrap();
        drop(tx);
        let totals = collect(files, begin, rx, vec![r0_tx, r1_tx], Progress::disabled());
        assert_eq!(totals.counts.received, 6);
        assert_eq!(totals.latency.len(), 6);
        assert_eq!(totals.intervals, 3);
        assert!(totals.write_error.is_none());

        let log = read_interval_log(&dir.join(LATENCY_LOG)).unwrap();
        let counts: Vec<u64> = log.iter().map(|iv| iv.histogram.len()).collect();
        assert_eq!(counts, [3, 2, 1]);
        assert_eq!(log[1].start, Duration::from_secs(1));
        assert_eq!(log[1].duration, Duration::from_secs(1));
        assert_eq!(read_interval_log(&dir.join(SEND_LAG_LOG)).unwrap().len(), 3);

        let mut rows = csv::Reader::from_path(dir.join(INTERVALS_CSV)).unwrap();
        let rows: Vec<IntervalRow> = rows.deserialize().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].received, 3);
        assert!((rows[0].elapsed_s - 1.0).abs() < 1e-9);
        assert!((rows[0].throughput - 3.0).abs() < 1e-9);
        assert!((rows[2].p99_us.unwrap() - 6.0).abs() < 0.01, "{:?}", rows[2]);

        // Every set came back to its owner, emptied.
        let back: Vec<IntervalSet> = r0.try_iter().chain(r1.try_iter()).collect();
        assert_eq!(back.len(), 5);
        assert!(back.iter().all(|s| s.latency.is_empty() && s.counts == MessageCounts::default()));
        assert_eq!(back.iter().filter(|s| s.worker == 0).count(), 2);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_empty_run_still_has_headers() {
        let dir = temp_dir("empty");
        let files = OutputFiles::create(Some(&dir)).unwrap();
        let (tx, rx) = std_mpsc::channel();
        let (begin_tx, begin) = std_mpsc::channel();
        begin_tx.send(Begin { start: SystemTime::now(), measured_start_ns: 0, workers: 1, stage_ends_ns: Vec::new() }).unwrap();
        let mut s = IntervalSet::new(0);
        s.last = true;
        tx.send(s).unwrap();
        drop(tx);
        let totals = collect(files, begin, rx, vec![], Progress::disabled());
        assert_eq!(totals.intervals, 0);
        let csv_text = fs::read_to_string(dir.join(INTERVALS_CSV)).unwrap();
        assert_eq!(csv_text, "elapsed_s,sent,received,errors,throughput,p50_us,p90_us,p99_us,p99_9_us,max_us,outstanding,oldest_outstanding_us,open_min,open_max,stage\n");
        assert!(read_interval_log(&dir.join(LATENCY_LOG)).unwrap().is_empty());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn summary_is_replaced_whole() {
        let dir = temp_dir("summary");
        fs::create_dir_all(&dir).unwrap();
        assert!(write_summary(&dir.join("missing"), &sample_summary()).unwrap_err().contains("missing"));
        write_summary(&dir, &sample_summary()).unwrap();
        let back: LoadgenSummary = serde_json::from_str(&fs::read_to_string(dir.join(SUMMARY)).unwrap()).unwrap();
        assert_eq!(back, sample_summary());
        fs::remove_dir_all(&dir).ok();
    }

    fn sample_summary() -> LoadgenSummary {
        LoadgenSummary {
            schema_version: wsbench_core::SCHEMA_VERSION,
            complete: true,
            reason: None,
            wsbench_version: wsbench_core::VERSION.into(),
            config: Default::default(),
            command: vec!["wsbench-loadgen".into()],
            host: wsbench_core::result::HostInfo::current(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_s: 1.0,
            throughput_msgs_per_s: 1.0,
            rate: None,
            messages: Default::default(),
            connections: Default::default(),
            latency_us: Default::default(),
            service_time_us: Default::default(),
            send_lag_us: Default::default(),
            cpu: Default::default(),
            allocations_per_message: Some(0.0004),
            worker_allocations_per_message: Some(0.0),
            unanswered_min_age_us: Some(1.5e6),
            failed_checks: vec!["10 of 20 messages were never answered".into()],
            warnings: vec![],
            shard: None,
            start: None,
            setup: Default::default(),
            fanout: None,
            idle: Vec::new(),
            rx_timestamps: None,
        }
    }
}

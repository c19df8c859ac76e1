//! The live line of `wsbench run` on a terminal: how far the current trial is and what its load
//! generators measured in their last interval, rewritten in place once per second.
//!
//! Read from the `intervals.csv` files the load generators write as each interval completes, so
//! the orchestrator stays out of the measurement. Nothing is printed when stderr is not a
//! terminal (CI logs, pipes).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wsbench_core::result::IntervalRow;
use wsbench_core::units::{latency_us, thousands};

pub struct LiveLine {
    enabled: bool,
    shown: bool,
    started: Instant,
    planned: Duration,
    /// The longest the trials after this one can take.
    after: Duration,
    /// `intervals.csv` of every load-generator process of the trial.
    files: Vec<PathBuf>,
    last_second: u64,
}

impl LiveLine {
    pub fn new(planned: Duration, after: Duration, files: Vec<PathBuf>) -> Self {
        Self { enabled: std::io::stderr().is_terminal(), shown: false, started: Instant::now(), planned, after, files, last_second: 0 }
    }

    /// Rewrites the line when a new second has begun.
    pub fn tick(&mut self) {
        let second = self.started.elapsed().as_secs();
        if !self.enabled || second == self.last_second {
            return;
        }
        self.last_second = second;
        let mut line = format!("  {second} s of at most {} s", self.planned.as_secs());
        if let Some(now) = self.last_rows() {
            line.push_str(&now);
        }
        let left = (self.planned + self.after).saturating_sub(self.started.elapsed());
        line.push_str(&format!(" · run ends within {}", wsbench_core::units::format_duration(Duration::from_secs(left.as_secs()))));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.shown = true;
    }

    /// Removes the line before the trial's result is printed.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.shown = false;
        }
    }

    /// The last interval of every process together: summed rates, the worst p99.
    fn last_rows(&self) -> Option<String> {
        let rows: Vec<IntervalRow> = self
            .files
            .iter()
            .filter_map(|f| csv::Reader::from_path(f).ok()?.deserialize::<IntervalRow>().filter_map(Result::ok).last())
            .collect();
        if rows.is_empty() {
            return None;
        }
        let rate: f64 = rows.iter().map(|r| r.throughput).sum();
        let p99 = rows.iter().filter_map(|r| r.p99_us).reduce(f64::max);
        let outstanding: u64 = rows.iter().map(|r| r.outstanding).sum();
        let errors: u64 = rows.iter().map(|r| r.errors).sum();
        let p99 = p99.map_or_else(|| "— (no reply)".to_owned(), latency_us);
        let mut s = format!(" · measuring: {} msgs/s, p99 {p99}", thousands(rate));
        if outstanding > 0 {
            s.push_str(&format!(", {} unanswered", thousands(outstanding as f64)));
        }
        if errors > 0 {
            s.push_str(&format!(", {} errors", thousands(errors as f64)));
        }
        Some(s)
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        self.clear();
    }
}

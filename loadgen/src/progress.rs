//! The live progress line on stderr: elapsed time, messages per second and the last interval's
//! p99, rewritten in place once per second.
//!
//! Shown only when stderr is a terminal; when stderr is a pipe or a file (the orchestrator, CI)
//! nothing is printed, so logs stay clean. The line is cleared before the final report.

use std::io::{IsTerminal, Write};

pub use wsbench_core::units::thousands;
use wsbench_core::units::latency_us;

/// The progress line, or nothing.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    /// Enabled when stderr is a terminal.
    pub fn for_stderr() -> Self {
        Self { enabled: std::io::stderr().is_terminal(), shown: false }
    }

    /// Never prints.
    pub fn disabled() -> Self {
        Self { enabled: false, shown: false }
    }

    /// Rewrites the line after an interval.
    pub fn update(&mut self, elapsed_s: f64, msgs_per_s: f64, p99_us: Option<f64>) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        // `\r` and erase-line so a shorter line leaves no tail of the previous one.
        let _ = write!(err, "\r\x1b[2K{}", line(elapsed_s, msgs_per_s, p99_us));
        let _ = err.flush();
        self.shown = true;
    }

    /// Erases the line, if one was shown.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

/// The text of the line.
/// `p99_us` is `None` when no reply came back in the interval.
pub fn line(elapsed_s: f64, msgs_per_s: f64, p99_us: Option<f64>) -> String {
    let p99 = p99_us.map_or_else(|| "— (no reply)".to_owned(), latency_us);
    format!("{elapsed_s:>6.1} s  {:>10} msgs/s  p99 {p99}", thousands(msgs_per_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reads_well() {
        assert_eq!(line(3.0, 123456.4, Some(87.0)), "   3.0 s     123,456 msgs/s  p99 87 µs");
        assert_eq!(line(4.0, 0.0, None), "   4.0 s           0 msgs/s  p99 — (no reply)");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(0.0), "0");
    }

    #[test]
    fn disabled_progress_prints_nothing_and_clears_nothing() {
        let mut p = Progress::disabled();
        p.update(1.0, 2.0, Some(3.0));
        assert!(!p.shown);
        p.clear();
    }
}

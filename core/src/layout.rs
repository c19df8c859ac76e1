//! Where results live: one function or constant per path, so every process agrees on them.
//!
//! ```text
//! results/<scenario>/<run-id>/run.json                  the manifest: scenario, configs, order, host
//! results/<scenario>/<run-id>/<config>/trial-<n>/       one trial of one configuration:
//!     summary.json  latency.hlog  service_time.hlog  send_lag.hlog  intervals.csv   (load generator)
//!     server.json   server-latency.hlog                                           (server)
//!     processes.csv  server.log  loadgen-<i>/ (one per process when there are several)
//!     capacity.json  probe-NN/ (capacity search: one folder per probe; the probe at capacity
//!                    is copied into the trial folder)
//! results/<scenario>/<run-id>/report/                   plots (PNG, SVG) and report.md
//! <out>/shard-<i>/                                      shard i of a sharded load (`--shard i/n`)
//! ```

use std::path::{Path, PathBuf};

pub const RUN_MANIFEST: &str = "run.json";
pub const SUMMARY: &str = "summary.json";
pub const LATENCY_LOG: &str = "latency.hlog";
pub const SERVICE_TIME_LOG: &str = "service_time.hlog";
pub const SEND_LAG_LOG: &str = "send_lag.hlog";
pub const INTERVALS_CSV: &str = "intervals.csv";
/// Broadcast completion latency (until the last member had a message), an interval log.
pub const COMPLETION_LOG: &str = "completion.hlog";
/// Per-connection setup times (one interval covering the connect phase each).
pub const CONNECT_LOG: &str = "connect.hlog";
pub const TLS_LOG: &str = "tls.hlog";
pub const HANDSHAKE_LOG: &str = "handshake.hlog";
pub const FIRST_MESSAGE_LOG: &str = "first_message.hlog";
pub const SERVER_SUMMARY: &str = "server.json";
pub const SERVER_LATENCY_LOG: &str = "server-latency.hlog";
pub const PROCESSES_CSV: &str = "processes.csv";
pub const SERVER_LOG: &str = "server.log";
pub const REPORT_DIR: &str = "report";
pub const REPORT_MD: &str = "report.md";
/// Outcome of a capacity search, in its trial folder (probes in `probe-NN/` beside it).
pub const CAPACITY: &str = "capacity.json";

/// `results/<scenario>/<run-id>`.
pub fn run_dir(results: &Path, scenario: &str, run_id: &str) -> PathBuf {
    results.join(slug(scenario)).join(run_id)
}

/// `<run-dir>/<config>/trial-<n>` (trials count from 1).
pub fn trial_dir(run_dir: &Path, config: &str, trial: u32) -> PathBuf {
    run_dir.join(slug(config)).join(format!("trial-{trial}"))
}

/// `<trial-dir>/loadgen-<i>`: one load-generator process's files when a trial has several.
pub fn shard_dir(trial_dir: &Path, index: usize) -> PathBuf {
    trial_dir.join(format!("loadgen-{index}"))
}

/// `<out>/shard-<i>`: where shard `i` of a sharded load (`wsbench loadgen --shard i/n`) writes.
pub fn shard_results_dir(out: &Path, index: u32) -> PathBuf {
    out.join(format!("shard-{index}"))
}

/// Why a name given by a user (run id, scenario or configuration name) cannot be one folder
/// below the results folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeName {
    #[error("is empty")]
    Empty,
    #[error("is `.` or `..`, which names a folder outside its own")]
    Dots,
    #[error("contains `/` or `\\`: it must be one folder name, not a path (absolute or relative)")]
    Separator,
    #[error("contains a control character (NUL, newline, ...)")]
    Control,
}

/// Checks that `name` stays one folder below where it is joined: no path separators, not `.`
/// or `..`, not empty, no NUL or other control characters. Callers say which value it was.
pub fn check_name(name: &str) -> Result<(), UnsafeName> {
    if name.is_empty() {
        Err(UnsafeName::Empty)
    } else if name == "." || name == ".." {
        Err(UnsafeName::Dots)
    } else if name.contains(['/', '\\']) {
        Err(UnsafeName::Separator)
    } else if name.chars().any(char::is_control) {
        Err(UnsafeName::Control)
    } else {
        Ok(())
    }
}

/// A configuration or scenario name made safe as a folder name.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') { format!("_{s}") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let run = run_dir(Path::new("results"), "quick", "20261125-101500");
        assert_eq!(trial_dir(&run, "multi thread", 2), Path::new("results/quick/20261125-101500/multi_thread/trial-2"));
        assert_eq!(slug(".."), "_..");
    }

    #[test]
    fn names_that_would_leave_the_results_folder_are_refused() {
        for (bad, why) in [
            ("", UnsafeName::Empty),
            (".", UnsafeName::Dots),
            ("..", UnsafeName::Dots),
            ("x/../../../tmp/evil", UnsafeName::Separator),
            ("/tmp/evil", UnsafeName::Separator),
            ("..\\x", UnsafeName::Separator),
            ("a\0b", UnsafeName::Control),
            ("a\nb", UnsafeName::Control),
        ] {
            assert_eq!(check_name(bad), Err(why), "{bad:?}");
        }
        for good in ["20261125-101500", "a..b", "...", "multi thread", "in_flight=1,runtime=mt", "a@1000"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }
}

//! Statistics over trials: the median and the range of every figure the report's table shows,
//! and ([`bootstrap`]) the confidence interval of a ratio between two sets of trials.
//!
//! Trials of one configuration are repeated measurements of the same thing, so the report gives
//! their median (robust to one odd trial) with the min–max range beside it, as criterion puts an
//! interval next to every estimate. Pure functions only: no files, no formatting.

pub mod bootstrap;

use crate::load::{ConfigRun, Trial};
use wsbench_core::result::LoadgenSummary;

/// Median and extremes of one figure over several trials.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many values (trials) it summarises.
    pub n: usize,
}

impl Spread {
    /// The spread of the finite values among `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Self { median: bootstrap::median_of_sorted(&v), min: v[0], max: v[v.len() - 1], n: v.len() })
    }

    /// True when every value was the same (the range adds nothing).
    pub fn is_flat(&self) -> bool {
        self.min == self.max
    }
}

/// Arithmetic mean; `None` for no values.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The spread across series of their k-th values, for every k up to the longest series.
pub fn spread_by_index(series: &[Vec<f64>]) -> Vec<Spread> {
    let len = series.iter().map(Vec::len).max().unwrap_or(0);
    (0..len).filter_map(|k| Spread::of(series.iter().filter_map(|s| s.get(k).copied()))).collect()
}

/// A trial whose figures count: it wrote a summary (or, for a capacity search, its result) and
/// the orchestrator did not mark it failed. Failed trials are listed in the report but kept out
/// of medians and plots, since whatever made them fail (a dying server, a stuck load generator)
/// also bends their figures. A search in which no probe passed has a capacity (none) but no
/// summary: it counts for capacity and has nothing else to give.
pub fn usable(t: &Trial) -> bool {
    (t.summary.is_some() || t.capacity.is_some()) && t.failure.is_none()
}

/// Mean server CPU over a trial (% of one core): from `processes.csv`, or else the server's own
/// lifetime figure from `server.json`.
pub fn server_cpu_pct(t: &Trial) -> Option<f64> {
    mean(t.server_samples().map(|s| s.cpu_pct)).or_else(|| t.server.as_ref().map(|s| s.cpu_pct))
}

/// Server CPU time per message received, µs: `server.json`'s lifetime CPU over the messages it
/// received in that time (warm-up included in both, so an idle start and stop weigh a little).
pub fn server_cpu_us_per_message(t: &Trial) -> Option<f64> {
    let s = t.server.as_ref()?;
    (s.counts.messages_in > 0).then(|| s.cpu_pct / 100.0 * s.duration_s * 1e6 / s.counts.messages_in as f64)
}

/// Bytes on the wire over payload bytes, both directions together, of the compressed messages a
/// trial's load generators sent and received (`summary.json`'s `deflate`); `None` when no
/// message was compressed (deflate not offered, or declined).
pub fn compression_ratio(t: &Trial) -> Option<f64> {
    let d = t.summary.as_ref()?.setup.deflate.as_ref()?;
    let payload = d.payload_bytes_out + d.payload_bytes_in;
    (payload > 0).then(|| (d.wire_bytes_out + d.wire_bytes_in) as f64 / payload as f64)
}

/// Peak resident memory of the server over a trial, from `processes.csv`.
pub fn server_peak_rss(t: &Trial) -> Option<f64> {
    t.server_samples().map(|s| s.rss_bytes).max().map(|b| b as f64)
}

/// The figures of one configuration's table row, each over its usable trials.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfigStats {
    pub name: String,
    pub trials_used: usize,
    pub trials_total: usize,
    pub throughput: Option<Spread>,
    /// Latencies in µs.
    pub p50_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    pub p99_9_us: Option<Spread>,
    pub max_us: Option<Spread>,
    /// Errors, corrupted echoes, lost messages and unmatched replies together.
    pub errors: Option<Spread>,
    pub server_cpu_pct: Option<Spread>,
    pub server_peak_rss_bytes: Option<Spread>,
    /// Heap allocations per message in steady state: the server process, and the load
    /// generator's worker threads (its hot path). Absent when not counted.
    pub server_allocations_per_message: Option<Spread>,
    pub loadgen_worker_allocations_per_message: Option<Spread>,
    /// Connection setup per connection, µs, p50 and p99 of each trial: TCP connect, TLS
    /// handshake, WebSocket handshake, first message's round trip.
    pub setup_us: [SetupSpread; 4],
}

/// One setup step's p50 and p99 over trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SetupSpread {
    pub p50: Option<Spread>,
    pub p99: Option<Spread>,
}

/// The setup steps of [`ConfigStats::setup_us`], in order, with their names.
pub const SETUP_STEPS: [&str; 4] = ["TCP connect", "TLS handshake", "WebSocket handshake", "first message"];

impl ConfigStats {
    pub fn of(config: &ConfigRun) -> Self {
        let used: Vec<&Trial> = config.trials.iter().filter(|t| usable(t)).collect();
        let summaries = || used.iter().filter_map(|t| t.summary.as_ref());
        Self {
            name: config.name.clone(),
            trials_used: used.len(),
            trials_total: config.trials.len(),
            throughput: Spread::of(summaries().map(|s| s.throughput_msgs_per_s)),
            p50_us: Spread::of(summaries().map(|s| s.latency_us.p50)),
            p99_us: Spread::of(summaries().map(|s| s.latency_us.p99)),
            p99_9_us: Spread::of(summaries().map(|s| s.latency_us.p99_9)),
            max_us: Spread::of(summaries().map(|s| s.latency_us.max)),
            errors: Spread::of(summaries().map(|s| s.messages.faults() as f64)),
            server_cpu_pct: Spread::of(used.iter().filter_map(|t| server_cpu_pct(t))),
            server_peak_rss_bytes: Spread::of(used.iter().filter_map(|t| server_peak_rss(t))),
            server_allocations_per_message: Spread::of(used.iter().filter_map(|t| t.server.as_ref()?.allocations_per_message)),
            loadgen_worker_allocations_per_message: Spread::of(summaries().filter_map(|s| s.worker_allocations_per_message)),
            setup_us: [0, 1, 2, 3].map(|i| {
                let step = |s: &LoadgenSummary| {
                    let st = &s.setup;
                    [st.connect_us, st.tls_us, st.handshake_us, st.first_message_us][i]
                };
                SetupSpread {
                    p50: Spread::of(summaries().filter_map(|s| step(s).map(|l| l.p50))),
                    p99: Spread::of(summaries().filter_map(|s| step(s).map(|l| l.p99))),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(Spread::of([7.0]).unwrap().median, 7.0);
        assert!(Spread::of([7.0]).unwrap().is_flat());
    }

    #[test]
    fn empty_and_non_finite_values_are_skipped() {
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(Spread::of([f64::NAN, 5.0, f64::INFINITY]).unwrap().median, 5.0);
    }

    #[test]
    fn spread_by_index_handles_ragged_series() {
        let s = spread_by_index(&[vec![1.0, 10.0, 100.0], vec![3.0, 30.0]]);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].median, s[1].median, s[2].median), (2.0, 20.0, 100.0));
        assert_eq!(s[2].n, 1);
    }

    #[test]
    fn mean_of_nothing_is_none() {
        assert_eq!(mean([]), None);
        assert_eq!(mean([1.0, 2.0]), Some(1.5));
    }
}

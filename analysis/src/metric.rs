//! The metrics a comparison (and the trial export) knows: one row of [`METRICS`] each.
//!
//! A metric is a name users type (`--fail-if 'p99 > +10%'`), a unit to print it in, which
//! direction is better, and how to read one trial's value. Adding a metric is adding one row
//! here: `compare`, its exporters and the `--fail-if` parser take the list as it is. A metric
//! whose value no trial has (allocation counts from a build that did not count them) is simply
//! left out of a comparison, and so is `capacity` for runs that did not search for it.

use crate::format;
use crate::load::Trial;
use crate::stats;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    pub fn name(self) -> &'static str {
        match self {
            Self::Higher => "higher",
            Self::Lower => "lower",
        }
    }
}

/// What a metric's numbers are, for printing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Messages per second.
    Rate,
    /// Microseconds.
    Latency,
    /// A count of events.
    Count,
    /// Percent of one CPU core.
    CpuPercent,
    Bytes,
    /// Events per message (allocations).
    PerMessage,
    /// A plain ratio (compressed bytes per payload byte).
    Ratio,
}

impl Unit {
    /// The unit's name in machine-readable output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rate => "msgs/s",
            Self::Latency => "us",
            Self::Count => "count",
            Self::CpuPercent => "% of one core",
            Self::Bytes => "bytes",
            Self::PerMessage => "per message",
            Self::Ratio => "ratio",
        }
    }

    /// A value for people: `3998 msgs/s`, `48.2 µs`, `3`, `97.5 %`, `12.3 MiB`, `0.0125`.
    pub fn format(self, v: f64) -> String {
        match self {
            Self::Rate => format!("{} msgs/s", format::rate(v)),
            Self::Latency => format::latency_fixed(v),
            Self::Count if v.fract() == 0.0 => format!("{v:.0}"),
            Self::Count => format!("{v:.1}"),
            Self::CpuPercent => format::percent(v),
            Self::Bytes => format::bytes(v),
            Self::PerMessage => per_message(v),
            Self::Ratio => per_message(v),
        }
    }
}

/// Three significant digits however small: allocation counts per message live between 0.0001
/// (a few per second, none on the message path) and tens.
fn per_message(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

/// One metric: how it is named, printed, judged and read from a trial.
#[derive(Debug)]
pub struct Metric {
    /// The name in `--fail-if`, in JSON and CSV output: `p99`, `throughput`.
    pub key: &'static str,
    /// Other names `--fail-if` accepts.
    pub aliases: &'static [&'static str],
    /// The name in tables.
    pub label: &'static str,
    pub unit: Unit,
    pub better: Better,
    /// The value of one trial; `None` when that trial did not measure it.
    pub value: fn(&Trial) -> Option<f64>,
}

impl PartialEq for Metric {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

/// Every metric, in the order tables show them.
pub const METRICS: &[Metric] = &[
    // First because for a capacity search it is the answer; the figures below it are those of
    // each side's probe at capacity, measured at different rates. `capacity.json` only: a search
    // that found no passing rate gives 0.
    Metric { key: "capacity", aliases: &[], label: "capacity", unit: Unit::Rate, better: Better::Higher, value: |t| Some(t.capacity.as_ref()?.capacity_msgs_per_s) },
    Metric { key: "throughput", aliases: &[], label: "throughput", unit: Unit::Rate, better: Better::Higher, value: |t| Some(t.summary.as_ref()?.throughput_msgs_per_s) },
    Metric { key: "p50", aliases: &["median"], label: "p50 latency", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.latency_us.p50) },
    Metric { key: "p95", aliases: &[], label: "p95 latency", unit: Unit::Latency, better: Better::Lower, value: p95 },
    Metric { key: "p99", aliases: &[], label: "p99 latency", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.latency_us.p99) },
    Metric { key: "p99.9", aliases: &["p999", "p99_9"], label: "p99.9 latency", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.latency_us.p99_9) },
    Metric { key: "max", aliases: &["p100"], label: "max latency", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.latency_us.max) },
    Metric { key: "errors", aliases: &[], label: "errors", unit: Unit::Count, better: Better::Lower, value: |t| t.summary.as_ref().map(|s| s.messages.faults() as f64) },
    Metric { key: "cpu", aliases: &["server-cpu"], label: "server CPU", unit: Unit::CpuPercent, better: Better::Lower, value: stats::server_cpu_pct },
    Metric { key: "rss", aliases: &["server-rss", "memory"], label: "server peak RSS", unit: Unit::Bytes, better: Better::Lower, value: stats::server_peak_rss },
    Metric { key: "allocations", aliases: &["allocs", "server-allocations"], label: "server allocations/msg", unit: Unit::PerMessage, better: Better::Lower, value: |t| t.server.as_ref()?.allocations_per_message },
    Metric { key: "loadgen-allocations", aliases: &["loadgen-allocs"], label: "loadgen allocations/msg", unit: Unit::PerMessage, better: Better::Lower, value: |t| t.summary.as_ref()?.allocations_per_message },
    // Connection setup, the median over a trial's connections (summary.json's `*_us` blocks).
    Metric { key: "connect", aliases: &["tcp-connect"], label: "TCP connect p50", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.setup.connect_us?.p50) },
    Metric { key: "tls", aliases: &["tls-handshake"], label: "TLS handshake p50", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.setup.tls_us?.p50) },
    Metric { key: "handshake", aliases: &["ws-handshake"], label: "WebSocket handshake p50", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.setup.handshake_us?.p50) },
    Metric { key: "first-message", aliases: &["first"], label: "first message p50", unit: Unit::Latency, better: Better::Lower, value: |t| Some(t.summary.as_ref()?.setup.first_message_us?.p50) },
    // permessage-deflate: wire bytes over payload bytes, both ways (summary.json's `deflate`);
    // only trials whose messages were compressed have it.
    Metric { key: "compression", aliases: &["compression-ratio", "deflate-ratio"], label: "compression (wire/payload)", unit: Unit::Ratio, better: Better::Lower, value: stats::compression_ratio },
    Metric { key: "cpu-per-message", aliases: &["server-cpu-per-message"], label: "server CPU per message", unit: Unit::Latency, better: Better::Lower, value: stats::server_cpu_us_per_message },
    // A search over connections: its answer is a count; `capacity` is then the rate at it.
    Metric { key: "capacity_connections", aliases: &["connections_capacity"], label: "capacity (connections)", unit: Unit::Count, better: Better::Higher, value: |t| Some(f64::from(t.capacity.as_ref()?.capacity_connections?)) },
];

/// p95 from the summary, or from the latency log for results written before p95 was recorded.
fn p95(t: &Trial) -> Option<f64> {
    let s = t.summary.as_ref()?;
    s.latency_us.p95.or_else(|| {
        let h = wsbench_core::hist::total(&t.latency);
        (!h.is_empty()).then(|| h.value_at_quantile(0.95) as f64 / 1e3)
    })
}

/// The metric called `name` (its key or an alias, any case).
pub fn find(name: &str) -> Option<&'static Metric> {
    let name = name.trim().to_ascii_lowercase();
    METRICS.iter().find(|m| m.key == name || m.aliases.contains(&name.as_str()))
}

/// Every metric's key, for error messages: `capacity, throughput, p50, ...`.
pub fn keys() -> String {
    METRICS.iter().map(|m| m.key).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_found_by_key_and_alias() {
        assert_eq!(find("p99").unwrap().key, "p99");
        assert_eq!(find("P99.9").unwrap().key, "p99.9");
        assert_eq!(find("p999").unwrap().key, "p99.9");
        assert_eq!(find("server-cpu").unwrap().key, "cpu");
        assert!(find("p98").is_none());
        assert!(keys().starts_with("capacity, throughput, p50, p95, p99"));
    }

    #[test]
    fn keys_and_aliases_are_unique() {
        let mut names: Vec<&str> = METRICS.iter().flat_map(|m| std::iter::once(m.key).chain(m.aliases.iter().copied())).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn values_print_in_their_unit() {
        assert_eq!(Unit::Rate.format(3998.4), "3,998 msgs/s");
        assert_eq!(Unit::Latency.format(48.23), "48.2 µs");
        assert_eq!(Unit::Count.format(3.0), "3");
        assert_eq!(Unit::Count.format(2.5), "2.5");
        assert_eq!(Unit::PerMessage.format(0.0), "0");
        assert_eq!(Unit::PerMessage.format(0.012_345), "0.0123");
        assert_eq!(Unit::PerMessage.format(2.0), "2.00");
        assert_eq!(Unit::PerMessage.format(123.4), "123");
        assert_eq!(Unit::Ratio.format(0.027_007), "0.0270");
    }

    #[test]
    fn a_trial_without_files_has_no_values() {
        let t = Trial::default();
        assert!(METRICS.iter().all(|m| (m.value)(&t).is_none()));
    }
}

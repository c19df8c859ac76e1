//! `wsbench export RUN_DIR --csv FILE`: one row per configuration and trial with every metric.
//!
//! For pandas, R or a spreadsheet: `pd.read_csv(FILE)` and group by `config`. Every trial the
//! manifest lists gets a row, the failed and missing ones too (`usable` says whether the report
//! and `compare` count it); a value a trial does not have is an empty cell, never a zero.
//! Latencies are in microseconds, as in every result file. Columns are only ever appended, so
//! scripts that select columns by name keep working.

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;
use wsbench_core::hist::LatencySummary;

use super::Exporter;
use crate::error::AnalysisError;
use crate::load::{Run, Trial};
use crate::stats;

pub struct Csv;

/// One row; the field names are the CSV header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialRow {
    pub config: String,
    pub trial: u32,
    /// Counted in the report's medians and in `compare`: it has a summary and did not fail.
    pub usable: bool,
    /// The load generator's own flag: false when interrupted or the server went away.
    pub complete: Option<bool>,
    /// Why the orchestrator marked the trial failed; empty when it did not.
    pub failure: String,
    pub duration_s: Option<f64>,
    pub throughput_msgs_per_s: Option<f64>,
    /// Open loop only.
    pub asked_rate_msgs_per_s: Option<f64>,
    pub sent: Option<u64>,
    pub received: Option<u64>,
    pub errors: Option<u64>,
    pub corrupted: Option<u64>,
    pub lost: Option<u64>,
    pub latency_min_us: Option<f64>,
    pub latency_mean_us: Option<f64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p90_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub latency_p99_9_us: Option<f64>,
    pub latency_p99_99_us: Option<f64>,
    pub latency_max_us: Option<f64>,
    pub service_time_p50_us: Option<f64>,
    pub service_time_p99_us: Option<f64>,
    pub send_lag_p50_us: Option<f64>,
    pub send_lag_p99_us: Option<f64>,
    /// Mean over the trial, % of one core.
    pub server_cpu_pct: Option<f64>,
    pub server_peak_rss_bytes: Option<f64>,
    pub server_allocations_per_message: Option<f64>,
    pub server_worker_allocations_per_message: Option<f64>,
    pub loadgen_cpu_pct: Option<f64>,
    pub loadgen_allocations_per_message: Option<f64>,
    pub loadgen_worker_allocations_per_message: Option<f64>,
    /// Warnings the load generator raised about this trial.
    pub warnings: Option<usize>,
    /// Capacity search only (`capacity.json`): the objective, e.g. `p99 <= 5 ms`. The columns
    /// above are then those of the probe at capacity.
    pub capacity_slo: Option<String>,
    /// The highest probed rate that met the objective; 0 when none did.
    pub capacity_msgs_per_s: Option<f64>,
    pub capacity_connections: Option<u32>,
    /// The lowest probed rate that failed; empty when none did.
    pub capacity_first_failing_msgs_per_s: Option<f64>,
    pub capacity_converged: Option<bool>,
    pub capacity_probes: Option<usize>,
}

impl TrialRow {
    pub fn of(config: &str, t: &Trial) -> Self {
        let s = t.summary.as_ref();
        let c = t.capacity.as_ref();
        let lat = |f: fn(&LatencySummary) -> f64| s.map(|s| f(&s.latency_us));
        Self {
            config: config.to_owned(),
            trial: t.number,
            usable: stats::usable(t),
            complete: s.map(|s| s.complete),
            failure: t.failure.clone().unwrap_or_default(),
            duration_s: s.map(|s| s.duration_s),
            throughput_msgs_per_s: s.map(|s| s.throughput_msgs_per_s),
            asked_rate_msgs_per_s: s.and_then(|s| s.rate).map(|r| r.asked_msgs_per_s),
            sent: s.map(|s| s.messages.sent),
            received: s.map(|s| s.messages.received),
            errors: s.map(|s| s.messages.errors),
            corrupted: s.map(|s| s.messages.corrupted),
            lost: s.map(|s| s.messages.lost),
            latency_min_us: lat(|l| l.min),
            latency_mean_us: lat(|l| l.mean),
            latency_p50_us: lat(|l| l.p50),
            latency_p90_us: lat(|l| l.p90),
            latency_p99_us: lat(|l| l.p99),
            latency_p99_9_us: lat(|l| l.p99_9),
            latency_p99_99_us: lat(|l| l.p99_99),
            latency_max_us: lat(|l| l.max),
            service_time_p50_us: s.map(|s| s.service_time_us.p50),
            service_time_p99_us: s.map(|s| s.service_time_us.p99),
            send_lag_p50_us: s.map(|s| s.send_lag_us.p50),
            send_lag_p99_us: s.map(|s| s.send_lag_us.p99),
            server_cpu_pct: stats::server_cpu_pct(t),
            server_peak_rss_bytes: stats::server_peak_rss(t),
            server_allocations_per_message: t.server.as_ref().and_then(|s| s.allocations_per_message),
            server_worker_allocations_per_message: t.server.as_ref().and_then(|s| s.worker_allocations_per_message),
            loadgen_cpu_pct: s.map(|s| s.cpu.process_pct),
            loadgen_allocations_per_message: s.and_then(|s| s.allocations_per_message),
            loadgen_worker_allocations_per_message: s.and_then(|s| s.worker_allocations_per_message),
            warnings: s.map(|s| s.warnings.len()),
            capacity_slo: c.map(|c| c.slo.clone()),
            capacity_msgs_per_s: c.map(|c| c.capacity_msgs_per_s),
            capacity_connections: c.and_then(|c| c.capacity_connections),
            capacity_first_failing_msgs_per_s: c.and_then(|c| c.first_failing_msgs_per_s),
            capacity_converged: c.map(|c| c.converged),
            capacity_probes: c.map(|c| c.probes.len()),
        }
    }
}

/// Every trial of every configuration, in manifest order then trial order.
pub fn rows(run: &Run) -> Vec<TrialRow> {
    run.configs.iter().flat_map(|c| c.trials.iter().map(|t| TrialRow::of(&c.name, t))).collect()
}

/// Writes the rows of `run` to `path` (`-`: standard output) and returns how many there were.
pub fn write(run: &Run, path: &Path) -> Result<usize, AnalysisError> {
    let result = if path == Path::new("-") {
        Csv.export(run, &mut io::stdout().lock())
    } else {
        fs::File::create(path).and_then(|f| {
            let mut w = io::BufWriter::new(f);
            Csv.export(run, &mut w)?;
            io::Write::flush(&mut w)
        })
    };
    result.map_err(|e| AnalysisError::write(path, e))?;
    Ok(run.configs.iter().map(|c| c.trials.len()).sum())
}

impl Exporter<Run> for Csv {
    fn export(&self, run: &Run, out: &mut dyn io::Write) -> io::Result<()> {
        let mut w = ::csv::Writer::from_writer(out);
        for row in rows(run) {
            w.serialize(row).map_err(io::Error::other)?;
        }
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_that_never_ran_has_empty_cells_not_zeros() {
        let t = Trial { number: 2, failure: Some("the server died".into()), ..Default::default() };
        let row = TrialRow::of("a", &t);
        assert!(!row.usable);
        assert_eq!((row.throughput_msgs_per_s, row.errors, row.server_cpu_pct), (None, None, None));
        let mut w = ::csv::Writer::from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("config,trial,usable,complete,failure,duration_s,throughput_msgs_per_s,"));
        assert!(lines.next().unwrap().starts_with("a,2,false,,the server died,,,"), "{text}");
    }
}

//! What a finished server run reports, and its one output door: `server.json`.
//!
//! [`ServerReport`] is what [`crate::Server::run`] measured; [`ServerReport::summary`] adds the
//! plan, the command and the host to make the versioned `server.json`
//! ([`wsbench_core::result::ServerSummary`]). The latency interval log is written live by the
//! recorder, not here.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use wsbench_core::alloc::per_message;
use wsbench_core::clock::wall_clock_rfc3339;
use wsbench_core::hist::LatencySummary;
use wsbench_core::layout::SERVER_SUMMARY;
use wsbench_core::plan::ServerPlan;
use wsbench_core::result::{HostInfo, ServerFanout, ServerSummary};

use crate::gate::GateConfig;
use crate::limits::Limits;
use crate::metrics::Snapshot;
use crate::recorder::AllocationWindow;

/// What one server run measured.
#[derive(Debug, Clone)]
pub struct ServerReport {
    /// True when the server stopped because it was asked to (signal or shutdown future).
    pub complete: bool,
    /// When the server started serving (wall clock).
    pub started_at: SystemTime,
    /// From the start of serving to the end of shutdown.
    pub duration: Duration,
    pub metrics: Snapshot,
    /// Client send to server receive, in nanoseconds, warm-up excluded.
    pub one_way_latency_ns: Histogram<u64>,
    /// Process CPU time over `duration`, in % of one core.
    pub cpu_pct: f64,
    /// Allocations over the measured messages; `None` when none arrived.
    pub allocations: Option<AllocationWindow>,
    /// Why `server-latency.hlog` is incomplete, if it is.
    pub log_error: Option<String>,
    /// The limits the server enforced.
    pub limits: Limits,
    /// Broadcast and push: what the fan-out did.
    pub fanout: Option<ServerFanout>,
    /// Who was let in: origins, tokens, connection rate.
    pub gate: GateConfig,
    /// permessage-deflate: each parameter set negotiated, with its connections.
    pub deflate_agreements: Vec<(wsbench_core::codec::deflate::Agreement, u64)>,
}

impl ServerReport {
    /// The `server.json` contents for this run of `plan`, started by `command`.
    pub fn summary(&self, plan: &ServerPlan, command: Vec<String>) -> ServerSummary {
        ServerSummary {
            schema_version: wsbench_core::SCHEMA_VERSION,
            complete: self.complete,
            wsbench_version: wsbench_core::VERSION.to_owned(),
            config: plan.clone(),
            command,
            host: HostInfo::current(),
            started_at: wall_clock_rfc3339(self.started_at),
            duration_s: self.duration.as_secs_f64(),
            counts: self.metrics.counts(),
            pauses: self.metrics.pauses,
            one_way_latency_us: LatencySummary::from_histogram_ns(&self.one_way_latency_ns),
            cpu_pct: self.cpu_pct,
            allocations_per_message: self
                .allocations
                .and_then(|w| per_message(w.process, w.messages)),
            worker_allocations_per_message: self
                .allocations
                .and_then(|w| per_message(w.threads, w.messages)),
            fanout: self.fanout,
        }
    }
}

impl ServerReport {
    /// The whole `server.json`: [`ServerReport::summary`] plus what core's schema does not
    /// carry yet, as additive keys older readers ignore: `config.limits` (every limit in force)
    /// and `limits_reached` (how often each one ended a connection or refused a socket).
    pub fn server_json(&self, plan: &ServerPlan, command: Vec<String>) -> serde_json::Value {
        let summary = self.summary(plan, command);
        let mut v = serde_json::to_value(&summary).expect("a summary is plain data");
        let m = &self.metrics;
        v["config"]["limits"] = serde_json::to_value(self.limits).expect("limits are plain data");
        v["limits_reached"] = serde_json::json!({
            "refused_busy": m.refused_busy,
            "handshake_timeouts": m.handshake_timeouts,
            "tls_failures": m.tls_failures,
            "over_budget": m.over_budget,
            "read_timeouts": m.read_timeouts,
            "pong_timeouts": m.pong_timeouts,
            "slow_consumers": m.slow_consumers,
            "close_timeouts": m.close_timeouts,
            "refused_origin": m.refused_origin,
            "refused_token_missing": m.refused_token_missing,
            "refused_token_forged": m.refused_token_forged,
            "refused_token_expired": m.refused_token_expired,
            "refused_rate": m.refused_rate,
        });
        v["config"]["gate"] = serde_json::to_value(&self.gate).expect("the gate's settings are plain data");
        if plan.deflate.is_some() {
            v["deflate"] = self.deflate_json();
        }
        v
    }
}

impl ServerReport {
    /// `server.json`'s `deflate` block (with `--deflate`): negotiations, the parameter sets
    /// agreed, and compression's ratio (bytes on the wire / payload bytes) and cost.
    fn deflate_json(&self) -> serde_json::Value {
        let d = &self.metrics.deflate;
        let ratio = |wire: u64, payload: u64| (payload > 0).then(|| wire as f64 / payload as f64);
        let messages = d.messages_in + d.messages_out;
        serde_json::json!({
            "offered": d.offered,
            "negotiated": d.negotiated,
            "agreements": self.deflate_agreements.iter().map(|(a, n)| {
                let mut v = serde_json::to_value(a).expect("plain data");
                v["connections"] = (*n).into();
                v
            }).collect::<Vec<_>>(),
            "messages_in": d.messages_in,
            "wire_bytes_in": d.wire_in,
            "payload_bytes_in": d.payload_in,
            "ratio_in": ratio(d.wire_in, d.payload_in),
            "messages_out": d.messages_out,
            "payload_bytes_out": d.payload_out,
            "wire_bytes_out": d.wire_out,
            "ratio_out": ratio(d.wire_out, d.payload_out),
            "cpu_s": d.ns as f64 / 1e9,
            "ns_per_message": (messages > 0).then(|| d.ns as f64 / messages as f64),
        })
    }
}

/// Writes `summary` to `dir/server.json` (through a temporary file, so a reader never sees half
/// of it) and returns the path.
pub fn write_summary(dir: &Path, summary: &impl serde::Serialize) -> io::Result<PathBuf> {
    let path = dir.join(SERVER_SUMMARY);
    let tmp = dir.join(format!(".{SERVER_SUMMARY}.tmp"));
    let mut text = serde_json::to_vec_pretty(summary).map_err(io::Error::other)?;
    text.push(b'\n');
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::hist::{new_histogram, record_ns};

    #[test]
    fn summary_round_trips_through_server_json() {
        let mut h = new_histogram();
        for v in 1..=10u64 {
            record_ns(&mut h, v * 1_000);
        }
        let report = ServerReport {
            complete: true,
            started_at: SystemTime::now(),
            duration: Duration::from_millis(1500),
            metrics: Snapshot {
                messages_in: 10,
                messages_out: 10,
                pauses: 2,
                ..Snapshot::default()
            },
            one_way_latency_ns: h,
            cpu_pct: 12.5,
            allocations: Some(AllocationWindow {
                messages: 10,
                process: 3,
                threads: 0,
            }),
            log_error: None,
            limits: Limits::default(),
            deflate_agreements: Vec::new(),
            fanout: None,
            gate: GateConfig {
                allow_origins: vec!["https://a.example".into()],
                conn_rate_per_s: Some(100.0),
                conn_burst: Some(20),
                ..GateConfig::default()
            },
        };
        let plan = ServerPlan::default();
        let summary = report.summary(&plan, vec!["wsbench-server".into()]);
        assert_eq!(summary.schema_version, wsbench_core::SCHEMA_VERSION);
        assert_eq!(summary.one_way_latency_us.count, 10);
        assert_eq!((summary.counts.messages_in, summary.pauses), (10, 2));
        assert!((summary.duration_s - 1.5).abs() < 1e-9);
        // This test binary keeps the system allocator: no figure rather than a false 0.
        assert_eq!(summary.allocations_per_message, None);
        assert!(serde_json::to_string(&summary)
            .unwrap()
            .contains("\"allocations_per_message\":null"));

        let dir =
            std::env::temp_dir().join(format!("wsbench-server-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write_summary(&dir, &summary).unwrap();
        let back: ServerSummary = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, summary);

        // The full file keeps core's schema readable and adds the limits.
        let full = report.server_json(&plan, vec!["wsbench-server".into()]);
        let path = write_summary(&dir, &full).unwrap();
        let back: ServerSummary = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, summary);
        assert_eq!(full["config"]["limits"]["read_timeout"], "30s");
        assert_eq!(full["config"]["limits"]["max_write_buffer"], 1 << 20);
        assert_eq!(full["limits_reached"]["over_budget"], 0);
        assert_eq!(full["limits_reached"]["refused_rate"], 0);
        assert_eq!(full["config"]["gate"]["allow_origins"][0], "https://a.example");
        assert_eq!(full["config"]["gate"]["conn_burst"], 20);
        std::fs::remove_dir_all(&dir).ok();
    }
}

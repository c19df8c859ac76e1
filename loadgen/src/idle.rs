//! The idle warm-up probe (`--idle`): what the first message after a pause costs.
//!
//! WebSockets.jl observed that TCP is slow after a pause unless heartbeats keep it warm. Every
//! connection here is warmed by a few back-to-back round trips, stays idle for one of the idle
//! times (sending a ping every `--ping-interval` if asked), then sends one message and times
//! its echo; then the next idle time. Each idle time gets its own histogram, one sample per
//! connection. The connections run together on one current-thread runtime: the probe measures
//! a quiet connection, not a loaded one, and it allocates as it likes (it is not a hot path).

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::clock::{now_ns, wall_clock_rfc3339};
use wsbench_core::header::{fill_payload, MessageHeader, HEADER_LEN};
use wsbench_core::hist::{new_histogram, record_ns, LatencySummary};
use wsbench_core::plan::{LoadPlan, Mode};
use wsbench_core::result::{ConnectionCounts, CpuUse, HostInfo, IdlePoint, LoadgenSummary, MessageCounts};

use crate::connection::{self, WsStream};
use crate::transport::Target;

/// Round trips before every idle time, so the connection is warm when the pause begins.
pub const WARM_ROUND_TRIPS: u64 = 5;
/// Bound on any one echo; a probe not answered by then is counted lost.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// What one connection measured: per idle time, its probe's round trip in ns (`None`: lost).
type Probes = Vec<Option<u64>>;

/// Runs the probe on every connection of `plan` and returns the summary.
pub async fn run(plan: LoadPlan, target: &Target, command: Vec<String>) -> (LoadgenSummary, Vec<Histogram<u64>>, SystemTime) {
    let started_at = SystemTime::now();
    let t0 = now_ns();
    let tasks: Vec<_> = (0..plan.connections)
        .map(|i| {
            let (plan, target) = (plan.clone(), target.clone());
            tokio::task::spawn_local(async move { probe_connection(&plan, &target, i).await })
        })
        .collect();
    let mut hists: Vec<Histogram<u64>> = plan.idle.iter().map(|_| new_histogram()).collect();
    let mut lost = vec![0u64; plan.idle.len()];
    let mut all = new_histogram();
    let mut counts = ConnectionCounts { target: plan.connections, ..Default::default() };
    let mut messages = MessageCounts::default();
    let mut reason = None;
    for t in tasks {
        match t.await {
            Ok(Ok(probes)) => {
                counts.established += 1;
                for (k, p) in probes.iter().enumerate() {
                    messages.sent += 1;
                    match p {
                        Some(ns) => {
                            messages.received += 1;
                            record_ns(&mut hists[k], *ns);
                            record_ns(&mut all, *ns);
                        }
                        None => {
                            messages.lost += 1;
                            lost[k] += 1;
                        }
                    }
                }
                // Idle times never reached (the connection ended early) are lost too.
                let missing = plan.idle.len() - probes.len();
                messages.sent += missing as u64;
                messages.lost += missing as u64;
                for l in lost.iter_mut().skip(probes.len()) {
                    *l += 1;
                }
            }
            Ok(Err((cause, opened))) => {
                if opened {
                    counts.established += 1;
                    messages.errors += 1;
                } else {
                    counts.failed += 1;
                    *counts.failures.entry(cause.clone()).or_default() += 1;
                }
                messages.sent += plan.idle.len() as u64;
                messages.lost += plan.idle.len() as u64;
                for l in &mut lost {
                    *l += 1;
                }
                reason.get_or_insert(format!("a connection ended: {cause}"));
            }
            Err(e) => {
                reason.get_or_insert(format!("a connection task failed: {e}"));
            }
        }
    }
    if counts.established == 0 {
        reason.get_or_insert(format!("no connection to {} could be opened", plan.url));
    } else if messages.lost > 0 || messages.errors > 0 {
        // Counted and failed below; the probe itself ran to its end.
        reason = None;
    }
    let duration_s = now_ns().saturating_sub(t0) as f64 / 1e9;
    let idle = plan
        .idle
        .iter()
        .zip(&hists)
        .zip(&lost)
        .map(|((d, h), l)| IdlePoint { idle_s: d.as_secs_f64(), latency_us: LatencySummary::from_histogram_ns(h), lost: *l })
        .collect();
    let mut s = LoadgenSummary {
        schema_version: wsbench_core::SCHEMA_VERSION,
        complete: reason.is_none(),
        reason,
        wsbench_version: wsbench_core::VERSION.to_owned(),
        rate: None,
        config: plan,
        command,
        host: HostInfo::current(),
        started_at: wall_clock_rfc3339(started_at),
        duration_s,
        throughput_msgs_per_s: 0.0,
        messages,
        connections: counts,
        latency_us: LatencySummary::from_histogram_ns(&all),
        service_time_us: LatencySummary::from_histogram_ns(&all),
        send_lag_us: LatencySummary::from_histogram_ns(&new_histogram()),
        cpu: CpuUse::default(),
        allocations_per_message: None,
        worker_allocations_per_message: None,
        unanswered_min_age_us: None,
        failed_checks: Vec::new(),
        warnings: Vec::new(),
        shard: None,
        start: None,
        setup: Default::default(),
        fanout: None,
        idle,
        rx_timestamps: None,
    };
    s.failed_checks = crate::selfcheck::failed_checks(&s);
    s.warnings = crate::selfcheck::warnings(&s).into_iter().filter(|w| w.kind != wsbench_core::warning::WarningKind::TooFewSamples).collect();
    (s, hists, started_at)
}

/// Writes `latency.hlog` and `intervals.csv` of an idle probe: one interval per idle time, in
/// the order they ran, each as long as its idle time, so the usual tools read the run.
pub fn write_files(dir: &std::path::Path, summary: &LoadgenSummary, hists: &[Histogram<u64>], start: SystemTime) -> Result<(), String> {
    use wsbench_core::layout::{INTERVALS_CSV, LATENCY_LOG};
    let mut at = Duration::ZERO;
    let mut intervals = Vec::new();
    let mut csv = csv::Writer::from_path(dir.join(INTERVALS_CSV)).map_err(|e| format!("cannot write {INTERVALS_CSV}: {e}"))?;
    for (p, h) in summary.idle.iter().zip(hists) {
        let d = Duration::from_secs_f64(p.idle_s);
        intervals.push(wsbench_core::hist::LogInterval { start: at, duration: d, tag: None, histogram: h.clone() });
        at += d;
        let l = &p.latency_us;
        let row = wsbench_core::result::IntervalRow {
            elapsed_s: at.as_secs_f64(),
            sent: h.len() + p.lost,
            received: h.len(),
            p50_us: Some(l.p50),
            p90_us: Some(l.p90),
            p99_us: Some(l.p99),
            p99_9_us: Some(l.p99_9),
            max_us: Some(l.max),
            ..Default::default()
        };
        csv.serialize(row).map_err(|e| format!("cannot write {INTERVALS_CSV}: {e}"))?;
    }
    csv.flush().map_err(|e| format!("cannot write {INTERVALS_CSV}: {e}"))?;
    wsbench_core::hist::write_interval_log(&dir.join(LATENCY_LOG), start, "wsbench loadgen: first message after each idle time", &intervals)
        .map_err(|e| format!("cannot write {LATENCY_LOG}: {e}"))
}

/// One connection's probes; `Err((cause, opened))` when it could not be opened or ended.
async fn probe_connection(plan: &LoadPlan, target: &Target, index: u32) -> Result<Probes, (String, bool)> {
    let (mut ws, _) = match tokio::time::timeout(crate::fleet::CONNECT_TIMEOUT, connection::connect(target, plan.size, false)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err((e.cause, false)),
        Err(_) => return Err(("timeout".into(), false)),
    };
    let mut seq = u64::from(index) << 32;
    let mut probes = Vec::with_capacity(plan.idle.len());
    for &idle in &plan.idle {
        for _ in 0..WARM_ROUND_TRIPS {
            round_trip(&mut ws, plan, &mut seq).await.map_err(|e| (e, true))?;
        }
        rest(&mut ws, idle, plan.ping_interval).await.map_err(|e| (e, true))?;
        match round_trip(&mut ws, plan, &mut seq).await {
            Ok(ns) => probes.push(Some(ns)),
            Err(e) if e == "timeout" => probes.push(None),
            Err(e) => return Err((e, true)),
        }
    }
    let _ = tokio::time::timeout(connection::CLOSE_TIMEOUT, ws.close(None)).await;
    Ok(probes)
}

/// Stays idle for `idle`, pinging every `ping` if given (pongs are read with the next echo).
async fn rest(ws: &mut WsStream, idle: Duration, ping: Option<Duration>) -> Result<(), String> {
    let end = tokio::time::Instant::now() + idle;
    let Some(every) = ping else {
        tokio::time::sleep_until(end).await;
        return Ok(());
    };
    loop {
        let next = tokio::time::Instant::now() + every;
        if next >= end {
            tokio::time::sleep_until(end).await;
            return Ok(());
        }
        tokio::time::sleep_until(next).await;
        ws.send(Message::Ping(bytes::Bytes::from_static(b"wsbench"))).await.map_err(|e| connection::describe_error(&e))?;
    }
}

/// Sends one message and waits for its echo; its round trip in ns, or `Err("timeout")`.
async fn round_trip(ws: &mut WsStream, plan: &LoadPlan, seq: &mut u64) -> Result<u64, String> {
    let mut buf = vec![0u8; plan.size as usize];
    fill_payload(&mut buf, *seq);
    let sent = now_ns();
    let header = MessageHeader { seq: *seq, intended_ns: sent, sent_ns: sent, warmup: false };
    header.encode(&mut buf[..HEADER_LEN]);
    *seq += 1;
    let msg = match plan.mode {
        Mode::Binary => Message::Binary(buf.into()),
        Mode::Text => Message::Text(String::from_utf8(buf).map_err(|e| e.to_string())?.into()),
    };
    ws.send(msg).await.map_err(|e| connection::describe_error(&e))?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if MessageHeader::decode(&b) == Some(header) => return Ok(now_ns() - sent),
                Some(Ok(Message::Text(t))) if MessageHeader::decode(t.as_bytes()) == Some(header) => return Ok(now_ns() - sent),
                Some(Ok(Message::Close(f))) => return Err(connection::describe_close(f.as_ref())),
                // Pongs, and echoes of nothing we wait for.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(connection::describe_error(&e)),
                None => return Err("connection closed".into()),
            }
        }
    };
    tokio::time::timeout(ECHO_TIMEOUT, wait).await.unwrap_or_else(|_| Err("timeout".into()))
}

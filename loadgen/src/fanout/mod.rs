//! The one-way workloads' load generator: broadcast publishers and subscribers, push
//! receivers, sink senders.
//!
//! Every connection receives; in broadcast the first `--publishers` connections also publish,
//! on an open-loop schedule (`--rate` over all publishers), with message numbers that name the
//! publisher (`seq = publisher << 32 | n`). Connection `i` joins room `i % --rooms` through
//! the path `/room/<r>`, so this process knows every room's members. Each receipt is one
//! delivery, recorded from the intended send time in the header (one-way: the same monotonic
//! clock on one host; coordinated-omission corrected); completion (the last member's receipt)
//! goes through [`completion::CompletionTable`]. Deliveries that never happen are counted per
//! receiver and named by cause: the receiver never connected, it was disconnected (and why), or
//! it had not received them by the end of the drain.
//!
//! Push: the server sends on its own schedule (`--push-rate` per connection), and a receiver
//! infers the schedule's start from any message (`intended - seq / rate`), so it knows which
//! sequence numbers fall in the measured window and counts the ones it missed as gaps.
//! Sink: every connection sends and nothing comes back; latency is the server's (server.json).
//!
//! Connections open through the transport seam the echo engines use ([`connection::connect`]
//! over [`crate::transport::Target`]), so `wss://`, extra headers, subprotocols and tokens work
//! here as there, and connect, TLS and handshake times land in the same setup histograms.
//! This path runs on tokio-tungstenite clients, on a multi-thread runtime of `--threads`
//! workers, and is not the zero-allocation hot path of the echo engines.

pub mod completion;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wsbench_core::clock::{monotonic_at, now_ns, paired_now, parse_rfc3339, process_cpu_ns, wall_clock_rfc3339};
use wsbench_core::header::{fill_payload, MessageHeader};
use wsbench_core::hist::{new_histogram, record_ns, LatencySummary, LogInterval};
use wsbench_core::layout::{self, LATENCY_LOG, SEND_LAG_LOG, SERVICE_TIME_LOG};
use wsbench_core::plan::{LoadPlan, Mode, Shard, Workload};
use wsbench_core::result::{ConnectionCounts, ConnectionSetup, CpuUse, FanoutReport, HostInfo, LoadgenSummary, MessageCounts, RateReport, ShardReport, StartReport};

use crate::connection::{self, WsStream};
use crate::schedule::duration_ns;
use crate::setup::SetupTimes;
use crate::RunError;
use completion::{CompletionTable, Receipt};

/// Between the end of connecting and the first send, so every task is waiting when it starts.
const START_DELAY: Duration = Duration::from_millis(50);
/// How long an interrupted run waits for deliveries already on their way.
const INTERRUPT_DRAIN: Duration = Duration::from_millis(500);
/// Completion-table slots per publisher: messages of at most this many seconds are tracked.
const TRACKED_S: f64 = 4.0;
/// Bound on opening one connection (TCP, TLS and the WebSocket handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub use wsbench_core::layout::COMPLETION_LOG;

/// The run's times, monotonic ns.
#[derive(Debug, Clone, Copy)]
struct Times {
    start: u64,
    window: u64,
    window_end: u64,
    drain_end: u64,
    interval_ns: u64,
}

impl Times {
    fn interval_of(&self, t: u64) -> usize {
        (t.saturating_sub(self.window) / self.interval_ns) as usize
    }
}

/// Histograms per interval, shared by the tasks through a few locks.
struct Recorder {
    shards: Vec<Mutex<Vec<Histogram<u64>>>>,
}

impl Recorder {
    fn new(shards: usize) -> Self {
        Self { shards: (0..shards.max(1)).map(|_| Mutex::new(Vec::new())).collect() }
    }

    fn record(&self, who: usize, interval: usize, ns: u64) {
        let mut h = self.shards[who % self.shards.len()].lock().unwrap_or_else(|e| e.into_inner());
        while h.len() <= interval {
            h.push(new_histogram());
        }
        record_ns(&mut h[interval], ns);
    }

    /// Per-interval histograms, merged over the shards.
    fn intervals(&self) -> Vec<Histogram<u64>> {
        let mut out: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (i, h) in shard.iter().enumerate() {
                while out.len() <= i {
                    out.push(new_histogram());
                }
                out[i].add(h).expect("histograms of one range add");
            }
        }
        out
    }
}

fn total(intervals: &[Histogram<u64>]) -> Histogram<u64> {
    let mut t = new_histogram();
    for h in intervals {
        t.add(h).expect("histograms of one range add");
    }
    t
}

/// What one receiving connection saw.
#[derive(Debug, Default, Clone)]
struct Receiver {
    connected: bool,
    /// Why its connection ended before the drain did, if it did.
    ended: Option<String>,
    delivered: u64,
    /// Push: sequence numbers in the window it should have received (from the schedule).
    expected_push: u64,
    /// The first message it received, warm-up included: its one-way latency, ns (the fan-out
    /// counterpart of an echo connection's first round trip).
    first_ns: Option<u64>,
}

/// Everything the tasks share.
struct Shared {
    /// The whole load's plan (a shard's connections are numbered in it).
    plan: LoadPlan,
    shard: Option<Shard>,
    /// This process's members of each room.
    local_room_size: Vec<u32>,
    /// Between one publisher's messages; every publisher keeps the same schedule.
    period_ns: f64,
    times: Times,
    latency: Recorder,
    service: Recorder,
    send_lag: Recorder,
    completion: Recorder,
    /// One per publisher (broadcast).
    tables: Vec<CompletionTable>,
    /// Measured messages each publisher sent.
    published: Vec<AtomicU64>,
    completed: AtomicU64,
    incomplete: AtomicU64,
    untracked: AtomicU64,
    errors: AtomicU64,
    sent_total: AtomicU64,
    late: AtomicU64,
}

impl Shared {
    fn rooms(&self) -> usize {
        self.plan.fanout.rooms.max(1) as usize
    }

    fn room_size(&self, room: usize) -> u32 {
        let n = self.plan.connections as usize;
        let r = self.rooms();
        (n / r + usize::from(room < n % r)) as u32
    }

    /// Receivers in this process a broadcast from publisher `p` (the whole load's connection
    /// `p`) is expected to reach.
    fn receivers_of(&self, p: usize) -> u32 {
        let size = self.local_room_size[p % self.rooms()];
        size - u32::from(!self.plan.fanout.echo_to_sender && self.is_local(p) && size > 0)
    }

    /// Receivers in the whole load a broadcast from publisher `p` is expected to reach.
    fn room_receivers_of(&self, p: usize) -> u32 {
        let size = self.room_size(p % self.rooms());
        size - u32::from(!self.plan.fanout.echo_to_sender && size > 0)
    }

    fn is_local(&self, global: usize) -> bool {
        self.shard.is_none_or(|s| s.owns(global as u64))
    }

    /// When every publisher intends its message `k`: the schedule the publishers follow, so a
    /// receiver in another shard (another host) measures from it on its own clock.
    fn intended(&self, k: u64) -> u64 {
        self.times.start + (k as f64 * self.period_ns) as u64
    }

    /// The first message number intended at or after `t`.
    fn first_from(&self, t: u64) -> u64 {
        let mut k = ((t.saturating_sub(self.times.start)) as f64 / self.period_ns) as u64;
        k = k.saturating_sub(2);
        while self.intended(k) < t {
            k += 1;
        }
        k
    }

    /// Messages each publisher's schedule puts in the measured window.
    fn scheduled(&self) -> u64 {
        self.first_from(self.times.window_end) - self.first_from(self.times.window)
    }
}

/// The URL connection `i` opens.
fn url_of(plan: &LoadPlan, i: usize) -> String {
    if plan.workload != Workload::Broadcast {
        return plan.url.clone();
    }
    let room = i % plan.fanout.rooms.max(1) as usize;
    let (base, query) = plan.url.split_once('?').map_or((plan.url.as_str(), None), |(b, q)| (b, Some(q)));
    let sep = if base.ends_with('/') { "" } else { "/" };
    let q = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{base}{sep}room/{room}{q}")
}

/// A connection failure's cause, as the echo engines name them.
fn failure_cause(e: &WsError) -> String {
    match e {
        WsError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused".into(),
            std::io::ErrorKind::ConnectionReset => "reset".into(),
            std::io::ErrorKind::TimedOut => "timeout".into(),
            k => format!("{k:?}").to_lowercase(),
        },
        WsError::Http(r) => format!("HTTP status {}", r.status().as_u16()),
        other => format!("handshake error: {other}"),
    }
}

type Ws = WsStream;

/// Checks what the one-way workloads need of a plan.
pub fn validate(plan: &LoadPlan) -> Result<(), String> {
    let f = &plan.fanout;
    if plan.workload.is_fanout() && plan.engine != wsbench_core::plan::Engine::Tungstenite {
        return Err(format!("--workload {} runs on the tungstenite client; --engine {} is not available for it yet", plan.workload.name(), plan.engine.name()));
    }
    // Every plan's pacing, echo or not (this check runs for every plan).
    if let Some(why) = wsbench_core::plan::pacing_conflict(plan.spin, plan.coalesce, plan.workload) {
        return Err(format!("--spin and --coalesce {why}"));
    }
    // A member in one shard receives what a publisher in another sends, on one schedule.
    if plan.workload == Workload::Broadcast && plan.shard.is_some() && plan.start_at.is_none() {
        return Err("--workload broadcast split into shards needs --start-at: the members of a room in one shard receive what its publishers in another send, and both must keep one schedule".into());
    }
    match plan.workload {
        Workload::Echo => {}
        Workload::Broadcast | Workload::Sink => {
            if plan.rate.is_none() {
                return Err(format!("--workload {} is open loop: give --rate (messages per second over all publishers)", plan.workload.name()));
            }
        }
        Workload::Push => {
            if !(f.push_rate.is_finite() && f.push_rate > 0.0) {
                return Err(format!("--push-rate is {}; give the server's --push-rate (messages per second per connection)", f.push_rate));
            }
        }
    }
    if plan.workload == Workload::Broadcast {
        if f.rooms == 0 || f.rooms > plan.connections {
            return Err(format!("--rooms is {}; it must be between 1 and --connections ({})", f.rooms, plan.connections));
        }
        if f.publishers == 0 || f.publishers > plan.connections {
            return Err(format!("--publishers is {}; it must be between 1 and --connections ({})", f.publishers, plan.connections));
        }
        // Completion is tracked per process: a shard holds its part of each room.
        let largest = plan.connections.div_ceil(f.rooms).div_ceil(plan.shard.map_or(1, |s| s.count));
        if largest > completion::MAX_RECEIVERS {
            return Err(format!("rooms of {largest} members in one process are more than the {} it tracks; use more --rooms or --shard", completion::MAX_RECEIVERS));
        }
    }
    Ok(())
}

/// Runs a one-way plan and returns its summary (files are written when the plan has `out`).
pub async fn run(plan: LoadPlan, command: Vec<String>, shutdown: impl std::future::Future<Output = String>) -> Result<LoadgenSummary, RunError> {
    validate(&plan).map_err(RunError::Usage)?;
    let target = crate::args::target(&plan).map_err(RunError::Usage)?;
    let start_at = plan.start_at.as_deref().map(parse_rfc3339).transpose().map_err(RunError::Usage)?;
    crate::warn_if_insecure(&plan);
    // A shard opens its part of the whole load's connections (`i, i + count, ...`), numbered
    // as in the whole load: rooms, publishers and message numbers are the whole load's.
    let whole = plan;
    let shard = whole.shard;
    let shard_report = shard.map(|s| ShardReport { index: s.index, count: s.count, total_connections: whole.connections, total_rate: whole.rate });
    let part = {
        let mut part = whole.shard_part();
        if let (Some(s), Some(out)) = (shard, &whole.out) {
            part.out = Some(layout::shard_results_dir(out, s.index));
        }
        part
    };
    if let Some(dir) = &part.out {
        std::fs::create_dir_all(dir).map_err(|e| RunError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let global = |local: usize| shard.map_or(local as u64, |s| s.global_index(local as u32)) as usize;
    let n = part.connections as usize;
    let publishers = match whole.workload {
        Workload::Broadcast => whole.fanout.publishers as usize,
        Workload::Sink => whole.connections as usize,
        _ => 0,
    };
    let per_pub_rate = whole.rate.map(|r| r / publishers.max(1) as f64).unwrap_or(0.0);
    let window = (per_pub_rate * (TRACKED_S + whole.drain_timeout.as_secs_f64())).ceil() as usize;
    let tables = if whole.workload == Workload::Broadcast {
        (0..publishers).map(|_| CompletionTable::new(window.clamp(1024, 1 << 20))).collect()
    } else {
        Vec::new()
    };
    let rooms = whole.fanout.rooms.max(1) as usize;
    let mut local_room_size = vec![0u32; rooms];
    for l in 0..n {
        local_room_size[global(l) % rooms] += 1;
    }

    let mut shutdown = std::pin::pin!(shutdown);
    if let Some(at) = start_at {
        // Connect shortly before the shared start, as echo shards do.
        let lead = Duration::from_secs_f64(n as f64 / part.connect_rate) + crate::START_LEAD;
        let (now, now_wall) = paired_now();
        let begin = monotonic_at(at, now, now_wall).saturating_sub(duration_ns(lead));
        tokio::select! {
            signal = shutdown.as_mut() => return Err(RunError::Failed(format!("interrupted by {signal} while waiting for --start-at {}", wall_clock_rfc3339(at)))),
            () = sleep_until(instant_at(begin)) => {}
        }
    }

    // Connect, paced by --connect-rate, each through the seam the echo engines use.
    let connect_gap = Duration::from_secs_f64(1.0 / part.connect_rate);
    let mut connecting = tokio::task::JoinSet::new();
    let begin = Instant::now();
    let (connect_start_ns, connect_started_at) = (now_ns(), SystemTime::now());
    for i in 0..n {
        let target = target.at_url(url_of(&whole, global(i)));
        let size = whole.size;
        connecting.spawn(async move {
            sleep_until(begin + connect_gap * i as u32).await;
            // Open loop: every frame is written as it is handed over.
            let r = match tokio::time::timeout(CONNECT_TIMEOUT, connection::connect(&target, size, true)).await {
                Ok(Ok(opened)) => Ok(opened),
                Ok(Err(e)) => Err(e.cause),
                Err(_) => Err("timeout".to_owned()),
            };
            (i, r)
        });
    }
    let mut sockets: Vec<Option<Ws>> = (0..n).map(|_| None).collect();
    let mut connections = ConnectionCounts { target: part.connections, ..Default::default() };
    let mut setup = SetupTimes::default();
    loop {
        tokio::select! {
            done = connecting.join_next() => match done {
                Some(Ok((i, Ok((ws, times))))) => {
                    setup.record(&times);
                    sockets[i] = Some(ws);
                    connections.established += 1;
                }
                Some(Ok((_, Err(cause)))) => {
                    connections.failed += 1;
                    *connections.failures.entry(cause).or_default() += 1;
                }
                Some(Err(e)) => return Err(RunError::Failed(format!("a connect task failed: {e}"))),
                None => break,
            },
            signal = shutdown.as_mut() => return Err(RunError::Failed(format!("{signal} while connecting"))),
        }
    }
    // The setup logs are written once every connection's first message is in (after the run),
    // each one interval covering the connect phase.
    let connect_span = Duration::from_nanos(now_ns().saturating_sub(connect_start_ns));
    if connections.established == 0 {
        if let Some(dir) = &part.out {
            setup.write_logs(dir, connect_started_at, connect_span).map_err(RunError::Failed)?;
        }
        return Err(RunError::Failed(format!("no connection opened to {}: {:?}", whole.url, connections.failures)));
    }

    let earliest = now_ns() + START_DELAY.as_nanos() as u64;
    // With a shared start every shard keeps the one schedule, late or not; a late shard says so.
    let (start, start_report) = match (start_at, &whole.start_at) {
        (Some(at), Some(text)) => {
            let (now, now_wall) = paired_now();
            let at_ns = monotonic_at(at, now, now_wall);
            let late_by = earliest.saturating_sub(at_ns);
            let late = late_by > duration_ns(whole.interval);
            if late {
                eprintln!("loadgen: began {:.3} s after --start-at {text}, more than one interval late; the summary marks this run late", late_by as f64 / 1e9);
            }
            (at_ns, Some(StartReport { at: text.clone(), late_by_s: late_by as f64 / 1e9, late }))
        }
        _ => (earliest, None),
    };
    let window_start = start + whole.warmup.as_nanos() as u64;
    let times = Times {
        start,
        window: window_start,
        window_end: window_start + whole.duration.as_nanos() as u64,
        drain_end: window_start + (whole.duration + whole.drain_timeout).as_nanos() as u64,
        interval_ns: whole.interval.as_nanos() as u64,
    };
    let shards = whole.threads * 4;
    let shared = Arc::new(Shared {
        shard,
        local_room_size,
        period_ns: if per_pub_rate > 0.0 { 1e9 / per_pub_rate } else { 0.0 },
        times,
        latency: Recorder::new(shards),
        service: Recorder::new(shards),
        send_lag: Recorder::new(shards),
        completion: Recorder::new(shards),
        published: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
        tables,
        completed: AtomicU64::new(0),
        incomplete: AtomicU64::new(0),
        untracked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        sent_total: AtomicU64::new(0),
        late: AtomicU64::new(0),
        plan: whole.clone(),
    });
    let started_at = SystemTime::now();
    let cpu_start = process_cpu_ns();
    // So late that the window is over: publishing the whole schedule at once would only flood
    // the server; nothing is sent and the run fails.
    let mut reason = start_report.as_ref().filter(|st| st.late && times.window_end <= earliest).map(|st| {
        format!("began {:.3} s after --start-at {}, when its measured window had already ended; nothing was sent", st.late_by_s, st.at)
    });
    let (stop_tx, stop_rx) = watch::channel(reason.is_some());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let Some(ws) = ws else { continue };
        let (sink, stream) = ws.split();
        let g = global(i);
        let is_publisher = g < publishers;
        let shared_r = Arc::clone(&shared);
        let stop = stop_rx.clone();
        let receive = whole.workload != Workload::Sink;
        tasks.spawn(async move {
            let publish = async {
                if is_publisher {
                    publish(&shared_r, g, sink, per_pub_rate, stop.clone()).await
                } else {
                    Some(sink)
                }
            };
            let recv = async {
                if receive {
                    Some(receive_all(&shared_r, i, stream, stop.clone()).await)
                } else {
                    None
                }
            };
            let (sink, rec) = tokio::join!(publish, recv);
            let mut rec = rec.unwrap_or_else(|| Receiver { connected: true, ..Default::default() });
            // Say goodbye; the server's answer is not waited for beyond a moment.
            if let Some(mut sink) = sink {
                let bye = CloseFrame { code: 1000.into(), reason: "done".into() };
                let _ = tokio::time::timeout(Duration::from_millis(200), sink.send(Message::Close(Some(bye)))).await;
            } else if rec.ended.is_none() && is_publisher {
                rec.ended = Some("sending failed".into());
            }
            (i, rec)
        });
    }
    // Publishers in other shards arm their broadcasts' slots here, so this shard's members
    // complete them (until the last member of this shard had it).
    let remote: Vec<usize> = (0..shared.tables.len()).filter(|&p| !shared.is_local(p) && shared.receivers_of(p) > 0).collect();
    let armer = (!remote.is_empty()).then(|| tokio::spawn(arm_remote(Arc::clone(&shared), remote, stop_rx.clone())));

    // The run's end: the drain's end, or a signal (then a short drain).
    let drain_end = instant_at(times.drain_end);
    let mut receivers: Vec<Receiver> = vec![Receiver::default(); n];
    let mut finished = 0;
    let total_tasks = tasks.len();
    let mut cut_ns = times.drain_end;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok((i, r))) => { receivers[i] = r; finished += 1; }
                Some(Err(e)) => return Err(RunError::Failed(format!("a connection task failed: {e}"))),
                None => break,
            },
            () = sleep_until(drain_end + Duration::from_millis(500)), if finished < total_tasks => {
                let _ = stop_tx.send(true);
            }
            signal = shutdown.as_mut(), if reason.is_none() => {
                reason = Some(format!("interrupted by {signal}"));
                cut_ns = now_ns() + INTERRUPT_DRAIN.as_nanos() as u64;
                let _ = stop_tx.send(true);
            }
        }
    }
    let _ = stop_tx.send(true);
    if let Some(armer) = armer {
        let _ = armer.await;
    }
    let end_ns = now_ns().min(cut_ns.max(times.window));
    let cpu_ns = process_cpu_ns().saturating_sub(cpu_start);
    let window_ns = times.window_end.min(end_ns).saturating_sub(times.window).max(1);
    if reason.is_none() && receivers.iter().all(|r| !r.connected || r.ended.is_some()) && whole.workload != Workload::Sink {
        reason = Some("every connection ended before the run did: the server went away".into());
    }
    for ns in receivers.iter().filter_map(|r| r.first_ns) {
        record_ns(&mut setup.first_message, ns);
    }
    if let Some(dir) = &part.out {
        setup.write_logs(dir, connect_started_at, connect_span).map_err(RunError::Failed)?;
    }
    let setup = setup.summary(crate::setup::tls_report(&whole, target.tls.is_some()), !whole.subprotocols.is_empty(), false);
    let command = crate::redact_headers(command);
    Ok(summarize(&shared, &part, Outcome { command, receivers, connections, setup, reason, started_at, window_ns, end_ns, cpu_ns, shard: shard_report, start: start_report }))
}

/// A monotonic-ns time as a tokio instant.
fn instant_at(t_ns: u64) -> Instant {
    let now = now_ns();
    let i = Instant::now();
    if t_ns >= now { i + Duration::from_nanos(t_ns - now) } else { i - Duration::from_nanos(now - t_ns) }
}

type Sink = futures_util::stream::SplitSink<Ws, Message>;
type Stream = futures_util::stream::SplitStream<Ws>;

/// How early a shard arms the slot of another shard's broadcast: that publisher may be on
/// time while this process wakes late.
const ARM_AHEAD: Duration = Duration::from_millis(100);

/// Arms the completion slots of the broadcasts of publishers in other shards (`remote`) on
/// the publishers' schedule, as a publisher arms its own before sending.
async fn arm_remote(s: Arc<Shared>, remote: Vec<usize>, mut stop: watch::Receiver<bool>) {
    let t = s.times;
    for k in s.first_from(t.window).. {
        let intended = s.intended(k);
        if intended >= t.window_end || *stop.borrow() {
            break;
        }
        tokio::select! {
            () = sleep_until(instant_at(intended.saturating_sub(ARM_AHEAD.as_nanos() as u64))) => {}
            _ = stop.changed() => break,
        }
        let now = now_ns();
        for &p in &remote {
            if let Some(given_up) = s.tables[p].arm(k, intended, s.receivers_of(p), now) {
                s.incomplete.fetch_add(1, Relaxed);
                s.completion.record(p, t.interval_of(now), given_up.age_ns);
            }
        }
    }
}

/// Publisher `p` sends on its open-loop schedule until the window closes; the sink back when
/// it still works.
async fn publish(s: &Shared, p: usize, mut sink: Sink, rate: f64, mut stop: watch::Receiver<bool>) -> Option<Sink> {
    let period_ns = 1e9 / rate;
    let t = s.times;
    let receivers = s.receivers_of(p);
    // One buffer for the publisher's life: each message is stamped into it.
    let mut buf = BytesMut::with_capacity(s.plan.size as usize);
    let mut msg = vec![0u8; s.plan.size as usize];
    let pacer = crate::pacer::Pacer::new().ok();
    for k in 0u64.. {
        let intended = t.start + (k as f64 * period_ns) as u64;
        if intended >= t.window_end || *stop.borrow() {
            break;
        }
        // A timerfd wakes within tens of µs; tokio's timer up to 1.5 ms late (see `pacer`).
        match &pacer {
            Some(pacer) if pacer.set(intended).is_ok() => tokio::select! {
                r = pacer.wait() => if r.is_err() { sleep_until(instant_at(intended)).await },
                _ = stop.changed() => break,
            },
            _ => tokio::select! {
                () = sleep_until(instant_at(intended)) => {}
                _ = stop.changed() => break,
            },
        }
        let warmup = intended < t.window;
        let seq = (p as u64) << 32 | k;
        if !warmup {
            let now = now_ns();
            if let Some(given_up) = s.tables.get(p).and_then(|table| table.arm(k, intended, receivers, now)) {
                s.incomplete.fetch_add(1, Relaxed);
                s.completion.record(p, t.interval_of(now), given_up.age_ns);
            }
        }
        let sent = now_ns();
        MessageHeader { seq, intended_ns: intended, sent_ns: sent, warmup }.encode(&mut msg);
        fill_payload(&mut msg, seq);
        buf.extend_from_slice(&msg);
        let payload = buf.split().freeze();
        let message = match s.plan.mode {
            Mode::Binary => Message::Binary(payload),
            Mode::Text => Message::Text(payload.try_into().expect("wsbench messages are ASCII")),
        };
        if sink.send(message).await.is_err() {
            s.errors.fetch_add(1, Relaxed);
            return None;
        }
        if !warmup {
            s.published[p].fetch_add(1, Relaxed);
            s.sent_total.fetch_add(1, Relaxed);
            s.send_lag.record(p, t.interval_of(intended), sent.saturating_sub(intended));
        }
    }
    Some(sink)
}

/// Receives until the drain ends (or the connection does); records every measured delivery.
async fn receive_all(s: &Shared, i: usize, mut stream: Stream, mut stop: watch::Receiver<bool>) -> Receiver {
    let t = s.times;
    let mut r = Receiver { connected: true, ..Default::default() };
    let deadline = instant_at(t.drain_end);
    let push_period_ns = 1e9 / s.plan.fanout.push_rate;
    let mut push_start: Option<u64> = None;
    let mut push_seen = 0u64;
    loop {
        let next = tokio::select! {
            n = timeout_at(deadline, stream.next()) => match n { Ok(n) => n, Err(_) => break },
            _ = stop.changed() => break,
        };
        let now = now_ns();
        let bytes = match next {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Text(t))) => t.into(),
            Some(Ok(Message::Close(frame))) => {
                r.ended = Some(match frame {
                    Some(f) => format!("closed by the server ({} {})", u16::from(f.code), f.reason),
                    None => "closed by the server".into(),
                });
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                s.errors.fetch_add(1, Relaxed);
                r.ended = Some(failure_cause(&e));
                break;
            }
            None => {
                r.ended = Some("connection closed without a close frame".into());
                break;
            }
        };
        let Some(h) = MessageHeader::decode(&bytes) else {
            s.errors.fetch_add(1, Relaxed);
            continue;
        };
        if s.plan.workload == Workload::Push && push_start.is_none() {
            push_start = Some(h.intended_ns.saturating_sub((h.seq as f64 * push_period_ns) as u64));
        }
        // A broadcast's intended time is the publishers' schedule, read on this process's clock
        // (the same value the publisher stamped when both share a host).
        let intended = match s.plan.workload {
            Workload::Broadcast => s.intended(h.seq & 0xffff_ffff),
            _ => h.intended_ns,
        };
        let latency = now.saturating_sub(intended);
        r.first_ns.get_or_insert(latency);
        if h.warmup || intended < t.window || intended >= t.window_end {
            continue;
        }
        r.delivered += 1;
        if now > t.window_end {
            s.late.fetch_add(1, Relaxed);
        }
        let interval = t.interval_of(now);
        s.latency.record(i, interval, latency);
        // From the actual send: the publisher's own lag taken off, so no clock of its is needed.
        s.service.record(i, interval, latency.saturating_sub(h.sent_ns.saturating_sub(h.intended_ns)));
        if s.plan.workload == Workload::Push {
            push_seen += 1;
            s.send_lag.record(i, t.interval_of(h.intended_ns), h.sent_ns.saturating_sub(h.intended_ns));
            continue;
        }
        let p = (h.seq >> 32) as usize;
        match s.tables.get(p).map(|table| table.receive(h.seq & 0xffff_ffff, latency)) {
            Some(Receipt::Completed(max)) => {
                s.completed.fetch_add(1, Relaxed);
                s.completion.record(i, interval, max);
            }
            Some(Receipt::Pending) => {}
            Some(Receipt::Untracked) | None => {
                s.untracked.fetch_add(1, Relaxed);
            }
        }
    }
    if let Some(start) = push_start {
        // The sequence numbers the server's schedule put in the window.
        let first = (t.window.saturating_sub(start) as f64 / push_period_ns).ceil() as u64;
        let end = (t.window_end.saturating_sub(start) as f64 / push_period_ns).ceil() as u64;
        r.expected_push = end.saturating_sub(first).max(push_seen);
    } else if s.plan.workload == Workload::Push {
        r.expected_push = (s.plan.duration.as_secs_f64() * s.plan.fanout.push_rate).round() as u64;
    }
    r
}

/// What a run ended with, beside what its tasks shared.
struct Outcome {
    command: Vec<String>,
    receivers: Vec<Receiver>,
    connections: ConnectionCounts,
    setup: ConnectionSetup,
    reason: Option<String>,
    started_at: SystemTime,
    window_ns: u64,
    end_ns: u64,
    cpu_ns: u64,
    shard: Option<ShardReport>,
    start: Option<StartReport>,
}

/// The summary of this process's part (`plan`: the shard's part of [`Shared::plan`]).
fn summarize(s: &Shared, plan: &LoadPlan, o: Outcome) -> LoadgenSummary {
    let Outcome { command, receivers, mut connections, setup, reason, started_at, window_ns, end_ns, cpu_ns, shard, start } = o;
    let t = s.times;
    // Broadcasts still incomplete: at the age they reached, a lower bound.
    for (p, table) in s.tables.iter().enumerate() {
        for g in table.incomplete(end_ns) {
            s.incomplete.fetch_add(1, Relaxed);
            s.completion.record(p, t.interval_of(end_ns.min(t.window_end)), g.age_ns);
        }
    }
    let rooms = s.rooms();
    let published: Vec<u64> = s.published.iter().map(|a| a.load(Relaxed)).collect();
    // Per room: what this process's publishers sent, and how many publish from elsewhere
    // (expected as their schedule says: what they sent is in their shard's summary).
    let scheduled = if plan.workload == Workload::Broadcast { s.scheduled() } else { 0 };
    let mut local_published = vec![0u64; rooms];
    let mut remote_publishers = vec![0u64; rooms];
    let mut by_publishers = 0u64;
    if plan.workload == Workload::Broadcast {
        for (p, &n) in published.iter().enumerate() {
            if s.is_local(p) {
                local_published[p % rooms] += n;
                by_publishers += n * u64::from(s.room_receivers_of(p));
            } else {
                remote_publishers[p % rooms] += 1;
            }
        }
    }
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut gaps = 0u64;
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for (i, r) in receivers.iter().enumerate() {
        let g = s.shard.map_or(i as u64, |sh| sh.global_index(i as u32)) as usize;
        let own = if plan.fanout.echo_to_sender { 0 } else { published.get(g).copied().unwrap_or(0) };
        let exp = match plan.workload {
            Workload::Broadcast => (local_published[g % rooms] + remote_publishers[g % rooms] * scheduled).saturating_sub(own),
            Workload::Push => r.expected_push,
            _ => 0,
        };
        expected += exp;
        delivered += r.delivered.min(exp);
        let miss = exp.saturating_sub(r.delivered);
        if miss == 0 {
            continue;
        }
        let cause = if !r.connected {
            "receiver never connected".to_owned()
        } else if let Some(why) = &r.ended {
            format!("receiver disconnected: {why}")
        } else {
            if plan.workload == Workload::Push {
                gaps += miss;
            }
            "not delivered by the end of the drain".to_owned()
        };
        *missing.entry(cause).or_default() += miss;
    }
    let latency = s.latency.intervals();
    let service = s.service.intervals();
    let send_lag = s.send_lag.intervals();
    let completion = s.completion.intervals();
    let (lat_total, service_total, lag_total, completion_total) = (total(&latency), total(&service), total(&send_lag), total(&completion));
    let duration_s = window_ns as f64 / 1e9;
    let late = s.late.load(Relaxed);
    let sent = s.sent_total.load(Relaxed);
    let room_sizes: Vec<u32> = (0..rooms).map(|r| s.room_size(r)).collect();
    let fanout = FanoutReport {
        // The whole load's, also in a shard, as for a broadcast room.
        room_size_min: if plan.workload == Workload::Broadcast { room_sizes.iter().copied().min().unwrap_or(0) } else { s.plan.connections },
        room_size_max: if plan.workload == Workload::Broadcast { room_sizes.iter().copied().max().unwrap_or(0) } else { s.plan.connections },
        published: if plan.workload == Workload::Push { expected } else { sent },
        expected_deliveries: expected,
        delivered,
        reach: if expected == 0 { 1.0 } else { delivered as f64 / expected as f64 },
        missing,
        deliveries_per_s: delivered.saturating_sub(late) as f64 / duration_s,
        completion_us: (plan.workload == Workload::Broadcast).then(|| LatencySummary::from_histogram_ns(&completion_total)),
        completed: s.completed.load(Relaxed),
        incomplete: s.incomplete.load(Relaxed),
        gaps,
        untracked: s.untracked.load(Relaxed),
        expected_by_publishers: (s.shard.is_some() && plan.workload == Workload::Broadcast).then_some(by_publishers),
        completion_within_shard: s.shard.is_some_and(|sh| sh.count > 1) && plan.workload == Workload::Broadcast,
    };
    connections.held = Some(receivers.iter().filter(|r| r.connected && r.ended.is_none()).count() as u32);
    let lost = expected.saturating_sub(delivered);
    let mut failed_checks = Vec::new();
    if let Some(check) = deliveries_check(&fanout, plan.max_loss) {
        failed_checks.push(check);
    }
    let summary = LoadgenSummary {
        schema_version: wsbench_core::SCHEMA_VERSION,
        complete: reason.is_none(),
        reason,
        wsbench_version: wsbench_core::VERSION.to_owned(),
        config: plan.clone(),
        command,
        host: HostInfo::current(),
        started_at: wall_clock_rfc3339(started_at),
        duration_s,
        // Sink: what the server was sent; otherwise deliveries.
        throughput_msgs_per_s: if plan.workload == Workload::Sink { sent as f64 / duration_s } else { fanout.deliveries_per_s },
        rate: plan.rate.map(|asked| RateReport { asked_msgs_per_s: asked, sent_msgs_per_s: sent as f64 / duration_s }),
        messages: MessageCounts { sent, received: delivered, late, errors: s.errors.load(Relaxed), corrupted: 0, lost, ..Default::default() },
        connections,
        latency_us: LatencySummary::from_histogram_ns(&lat_total),
        service_time_us: LatencySummary::from_histogram_ns(&service_total),
        send_lag_us: LatencySummary::from_histogram_ns(&lag_total),
        cpu: CpuUse { process_pct: cpu_ns as f64 / (end_ns.saturating_sub(t.start).max(1)) as f64 * 100.0, busiest_thread_pct: 0.0 },
        allocations_per_message: None,
        worker_allocations_per_message: None,
        unanswered_min_age_us: None,
        failed_checks,
        warnings: Vec::new(),
        shard,
        start,
        setup,
        fanout: Some(fanout),
        idle: Vec::new(),
        rx_timestamps: None,
    };
    let mut summary = summary;
    // Failed connections and a late start are judged as for echo; missing deliveries above.
    let mut plain = summary.clone();
    plain.messages.lost = 0;
    summary.failed_checks.extend(crate::selfcheck::failed_checks(&plain));
    summary.warnings = warnings(&summary);
    if let Some(dir) = &plan.out {
        let logs = [(LATENCY_LOG, &latency), (SERVICE_TIME_LOG, &service), (SEND_LAG_LOG, &send_lag), (COMPLETION_LOG, &completion)];
        for (name, hists) in logs {
            if name == COMPLETION_LOG && plan.workload != Workload::Broadcast {
                continue;
            }
            let entries: Vec<LogInterval> = hists
                .iter()
                .enumerate()
                .map(|(k, h)| LogInterval { start: plan.warmup + START_DELAY + plan.interval * k as u32, duration: plan.interval, tag: None, histogram: h.clone() })
                .collect();
            if let Err(e) = wsbench_core::hist::write_interval_log(&dir.join(name), started_at, &format!("wsbench loadgen --workload {}", plan.workload.name()), &entries) {
                eprintln!("loadgen: {e}");
            }
        }
    }
    summary
}

/// The failed check of deliveries missing beyond `max_loss` (a share of those expected), if
/// they are: also how a merge of shards judges the whole room.
pub fn deliveries_check(f: &FanoutReport, max_loss: f64) -> Option<String> {
    let lost = f.expected_deliveries.saturating_sub(f.delivered);
    (f.expected_deliveries > 0 && lost as f64 > max_loss * f.expected_deliveries as f64).then(|| {
        let causes: Vec<String> = f.missing.iter().map(|(c, n)| format!("{n} {c}")).collect();
        format!("{lost} of {} deliveries missing ({}), more than --max-loss allows", f.expected_deliveries, causes.join(", "))
    })
}

/// The echo run's warnings (send lag, errors, failed or dropped connections, rate not reached,
/// too few samples), with missing deliveries counted against the deliveries expected.
fn warnings(s: &LoadgenSummary) -> Vec<wsbench_core::warning::Warning> {
    let mut plain = s.clone();
    plain.messages.lost = 0;
    let mut w = crate::selfcheck::warnings(&plain);
    if let Some(f) = s.fanout.as_ref().filter(|f| f.delivered < f.expected_deliveries) {
        let causes: Vec<String> = f.missing.iter().map(|(c, n)| format!("{n} {c}")).collect();
        w.push(wsbench_core::warning::Warning::deliveries_missing(f.expected_deliveries - f.delivered, f.expected_deliveries, &causes.join(", ")));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharded_broadcast_needs_a_shared_start_and_tracks_its_part_of_each_room() {
        let shard = Some(Shard::new(0, 2).unwrap());
        let broadcast = LoadPlan { workload: Workload::Broadcast, rate: Some(100.0), connections: 20, shard, ..Default::default() };
        assert!(validate(&broadcast).unwrap_err().contains("--start-at"));
        assert_eq!(validate(&LoadPlan { start_at: Some("2030-01-01T00:00:00Z".into()), ..broadcast.clone() }), Ok(()));
        // Push and sink connections are independent: no shared start needed.
        assert_eq!(validate(&LoadPlan { workload: Workload::Sink, ..broadcast.clone() }), Ok(()));
        // The echo load's send clock is not theirs: its knobs are refused, not ignored.
        let sink = LoadPlan { workload: Workload::Sink, ..broadcast.clone() };
        for plan in [LoadPlan { spin: std::time::Duration::from_micros(20), ..sink.clone() }, LoadPlan { coalesce: wsbench_core::plan::Coalesce::Every(std::time::Duration::from_millis(1)), ..sink.clone() }] {
            assert!(validate(&plan).unwrap_err().contains("--spin and --coalesce"), "{plan:?}");
        }
        // One room of 100,000: too many for one process, not for two shards.
        let big = LoadPlan { connections: 100_000, start_at: Some("2030-01-01T00:00:00Z".into()), ..broadcast };
        assert_eq!(validate(&big), Ok(()));
        assert!(validate(&LoadPlan { shard: None, ..big }).unwrap_err().contains("--shard"));
    }

    #[test]
    fn a_room_url_keeps_the_query() {
        let plan = LoadPlan { url: "wss://h:1/chat?x=1".into(), workload: Workload::Broadcast, fanout: wsbench_core::plan::Fanout { rooms: 3, ..Default::default() }, ..Default::default() };
        assert_eq!(url_of(&plan, 7), "wss://h:1/chat/room/1?x=1");
    }
}

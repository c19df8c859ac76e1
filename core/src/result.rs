//! Result files, versioned ([`crate::SCHEMA_VERSION`]) and documented field by field.
//!
//! `summary.json` (load generator), `server.json` (server), `intervals.csv`, `processes.csv` and
//! `run.json` (orchestrator) are written and read through these types only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hist::LatencySummary;
use crate::plan::{LoadPlan, ServerPlan};
use crate::warning::Warning;

/// Where and with what a result was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub cpus: usize,
}

impl HostInfo {
    /// Reads the host's identity from `uname(2)`.
    pub fn current() -> Self {
        // SAFETY: utsname is plain old data; uname fills it with NUL-terminated strings.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::uname(&mut u) } == 0;
        let field = |f: &[libc::c_char]| -> String {
            if !ok {
                return String::new();
            }
            let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Self {
            hostname: field(&u.nodename),
            os: field(&u.sysname),
            kernel: field(&u.release),
            arch: std::env::consts::ARCH.to_owned(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// Message counts of a load-generator run (measured window only; warm-up excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Messages sent in the measured window.
    pub sent: u64,
    /// Echoes received for those messages (including during the drain after the window).
    pub received: u64,
    /// Of `received`, the echoes that arrived after the window had closed, during the drain.
    /// They count as answered but not towards `throughput_msgs_per_s`: an overloaded server
    /// that works off its backlog late must not look as fast as the rate it was asked for.
    #[serde(default)]
    pub late: u64,
    /// Send or receive failures and connections dropped by the peer.
    pub errors: u64,
    /// Echoes that did not match what was sent: wrong sequence, length or content.
    pub corrupted: u64,
    /// Measured messages never answered: still outstanding when the run ended (drain timeout,
    /// the server dropped the connection, or an interrupt). Each is also recorded in the latency
    /// and service-time histograms at the age it had reached then, a lower bound on its latency.
    /// Written as `unanswered` (read as `lost` too, the name in older results).
    #[serde(rename = "unanswered", alias = "lost")]
    pub lost: u64,
    /// Template loads: replies that claim to answer a request this connection never sent, or
    /// whose sequence number cannot be read (the correlation rule found a value that is not one,
    /// or the reply is not JSON under `match_json`). Wrong answers: they fail the run.
    #[serde(default)]
    pub unmatched: u64,
    /// Template loads: frames that answer no outstanding request: no sequence number at all
    /// (server pushes, notifications), or one already answered or given up (duplicates).
    #[serde(default)]
    pub unsolicited: u64,
}

impl MessageCounts {
    /// Echoes received while the measured window was open.
    pub fn received_in_window(&self) -> u64 {
        self.received.saturating_sub(self.late)
    }

    /// What went wrong, as the `errors` figure of tables and comparisons: failures, corrupted
    /// echoes, unanswered messages and replies that answer no request sent. Pushes
    /// (`unsolicited`) are the server's own messages, not faults.
    pub fn faults(&self) -> u64 {
        self.errors + self.corrupted + self.lost + self.unmatched
    }
}

impl std::ops::AddAssign for MessageCounts {
    fn add_assign(&mut self, o: Self) {
        self.sent += o.sent;
        self.received += o.received;
        self.late += o.late;
        self.errors += o.errors;
        self.corrupted += o.corrupted;
        self.lost += o.lost;
        self.unmatched += o.unmatched;
        self.unsolicited += o.unsolicited;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionCounts {
    pub target: u32,
    pub established: u32,
    pub failed: u32,
    /// The failed connections by cause (`refused`, `reset`, `timeout`, `HTTP status 503`,
    /// `handshake error: ...`), adding up to `failed`.
    #[serde(default)]
    pub failures: BTreeMap<String, u32>,
    /// The fewest connections open at once during the measured window (at least this many were
    /// held the whole time); below `target` the server saw less load than planned. `None` when
    /// the window never began.
    #[serde(default)]
    pub held: Option<u32>,
    /// Runs with churn (`--reconnect-after`, `--connection-lifetime`): the connections that
    /// replaced others and how the replaced ones closed. Absent without churn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
}

/// What churn did: connections closed and opened in their place during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Connections opened in place of closed ones, warm-up and drain included.
    pub opened: u64,
    /// Of those, opened within the measured window.
    pub opened_in_window: u64,
    /// `opened_in_window` per second of the measured window.
    pub opened_per_s: f64,
    /// Replacements that failed to open, by cause; each ends its place in the schedule and is
    /// counted in `failed`/`failures` of the connection counts as well.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u32>,
    /// Closing handshakes by outcome: `close 1000 normal closure` (the server answered our 1000
    /// with its own), another code, `no close reply within 1s`, `reset`, ...
    pub closes: BTreeMap<String, u64>,
    /// Closes the server answered with 1000 within the bound.
    pub clean: u64,
    /// Every other close (wrong code, no reply in time, reset).
    pub unclean: u64,
    /// Heap allocations per replacement (closing one connection and opening the next), counted
    /// apart from the per-message figures; absent when the process does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations_per_replacement: Option<f64>,
}

impl std::ops::AddAssign<&ChurnReport> for ChurnReport {
    fn add_assign(&mut self, o: &ChurnReport) {
        // Weighted by the replacements each side opened.
        self.allocations_per_replacement = match (self.allocations_per_replacement, o.allocations_per_replacement) {
            (Some(a), Some(b)) if self.opened + o.opened > 0 => Some((a * self.opened as f64 + b * o.opened as f64) / (self.opened + o.opened) as f64),
            (a, b) => a.or(b),
        };
        self.opened += o.opened;
        self.opened_in_window += o.opened_in_window;
        // Processes run side by side over the same window: their rates add.
        self.opened_per_s += o.opened_per_s;
        self.clean += o.clean;
        self.unclean += o.unclean;
        for (k, n) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.closes {
            *self.closes.entry(k.clone()).or_default() += n;
        }
    }
}

impl std::ops::AddAssign<&ConnectionCounts> for ConnectionCounts {
    fn add_assign(&mut self, o: &ConnectionCounts) {
        self.target += o.target;
        match (&mut self.churn, &o.churn) {
            (Some(a), Some(b)) => *a += b,
            (a @ None, Some(b)) => *a = Some(b.clone()),
            _ => {}
        }
        self.established += o.established;
        self.failed += o.failed;
        self.held = match (self.held, o.held) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        for (cause, n) in &o.failures {
            *self.failures.entry(cause.clone()).or_default() += n;
        }
    }
}

impl std::ops::AddAssign for ConnectionCounts {
    fn add_assign(&mut self, o: Self) {
        *self += &o;
    }
}

/// Asked versus achieved rate of an open-loop run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateReport {
    pub asked_msgs_per_s: f64,
    /// Messages actually sent per second in the measured window.
    pub sent_msgs_per_s: f64,
}

/// CPU use of the load-generator process over the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// All threads together, in % of one core.
    pub process_pct: f64,
    /// The busiest worker thread, in % of one core: over 90 % means the thread was saturated.
    pub busiest_thread_pct: f64,
}

/// `summary.json`: what one load-generator process measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadgenSummary {
    pub schema_version: u32,
    /// False when the run was interrupted or the server went away; the figures cover what was measured.
    pub complete: bool,
    /// Why the run is incomplete; absent when complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub wsbench_version: String,
    /// Every effective option.
    pub config: LoadPlan,
    /// The command line that produced this result.
    pub command: Vec<String>,
    pub host: HostInfo,
    /// Wall-clock start of the measured window (RFC 3339, UTC).
    pub started_at: String,
    /// Length of the measured window in seconds (shorter than asked when interrupted).
    pub duration_s: f64,
    /// Echoes received per second while the measured window was open (`messages.received -
    /// messages.late` over `duration_s`): the rate the server kept up with. Echoes of a backlog
    /// answered during the drain are left out, so in open loop a throughput below the asked rate
    /// means the server (or the load generator, see `rate.sent_msgs_per_s`) fell behind.
    pub throughput_msgs_per_s: f64,
    /// Open loop only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateReport>,
    pub messages: MessageCounts,
    pub connections: ConnectionCounts,
    /// From each message's intended send time to its echo (coordinated-omission corrected).
    /// Unanswered messages are in it too, at the age they had reached when the run ended.
    pub latency_us: LatencySummary,
    /// From each message's actual send time to its echo.
    pub service_time_us: LatencySummary,
    /// Actual minus intended send time: the load generator's own delay.
    pub send_lag_us: LatencySummary,
    pub cpu: CpuUse,
    /// Heap allocations of the whole process from the start to the end of the measured window,
    /// divided by `messages.received`. Includes the collector thread's once-per-second work
    /// (merging intervals, writing logs and CSV: a few allocations per run while its buffers
    /// grow, then none). `null` when the process does not count allocations (library use).
    #[serde(default)]
    pub allocations_per_message: Option<f64>,
    /// As `allocations_per_message`, counting only the worker threads' allocations over the
    /// same window: the hot path of sending, receiving, checking and recording.
    #[serde(default)]
    pub worker_allocations_per_message: Option<f64>,
    /// The youngest unanswered message's age when the run ended: every unanswered message's
    /// latency is at least this. Absent when every message was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered_min_age_us: Option<f64>,
    /// Why a run that went to its end still failed (exit code 1): unanswered messages or failed
    /// connections beyond what `config.max_loss` and `config.max_failed_connections` allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
    pub warnings: Vec<Warning>,
    /// This process was one shard of a larger load (`--shard`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardReport>,
    /// The shared start (`--start-at`) and whether this process met it; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartReport>,
    /// How the connections were opened (TLS, setup times, subprotocols); its fields sit at the
    /// top level of `summary.json`.
    #[serde(flatten, default)]
    pub setup: ConnectionSetup,
    /// Broadcast, push and sink runs: what was delivered one way. There `latency_us` is the
    /// per-delivery one-way latency (from the intended send time to each receiver's receipt),
    /// `messages.sent` what the publishers sent and `messages.received` the deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutReport>,
    /// Idle warm-up probes (`--idle`): the first message's round trip after each idle time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle: Vec<IdlePoint>,
    /// Kernel receive timestamps (`--rx-timestamps kernel`): how many connections and echoes
    /// used them and how exact they were. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_timestamps: Option<RxTimestampReport>,
}

/// What `--rx-timestamps kernel` did. Latency is still measured from the intended send time;
/// only the arrival time is the kernel's (when the segment reached the socket) instead of the
/// moment the load generator handled it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RxTimestampReport {
    /// Connections that timed their echoes by the kernel's stamp.
    pub kernel_connections: u64,
    /// Connections that timed them in user space instead, and why (the first reason seen).
    pub user_connections: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Echoes timed by a kernel stamp.
    pub kernel_echoes: u64,
    /// Of those, echoes read together with a later segment: TCP gives the last segment's
    /// stamp, so theirs is an upper bound (latency over-stated by at most the gap).
    pub shared_stamps: u64,
    /// Stamps missing or implausible (from the future, older than 10 s): those echoes were
    /// timed when read.
    pub refused: u64,
    /// Reads at a wake-up that found nothing yet (a system call for nothing).
    pub empty_reads: u64,
    /// Largest change of the wall-clock-to-monotonic offset re-measured during the run, in ns
    /// (a step of the wall clock; stamps are converted with the latest offset).
    pub clock_offset_change_ns: u64,
}

impl RxTimestampReport {
    /// Adds another process's figures (shards): counts add, the first fallback reason stays.
    pub fn add(&mut self, o: &RxTimestampReport) {
        self.kernel_connections += o.kernel_connections;
        self.user_connections += o.user_connections;
        if self.fallback.is_none() {
            self.fallback.clone_from(&o.fallback);
        }
        self.kernel_echoes += o.kernel_echoes;
        self.shared_stamps += o.shared_stamps;
        self.refused += o.refused;
        self.empty_reads += o.empty_reads;
        self.clock_offset_change_ns = self.clock_offset_change_ns.max(o.clock_offset_change_ns);
    }
}

/// The first message after one idle time, over every connection of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdlePoint {
    /// How long the connections stayed idle before the message, in seconds.
    pub idle_s: f64,
    /// Round trip of that message (sent to echo), one sample per connection.
    pub latency_us: LatencySummary,
    /// Probes whose echo did not come back within the bound.
    pub lost: u64,
}

/// A shard's place in the whole load. Its `config` holds its own part (connections, rates);
/// the whole load's figures are here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardReport {
    pub index: u32,
    pub count: u32,
    /// Connections of the whole load, over every shard.
    pub total_connections: u32,
    /// Open loop: msgs/s of the whole load, over every shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rate: Option<f64>,
}

/// When a process was asked to begin its warm-up (`--start-at`) and when it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartReport {
    /// The instant asked for (RFC 3339, as given).
    pub at: String,
    /// How long after `at` the warm-up could begin (0 when on time); the schedule stays
    /// anchored at `at` either way, so a late process sends its backlog at once.
    pub late_by_s: f64,
    /// Late by more than one histogram interval: this process's schedule no longer lines up
    /// with the other shards' (a failed check, exit 1).
    pub late: bool,
}

/// How a load generator's connections were opened. Absent fields: not measured (results
/// written before these existed) or not applicable (`tls_us` without TLS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionSetup {
    /// `wss://` runs only: how the server's certificate was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// Per connection: `connect()` called → TCP connection established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<LatencySummary>,
    /// Per connection: the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<LatencySummary>,
    /// Per connection: the WebSocket handshake, request written → `101` parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_us: Option<LatencySummary>,
    /// Per connection: its first message's round trip (sent → echo), warm-up included: a cold
    /// connection's first exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message_us: Option<LatencySummary>,
    /// Connections by the subprotocol the server chose (`""`: none), when any was offered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subprotocols: BTreeMap<String, u32>,
    /// permessage-deflate, when it was offered (`--deflate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflate: Option<DeflateReport>,
}

/// What permessage-deflate did on the client side: the parameters agreed and the bytes on the
/// wire against the payload bytes they carried, both ways.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeflateReport {
    /// Connections by the parameters the server agreed to (as a header value, every parameter
    /// named), `"declined"` for those it answered without the extension.
    pub agreements: BTreeMap<String, u32>,
    pub messages_out: u64,
    pub payload_bytes_out: u64,
    pub wire_bytes_out: u64,
    /// Wire bytes per payload byte sent (compressed payloads only; frame headers not counted).
    pub ratio_out: Option<f64>,
    pub messages_in: u64,
    pub wire_bytes_in: u64,
    pub payload_bytes_in: u64,
    pub ratio_in: Option<f64>,
}

/// `server.json`'s `deflate` block (written by servers run with `--deflate`): how many
/// connections offered and negotiated permessage-deflate, the parameter sets agreed, bytes on the
/// wire against payload bytes each way, and the server's time spent inflating and compressing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerDeflate {
    pub offered: u64,
    pub negotiated: u64,
    /// Each parameter set agreed, with its connections.
    #[serde(default)]
    pub agreements: Vec<ServerDeflateAgreement>,
    pub messages_in: u64,
    pub wire_bytes_in: u64,
    pub payload_bytes_in: u64,
    pub ratio_in: Option<f64>,
    pub messages_out: u64,
    pub payload_bytes_out: u64,
    pub wire_bytes_out: u64,
    pub ratio_out: Option<f64>,
    /// Inflating and compressing, seconds of CPU over the run.
    pub cpu_s: f64,
    /// `cpu_s` over every compressed message, in and out, in nanoseconds.
    pub ns_per_message: Option<f64>,
}

/// One parameter set a server agreed to, and on how many connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDeflateAgreement {
    #[serde(flatten)]
    pub agreement: crate::codec::deflate::Agreement,
    pub connections: u64,
}

/// How a `wss://` server's certificate was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsReport {
    /// `system` (the system's roots), `ca` (the `--ca` file) or `insecure` (not checked).
    pub trust: String,
    /// True with `--insecure`: any certificate was accepted, so the server was not authenticated.
    pub insecure: bool,
}

/// What a broadcast, push or sink run delivered, beyond per-delivery latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FanoutReport {
    /// Members per room, fewest and most (broadcast); connections (push).
    pub room_size_min: u32,
    pub room_size_max: u32,
    /// Measured messages sent by this process's publishers (broadcast, sink) or by the server
    /// (push, as far as they were received or counted missing).
    pub published: u64,
    /// Deliveries that should have happened: every planned receiver of every measured message.
    pub expected_deliveries: u64,
    /// Deliveries that happened (a message received by one receiver is one delivery).
    pub delivered: u64,
    /// `delivered / expected_deliveries` (1 when nothing was expected).
    pub reach: f64,
    /// Deliveries that did not happen, by cause: `receiver never connected`, `receiver
    /// disconnected: <why>`, `not delivered by the end of the drain`; adding up to
    /// `expected_deliveries - delivered`.
    pub missing: BTreeMap<String, u64>,
    /// Deliveries per second over the measured window.
    pub deliveries_per_s: f64,
    /// Broadcast: from the intended send time until the last member of the room received it.
    /// A broadcast some member never received is in it at the age it reached by the end of the
    /// drain (a lower bound), and counted in `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_us: Option<LatencySummary>,
    /// Broadcasts that reached every planned member.
    pub completed: u64,
    pub incomplete: u64,
    /// Push: sequence numbers skipped between received messages, per connection, summed.
    pub gaps: u64,
    /// Deliveries of a message already delivered to that receiver, or that the bounded
    /// completion table no longer tracked; counted, never recorded twice.
    pub untracked: u64,
    /// A shard of a broadcast: deliveries its publishers' measured messages asked for across
    /// every member of their rooms, in all shards. The shards' values add up to the whole
    /// load's `expected_deliveries` exactly, whereas a shard's own `expected_deliveries` counts
    /// other shards' publishers as their schedule says (it cannot see what they sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_by_publishers: Option<u64>,
    /// True when `completion_us`, `completed` and `incomplete` count per shard: until the last
    /// member *in one shard* had a broadcast. A lower bound of the room's completion at every
    /// quantile, since a room's completion is the largest of its shards'.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub completion_within_shard: bool,
}

impl LoadgenSummary {
    /// True when the run completed and passed its checks (the load generator's exit code 0).
    pub fn passed(&self) -> bool {
        self.complete && self.failed_checks.is_empty()
    }
}

/// Server-side message and byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCounts {
    pub connections_accepted: u64,
    pub connections_peak: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub protocol_errors: u64,
}

/// `server.json`: what the server saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    pub schema_version: u32,
    /// False when the server stopped for another reason than SIGTERM/SIGINT.
    pub complete: bool,
    pub wsbench_version: String,
    pub config: ServerPlan,
    pub command: Vec<String>,
    pub host: HostInfo,
    pub started_at: String,
    /// Seconds from listening to shutdown.
    pub duration_s: f64,
    pub counts: ServerCounts,
    /// Pauses emulated (stop-the-world events) during the run.
    pub pauses: u64,
    /// Client send (timestamp in the message header) to server receive, warm-up excluded.
    /// Valid on one host only: both ends read the same monotonic clock.
    pub one_way_latency_us: LatencySummary,
    /// CPU time of the whole server process over its life, in % of one core.
    pub cpu_pct: f64,
    /// Heap allocations of the whole server process from the first to the last measured
    /// (non-warm-up, wsbench-header) message it received before any connection ended, divided
    /// by those messages: steady state, without start-up, handshakes, closing and shutdown.
    /// Includes the latency harvester's once-per-second log write (allocation-free once its
    /// buffers have grown). `null` when the server does not count allocations (library use) or
    /// received no measured message (e.g. a foreign client).
    #[serde(default)]
    pub allocations_per_message: Option<f64>,
    /// As `allocations_per_message`, counting only the runtime threads that received
    /// measured messages, each between its own first and last one: the message path.
    #[serde(default)]
    pub worker_allocations_per_message: Option<f64>,
    /// Broadcast and push: what the server's fan-out did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<ServerFanout>,
}

/// The server's side of a broadcast or push run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerFanout {
    /// Messages received for broadcasting (broadcast) or sent on schedule (push, per connection).
    pub messages: u64,
    /// Messages queued to a receiver: one per member per broadcast, or one per push.
    pub deliveries: u64,
    /// Receivers closed (1008) because their queue was full: slow subscribers, so one stalled
    /// receiver does not stall its room.
    pub slow_receivers_closed: u64,
    /// Deliveries not queued because the receiver's queue was full (its connection is closed).
    pub deliveries_dropped: u64,
}

/// One row of `intervals.csv`: one second of a load-generator run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// End of the interval, seconds since the measured window began.
    pub elapsed_s: f64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    /// Echoes received per second in this interval.
    pub throughput: f64,
    /// Latency percentiles of the replies received in this interval; empty (`None`) when none
    /// came back, so a stalled interval never reads as 0 µs.
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p99_9_us: Option<f64>,
    pub max_us: Option<f64>,
    /// Messages sent and not yet answered at the interval's end: during a stall, the interval
    /// shows them here while nothing comes back.
    #[serde(default)]
    pub outstanding: u64,
    /// Age of the oldest of them at the interval's end, in µs (0 when none).
    #[serde(default)]
    pub oldest_outstanding_us: f64,
    /// Fewest and most connections open during the interval. Summed over worker threads (and
    /// shards), so `open_min` is a lower bound of the true minimum and `open_max` an upper
    /// bound of the maximum; connections closing after the measured window do not count.
    #[serde(default)]
    pub open_min: u32,
    #[serde(default)]
    pub open_max: u32,
    /// Runs on a ramp (`stages`): the stage (from 1) that holds most of this interval; empty
    /// without stages.
    #[serde(default)]
    pub stage: Option<u32>,
}

/// One row of `processes.csv`, sampled from /proc once per second by the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    pub elapsed_s: f64,
    /// `server` or `loadgen-<i>`.
    pub role: String,
    pub pid: u32,
    /// CPU over the last sample period, in % of one core.
    pub cpu_pct: f64,
    pub rss_bytes: u64,
}

/// One configuration of a run, as resolved from the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub name: String,
    /// Folder name under the run directory.
    pub dir: String,
    /// For a point of a rate sweep: the configuration the point belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Open loop: the total rate asked for, msgs/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_rate: Option<f64>,
    /// The server side: a built-in plan, or an external command.
    pub server: serde_json::Value,
    pub load: serde_json::Value,
}

/// One probe of a capacity search: a whole trial at one open-loop rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityProbe {
    /// Folder of the probe's files, relative to the trial folder.
    pub dir: String,
    pub asked_msgs_per_s: f64,
    /// A search over connections: the connections this probe held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Echoes received per second: below 95 % of the asked rate means overloaded.
    pub achieved_msgs_per_s: f64,
    pub latency_us: LatencySummary,
    pub passed: bool,
    /// Why it passed or failed, in words.
    pub verdict: String,
    /// The load generator fell behind its own schedule during the probe (it sent less than asked,
    /// its send lag alone took half the objective's bound, or its busiest thread was saturated):
    /// a failure of this probe says more about the load generator than about the server.
    #[serde(default)]
    pub load_generator_behind: bool,
    /// The warnings of the probe's `summary.json`, so a report can list what every probe warned.
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

impl CapacityResult {
    /// The capacity in the unit of what was searched: msgs/s, or connections.
    pub fn capacity_on_its_axis(&self) -> f64 {
        match self.over {
            SearchOver::Rate => self.capacity_msgs_per_s,
            SearchOver::Connections => self.capacity_connections.map_or(0.0, f64::from),
        }
    }

    /// The lowest failing point in the same unit, when one failed.
    pub fn first_failing_on_its_axis(&self) -> Option<f64> {
        match self.over {
            SearchOver::Rate => self.first_failing_msgs_per_s,
            SearchOver::Connections => self.first_failing_connections.map(f64::from),
        }
    }
}

impl CapacityProbe {
    /// Where the probe stood on what was searched: its asked rate, or its connections.
    pub fn position(&self, over: SearchOver) -> f64 {
        match over {
            SearchOver::Rate => self.asked_msgs_per_s,
            SearchOver::Connections => self.connections.map_or(0.0, f64::from),
        }
    }
}

/// What a capacity search varies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchOver {
    /// The open-loop rate over a fixed number of connections: msgs/s at capacity.
    #[default]
    Rate,
    /// The number of connections, each at a fixed rate (or the total rate fixed, as for a
    /// broadcast room that grows): websocket-shootout's "how many connections can it hold".
    Connections,
}

impl SearchOver {
    pub fn is_rate(&self) -> bool {
        *self == Self::Rate
    }
}

/// The latency a capacity search's objective bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMetric {
    /// Every message's latency (broadcast: every delivery's).
    #[default]
    Latency,
    /// Broadcast: from the intended send time until the last member of the room received it.
    Completion,
}

/// What stopped a capacity search from going higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitedBy {
    /// The first failing rate failed with the load generator on schedule: the server's limit.
    #[serde(rename = "server")]
    Server,
    /// The first failing rate failed (every time it was tried) with the load generator behind
    /// its schedule: the capacity is a lower bound, the load generator could not offer more.
    #[serde(rename = "load generator")]
    LoadGenerator,
    /// No probe failed: `max_rate` or the probe budget ended the search.
    #[serde(rename = "search limit")]
    SearchLimit,
}

impl LimitedBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::LoadGenerator => "load generator",
            Self::SearchLimit => "search limit",
        }
    }
}

/// `capacity.json` in a trial folder: the outcome of a capacity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    pub schema_version: u32,
    /// The objective, e.g. `p99 <= 5 ms`.
    pub slo: String,
    /// Requested relative precision (0.05 = 5 %).
    pub precision: f64,
    /// The highest probed rate that met the objective without overload; 0 when none did.
    pub capacity_msgs_per_s: f64,
    /// The lowest probed rate that failed, when one did: capacity lies in [capacity, this).
    pub first_failing_msgs_per_s: Option<f64>,
    /// True when the bracket was narrowed to the precision (false: probe or rate limit reached).
    pub converged: bool,
    /// Whose limit the first failing rate shows; absent from results written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<LimitedBy>,
    /// What the search varied: the open-loop rate (the default, and all that results written
    /// before connection searches knew) or the number of connections.
    #[serde(default, skip_serializing_if = "SearchOver::is_rate")]
    pub over: SearchOver,
    /// A search over connections: the most connections that met the objective (0 when none
    /// did); `capacity_msgs_per_s` is then the rate asked of (open loop) or achieved by
    /// (closed loop) that probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_connections: Option<u32>,
    /// A search over connections: the fewest connections that failed, when some did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failing_connections: Option<u32>,
    /// Every probe in the order it ran.
    pub probes: Vec<CapacityProbe>,
}

/// `run.json`: the manifest of a `wsbench run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub schema_version: u32,
    pub wsbench_version: String,
    pub scenario: String,
    pub scenario_file: String,
    /// The scenario file's text, so the run can be repeated from its results alone.
    pub scenario_text: String,
    pub run_id: String,
    pub started_at: String,
    pub command: Vec<String>,
    pub host: HostInfo,
    pub trials: u32,
    pub configs: Vec<ConfigEntry>,
    /// The order trials ran in: (config name, trial number).
    pub order: Vec<(String, u32)>,
    /// Trials that failed, with their reason.
    #[serde(default)]
    pub failures: Vec<(String, u32, String)>,
}

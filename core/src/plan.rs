//! Fully resolved plans for each process, and their command-line form.
//!
//! The orchestrator turns a scenario configuration into one [`ServerPlan`] and one [`LoadPlan`]
//! per load-generator process, and hands them over as command-line arguments (`to_args`), so a
//! process started by hand and one started by `wsbench run` are configured the same way. Each
//! plan is also written into that process's result file, field by field, as its `config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{format_duration, serde_duration};

/// Server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// tokio-tungstenite: the reference engine.
    #[default]
    Tungstenite,
    /// wsbench-core's allocation-free frame codec on a raw socket, with shared read buffers.
    ZeroAlloc,
}

/// What the server does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Text and binary messages are sent back unchanged.
    #[default]
    Echo,
    /// A data message is delivered to every member of its sender's room (see [`Fanout`]).
    Broadcast,
    /// The server sends to every connection on an open-loop schedule; clients send nothing.
    Push,
    /// Clients send; the server counts and records one-way latency and answers nothing.
    Sink,
}

impl Workload {
    /// True for the workloads whose messages do not come back to their sender as echoes.
    pub fn is_fanout(self) -> bool {
        !matches!(self, Self::Echo)
    }
}

/// Settings of the broadcast, push and sink workloads, shared by the server's and the load
/// generator's plans (each side uses what concerns it; echo ignores them all).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fanout {
    /// Broadcast: rooms. A client joins room `k` through the path `/room/<k>` (`k < rooms`),
    /// otherwise the room of its connection index modulo `rooms`.
    pub rooms: u32,
    /// Broadcast: the sender receives its own message too.
    pub echo_to_sender: bool,
    /// Broadcast (load generator): connections that publish; every connection subscribes.
    pub publishers: u32,
    /// Push: messages per second the server sends to each connection.
    pub push_rate: f64,
    /// Push: size of each pushed message in bytes, header included.
    pub push_size: u64,
}

impl Default for Fanout {
    fn default() -> Self {
        Self {
            rooms: 1,
            echo_to_sender: false,
            publishers: 1,
            push_rate: 100.0,
            push_size: 32,
        }
    }
}

impl Fanout {
    /// The command-line flags of the settings `workload` uses.
    pub fn to_args(&self, workload: Workload, loadgen: bool) -> Vec<String> {
        let mut a = Vec::new();
        match workload {
            Workload::Echo | Workload::Sink => {}
            Workload::Broadcast => {
                a.extend(["--rooms".into(), self.rooms.to_string()]);
                if self.echo_to_sender {
                    a.push("--echo-to-sender".into());
                }
                if loadgen {
                    a.extend(["--publishers".into(), self.publishers.to_string()]);
                }
            }
            Workload::Push => {
                a.extend(["--push-rate".into(), self.push_rate.to_string()]);
                if !loadgen {
                    a.extend(["--push-size".into(), self.push_size.to_string()]);
                }
            }
        }
        a
    }
}

/// How the server's workload treats each message's bytes: the allocation contrast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Handler {
    /// Works on the received bytes in place: no heap allocation per message.
    #[default]
    ZeroAlloc,
    /// Decodes every message into owned values and encodes the reply through serde_json, the
    /// way an ordinary application handler does (the reply is still byte-identical).
    Alloc,
}

/// Which tokio runtime the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// One thread does everything.
    CurrentThread,
    /// Work-stealing runtime with `workers` threads.
    #[default]
    MultiThread,
}

/// Frame type of the load generator's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Binary,
    Text,
}

macro_rules! names {
    ($t:ty { $($v:ident => $n:literal),* $(,)? }) => {
        impl $t {
            /// The name used on the command line, in scenario files and in results.
            pub fn name(self) -> &'static str {
                match self { $(Self::$v => $n),* }
            }
        }
    };
}
names!(Engine { Tungstenite => "tungstenite", ZeroAlloc => "zero-alloc" });
names!(Workload { Echo => "echo", Broadcast => "broadcast", Push => "push", Sink => "sink" });
names!(Handler { ZeroAlloc => "zero-alloc", Alloc => "alloc" });
names!(Runtime { CurrentThread => "current-thread", MultiThread => "multi-thread" });
names!(Mode { Binary => "binary", Text => "text" });

/// Emulated stop-the-world pauses: every runtime thread stops for `pause_for` once per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    #[serde(with = "serde_duration")]
    pub every: Duration,
    #[serde(rename = "for", with = "serde_duration")]
    pub pause_for: Duration,
}

/// Default largest message the server accepts; Autobahn's 9.* cases send 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 16 << 20;

/// Everything a server process needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerPlan {
    pub listen: SocketAddr,
    pub engine: Engine,
    pub workload: Workload,
    /// Absent from results written before handlers existed; those servers did not allocate.
    #[serde(default)]
    pub handler: Handler,
    pub runtime: Runtime,
    /// Worker threads of the multi-thread runtime (ignored by current-thread).
    pub workers: usize,
    pub max_message_size: u64,
    pub pause: Option<Pause>,
    /// Serve TLS (`wss://`) with this certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Subprotocols the server speaks: it picks the first of the client's offer it knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subprotocols: Vec<String>,
    /// Refuse (400) an upgrade that offers none of `subprotocols`.
    #[serde(default)]
    pub require_subprotocol: bool,
    /// Accept permessage-deflate (zero-alloc engine) within these bounds; absent: declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflate: Option<crate::codec::deflate::DeflateConfig>,
    /// Settings of the broadcast and push workloads.
    #[serde(default)]
    pub fanout: Fanout,
    pub out: Option<PathBuf>,
}

/// A PEM certificate chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerPlan {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9001".parse().expect("literal address"),
            engine: Engine::default(),
            workload: Workload::default(),
            handler: Handler::default(),
            runtime: Runtime::default(),
            workers: 2,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            pause: None,
            tls: None,
            subprotocols: Vec::new(),
            require_subprotocol: false,
            deflate: None,
            fanout: Fanout::default(),
            out: None,
        }
    }
}

impl ServerPlan {
    /// The `wsbench server` / `wsbench-server` arguments that reproduce this plan.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--listen".into(),
            self.listen.to_string(),
            "--engine".into(),
            self.engine.name().into(),
            "--workload".into(),
            self.workload.name().into(),
            "--handler".into(),
            self.handler.name().into(),
            "--runtime".into(),
            self.runtime.name().into(),
            "--workers".into(),
            self.workers.to_string(),
            "--max-message-size".into(),
            self.max_message_size.to_string(),
        ];
        if let Some(p) = self.pause {
            a.extend(["--pause-every".into(), format_duration(p.every), "--pause-for".into(), format_duration(p.pause_for)]);
        }
        if let Some(t) = &self.tls {
            a.extend(["--tls-cert".into(), t.cert.display().to_string(), "--tls-key".into(), t.key.display().to_string()]);
        }
        if !self.subprotocols.is_empty() {
            a.extend(["--subprotocols".into(), self.subprotocols.join(",")]);
        }
        if self.require_subprotocol {
            a.push("--require-subprotocol".into());
        }
        if let Some(d) = &self.deflate {
            a.extend(d.to_args());
        }
        a.extend(self.fanout.to_args(self.workload, false));
        if let Some(out) = &self.out {
            a.extend(["--out".into(), out.display().to_string()]);
        }
        a
    }
}

/// One load-generator shard of several: shard `index` of `count` (0-based), as `--shard 1/4`.
///
/// Shards split a load the way k6's execution segments do: every shard is given the same
/// totals (connections, rate) and takes its exact, deterministic part of them. Connection `c`
/// of the whole load belongs to shard `c % count` (striped), so shard `i` holds the
/// connections `i, i + count, i + 2·count, ...`; the first `total % count` shards hold one
/// more than the rest. Since an open-loop message belongs to the connection that sends it,
/// the shards' schedules together are exactly the schedule of one process with every
/// connection (see `wsbench_loadgen::schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Checks `index < count` and `count >= 1`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!("shard {index} does not exist among {count} shards (they count 0 to {})", count - 1));
        }
        Ok(Self { index, count })
    }

    /// How many of `total` items (connections, or an allowance of failed ones) this shard
    /// takes: `total / count`, plus one for the first `total % count` shards.
    pub fn share(self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }

    /// The whole load's number for this shard's `local`-th connection.
    pub fn global_index(self, local: u32) -> u64 {
        u64::from(self.index) + u64::from(local) * u64::from(self.count)
    }

    /// True when the whole load's connection `global` is this shard's.
    pub fn owns(self, global: u64) -> bool {
        global % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `i/n`, e.g. `0/2` for the first of two shards.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard; write INDEX/COUNT, e.g. 0/2 for the first of two");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        Self::new(i, n)
    }
}

/// Other people's protocols: each message is rendered from a template instead of carrying
/// wsbench's header, and each reply is paired with its request by a correlation rule that finds
/// the request's sequence number in it (see the load generator's `template` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    /// The message, with placeholders `{seq}`, `{conn}`, `{ts_ns}` and `{rand:N}`.
    pub template: String,
    /// How a reply names the request it answers.
    #[serde(flatten)]
    pub correlation: Correlation,
}

/// Where a reply carries the sequence number of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correlation {
    /// A JSON pointer (RFC 6901, e.g. `/id`) to an integer, or a string of digits.
    MatchJson(String),
    /// A regular expression whose first capture group is the number (e.g. `"id":(\d+)`).
    MatchRegex(String),
}

impl Foreign {
    /// The load generator's flags for these settings.
    pub fn to_args(&self) -> Vec<String> {
        let (flag, value) = match &self.correlation {
            Correlation::MatchJson(p) => ("--match-json", p),
            Correlation::MatchRegex(r) => ("--match-regex", r),
        };
        vec!["--template".into(), self.template.clone(), flag.into(), value.clone()]
    }
}

/// The longest `spin` (see [`LoadPlan::spin`]): spinning longer only burns a core.
pub const MAX_SPIN: Duration = Duration::from_millis(1);

/// The longest explicit `coalesce` (see [`Coalesce`]): a send may be this late by design.
pub const MAX_COALESCE: Duration = Duration::from_millis(10);

/// How an open-loop worker groups its timer's firings.
///
/// Every firing costs a wake-up (on a virtual machine a VM exit, about 9 µs of CPU here), so a
/// worker whose deadlines are 50 µs apart pays one per message. Coalescing lets one firing serve
/// every send due within a period, at the price of sending up to that period late: the lag is
/// measured (send lag) and charged to latency, which is timed from the intended send time, so
/// no result is flattered. tcpkali paces this way with a period of 1 ms (libev's epoll timeouts
/// are whole milliseconds), which is why its CPU per message is low at moderate rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Coalesce {
    /// Firings at least 200 µs apart for a worker whose deadlines come faster than 50,000 per
    /// second and that does not spin; each deadline as it is otherwise.
    #[default]
    Auto,
    /// Firings at least this far apart (zero: never coalesce, each deadline as it is).
    Every(Duration),
}

impl std::str::FromStr for Coalesce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "auto" {
            return Ok(Self::Auto);
        }
        let d = crate::units::parse_duration(s).map_err(|e| format!("{e}, or `auto`"))?;
        if d > MAX_COALESCE {
            return Err(format!("{} is more than {}: every send would be that late by design", format_duration(d), format_duration(MAX_COALESCE)));
        }
        Ok(Self::Every(d))
    }
}

impl Coalesce {
    /// The period asked for, when one is (not `auto`, not zero).
    pub fn period(self) -> Option<Duration> {
        match self {
            Self::Every(d) if !d.is_zero() => Some(d),
            _ => None,
        }
    }
}

/// Why open-loop pacing as asked cannot be kept, worded after "`spin` and `coalesce` ...":
/// spinning contradicts a coalescing period, and fan-out workloads pace their publishers
/// otherwise, so either knob would be ignored there. `None` when the two can be kept.
pub fn pacing_conflict(spin: Duration, coalesce: Coalesce, workload: Workload) -> Option<String> {
    if workload.is_fanout() && (!spin.is_zero() || coalesce != Coalesce::Auto) {
        return Some(format!("pace the echo load's send clock; workload `{}` paces its publishers otherwise and would ignore them", workload.name()));
    }
    (!spin.is_zero() && coalesce.period().is_some()).then(|| "exclude each other: spinning sends each message to the microsecond, coalescing gives that up".into())
}

impl std::fmt::Display for Coalesce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Every(d) => f.write_str(&format_duration(*d)),
        }
    }
}

impl TryFrom<String> for Coalesce {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Coalesce> for String {
    fn from(c: Coalesce) -> String {
        c.to_string()
    }
}

/// Everything a load-generator process needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPlan {
    pub url: String,
    /// Connections the process holds; with a connection ramp, the most open at once (see
    /// [`LoadPlan::start_connections`]).
    pub connections: u32,
    /// Connection ramps: connections open when the warm-up begins, from which the first stage
    /// ramps (the load's `connections` as written). Absent: `connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_connections: Option<u32>,
    /// New connections opened per second while connecting.
    pub connect_rate: f64,
    /// Message size in bytes, header included (at least [`crate::header::HEADER_LEN`]).
    pub size: u64,
    pub mode: Mode,
    /// Client implementation. Absent from results written before the zero-alloc client existed;
    /// those runs used tungstenite.
    #[serde(default)]
    pub engine: Engine,
    #[serde(with = "serde_duration")]
    pub duration: Duration,
    #[serde(with = "serde_duration")]
    pub warmup: Duration,
    /// Closed loop: messages outstanding per connection. Ignored when `rate` is set.
    pub in_flight: u32,
    /// Open loop: messages per second over all connections of this process.
    pub rate: Option<f64>,
    /// Worker threads, each with its own runtime and its share of the connections.
    pub threads: usize,
    /// How long to wait for outstanding echoes after the measured window before counting them lost.
    #[serde(with = "serde_duration")]
    pub drain_timeout: Duration,
    /// Length of one histogram interval: one interval-log entry and one `intervals.csv` row each.
    /// Shorter than the period of a periodic stall, it shows the stall as stripes in the heat map.
    #[serde(with = "serde_duration", default = "default_interval")]
    pub interval: Duration,
    /// Share of the measured messages (0 to 1) that may go unanswered before the run fails (exit 1).
    #[serde(default)]
    pub max_loss: f64,
    /// Connections of the plan that may fail to open before the run fails (exit 1).
    #[serde(default)]
    pub max_failed_connections: u32,
    /// Worker threads run under the real-time `SCHED_FIFO` policy (needs `CAP_SYS_NICE`), so a
    /// busy machine wakes them on time: on a shared 2-core machine it is the difference between
    /// send lag of milliseconds and of tens of microseconds.
    #[serde(default)]
    pub realtime: bool,
    /// Open loop: each worker's timer fires this long before a send is due and the rest is spun,
    /// trading CPU for punctual sends (zero: sleep until the deadline).
    #[serde(with = "serde_duration", default)]
    pub spin: Duration,
    /// Open loop: how each worker groups its timer's firings (see [`Coalesce`]).
    #[serde(default)]
    pub coalesce: Coalesce,
    /// This process is one shard of a larger load: `connections`, `connect_rate`, `rate` and
    /// `max_failed_connections` are the whole load's, and the shard takes its part of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Wall-clock instant (RFC 3339) at which the warm-up begins, shared by every shard so
    /// their schedules line up; absent: as soon as the connections are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// `wss://` only: trust the CA certificate(s) in this PEM file instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `wss://` only: accept any server certificate (self-signed test servers).
    #[serde(default)]
    pub insecure: bool,
    /// Extra handshake request headers. Results record their names only: values are often
    /// credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "redacted_headers")]
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered in the handshake, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subprotocols: Vec<String>,
    /// Mint a time-limited token ([`crate::token`]) for every connection's upgrade URL with
    /// the secret in this file. Results record the file's name, never its contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<PathBuf>,
    /// Offer permessage-deflate with these parameters (zero-alloc engine only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflate: Option<crate::codec::deflate::DeflateConfig>,
    /// The server workload this load drives: echo (round trips), or broadcast, push or sink
    /// (one-way latency). Absent from results written before fan-out existed: echo.
    #[serde(default)]
    pub workload: Workload,
    /// Settings of the fan-out workloads.
    #[serde(default)]
    pub fanout: Fanout,
    /// Messages from a template, replies paired by a correlation rule (echo workload only);
    /// `mode` is the frame type. Absent: wsbench's own header and filler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<Foreign>,
    /// Connection churn: connections close and reopen during the run (off by default).
    #[serde(default, skip_serializing_if = "Churn::is_off")]
    pub churn: Churn,
    /// Open loop: k6-style stages over the measured window (empty: one steady `rate`). The rate
    /// moves linearly from the previous stage's rate (the first stage's from `rate`, which the
    /// warm-up runs at) to the stage's own over its duration; `duration` is their sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Idle warm-up probe (empty: an ordinary run): each connection, warmed by a few round
    /// trips, stays idle this long, then sends one message, for every idle time in turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "durations")]
    pub idle: Vec<Duration>,
    /// Client heartbeats: a ping every this long while a connection is idle (idle probe only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_duration::option")]
    pub ping_interval: Option<Duration>,
    /// TCP_NODELAY on the client's sockets (on unless `--no-nodelay`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nodelay: bool,
    /// Where an echo's arrival time comes from (`--rx-timestamps`).
    #[serde(default)]
    pub rx_timestamps: RxTimestamps,
    pub out: Option<PathBuf>,
}

/// Where the load generator takes an echo's arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RxTimestamps {
    /// The monotonic clock read when the echo is handled: the thread wakes for every echo.
    #[default]
    User,
    /// Open loop, zero-alloc client, `ws://`: the kernel's receive stamp, read at the worker's
    /// next wake-up (no wake-up for the echo itself); other connections fall back to `user`.
    Kernel,
}

impl RxTimestamps {
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Kernel => "kernel",
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

/// A list of durations as `["100ms", "1s"]`.
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(|d| crate::units::format_duration(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|s| crate::units::parse_duration(s).map_err(serde::de::Error::custom)).collect()
    }
}

/// One stage of a ramp (see [`LoadPlan::stages`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts; 0 makes the rate jump to `rate` at once (a step).
    #[serde(with = "serde_duration")]
    pub duration: Duration,
    /// Messages per second over all connections at the stage's end.
    pub rate: f64,
    /// Connections open at the stage's end (absent: as before it); the open count moves
    /// linearly from the previous stage's (the first stage's from the load's `connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// The most stages a ramp may have.
pub const MAX_STAGES: usize = 64;

impl Stage {
    /// `DURATION:RATE[:CONNECTIONS]`, as `--stage` takes it (e.g. `10s:2000:50`).
    pub fn to_arg(&self) -> String {
        let mut a = format!("{}:{}", format_duration(self.duration), self.rate);
        if let Some(c) = self.connections {
            a += &format!(":{c}");
        }
        a
    }

    /// The same stage with its rate scaled by `share` (a process's or shard's part of the load).
    pub fn scaled(&self, share: f64) -> Self {
        Self { rate: self.rate * share, ..*self }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: String| format!("--stage `{s}`: {why}; write DURATION:RATE[:CONNECTIONS], e.g. 10s:2000:50");
        let mut parts = s.split(':');
        let duration = crate::units::parse_duration(parts.next().unwrap_or("").trim()).map_err(bad)?;
        let rate = parts.next().ok_or_else(|| bad("no rate".into()))?.trim().parse::<f64>().map_err(|e| bad(format!("the rate is not a number ({e})")))?;
        let connections = parts.next().map(|c| c.trim().parse::<u32>().map_err(|e| bad(format!("the connections are not a count ({e})")))).transpose()?;
        if parts.next().is_some() {
            return Err(bad("too many parts".into()));
        }
        Ok(Self { duration, rate, connections })
    }
}

/// Checks a ramp against the rest of the load; `Ok` with the measured window's length (the
/// stages' sum). The error speaks of `what` (`--stage` or `load key \`stages\``).
pub fn check_stages(stages: &[Stage], rate: Option<f64>, what: &str) -> Result<Duration, String> {
    if stages.len() > MAX_STAGES {
        return Err(format!("{what}: {} stages; at most {MAX_STAGES}", stages.len()));
    }
    if rate.is_none() {
        return Err(format!("{what} ramps the open-loop rate from `rate`, which is not given; give the rate the warm-up runs at and the first stage starts from"));
    }
    for (i, st) in stages.iter().enumerate() {
        if !(st.rate >= 0.0 && st.rate.is_finite()) {
            return Err(format!("{what} {}: rate {} must be 0 or more messages per second", i + 1, st.rate));
        }
        if st.connections == Some(0) {
            return Err(format!("{what} {}: connections 0; a stage keeps at least one connection open (ramp the rate to 0 to pause sending)", i + 1));
        }
    }
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    if total.is_zero() {
        return Err(format!("{what}: the stages last 0s together; give at least one a duration"));
    }
    Ok(total)
}

/// Connection churn: each connection closes cleanly (1000) after `reconnect_after` messages or
/// after its lifetime, whichever comes first, and a new one opens in its place (same place in
/// the send schedule), so the server's accept and handshake path works under load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Churn {
    /// Messages sent on one connection before it is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_after: Option<u64>,
    /// How long one connection lives before it is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_duration::option")]
    pub connection_lifetime: Option<Duration>,
    /// Each lifetime is drawn uniformly within ± this share of `connection_lifetime` (0 to 1),
    /// so connections opened together do not all close together.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lifetime_jitter: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Churn {
    /// True when connections are never replaced.
    pub fn is_off(&self) -> bool {
        self.reconnect_after.is_none() && self.connection_lifetime.is_none()
    }

    /// The load generator's flags for these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(n) = self.reconnect_after {
            a.extend(["--reconnect-after".into(), n.to_string()]);
        }
        if let Some(d) = self.connection_lifetime {
            a.extend(["--connection-lifetime".into(), format_duration(d)]);
        }
        if self.lifetime_jitter > 0.0 {
            a.extend(["--lifetime-jitter".into(), self.lifetime_jitter.to_string()]);
        }
        a
    }

    /// Checks the settings; the error names the flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.reconnect_after == Some(0) {
            return Err("--reconnect-after must be at least 1 message".into());
        }
        if self.connection_lifetime.is_some_and(|d| d < Duration::from_millis(10)) {
            return Err("--connection-lifetime must be at least 10ms: shorter, a connection spends its life opening and closing".into());
        }
        if !(0.0..=1.0).contains(&self.lifetime_jitter) {
            return Err(format!("--lifetime-jitter is {}; give a share between 0 and 100 %", self.lifetime_jitter));
        }
        if self.lifetime_jitter > 0.0 && self.connection_lifetime.is_none() {
            return Err("--lifetime-jitter applies to --connection-lifetime, which is not given".into());
        }
        Ok(())
    }
}

/// What a header's value is replaced with in results.
pub const REDACTED: &str = "<redacted>";

/// Headers as `"Name: value"` strings, each value written as [`REDACTED`].
mod redacted_headers {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(headers: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(headers.iter().map(|(name, _)| format!("{name}: {}", super::REDACTED)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        let lines = Vec::<String>::deserialize(d)?;
        lines.iter().map(|l| super::parse_header(l).map_err(serde::de::Error::custom)).collect()
    }
}

/// `Name: value` (as curl's `-H` takes it) into its name and trimmed value.
pub fn parse_header(line: &str) -> Result<(String, String), String> {
    let (name, value) = line.split_once(':').ok_or_else(|| format!("header `{line}` has no `:`; write it as 'Name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("header `{line}` has no name; write it as 'Name: value'"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// One second: the HdrHistogram tools' habit, and results written before `interval` existed.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Shorter intervals would measure the timer more than the server.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

fn default_interval() -> Duration {
    DEFAULT_INTERVAL
}

impl Default for LoadPlan {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:9001/".into(),
            connections: 10,
            start_connections: None,
            connect_rate: 1000.0,
            size: 32,
            mode: Mode::Binary,
            engine: Engine::default(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            in_flight: 1,
            rate: None,
            threads: 1,
            drain_timeout: Duration::from_secs(2),
            interval: DEFAULT_INTERVAL,
            max_loss: 0.0,
            max_failed_connections: 0,
            realtime: false,
            spin: Duration::ZERO,
            coalesce: Coalesce::Auto,
            shard: None,
            start_at: None,
            ca: None,
            insecure: false,
            headers: Vec::new(),
            subprotocols: Vec::new(),
            token_secret: None,
            deflate: None,
            workload: Workload::Echo,
            fanout: Fanout::default(),
            foreign: None,
            churn: Churn::default(),
            stages: Vec::new(),
            idle: Vec::new(),
            ping_interval: None,
            nodelay: true,
            rx_timestamps: RxTimestamps::default(),
            out: None,
        }
    }
}

impl LoadPlan {
    /// Connections open when the warm-up begins.
    pub fn first_connections(&self) -> u32 {
        self.start_connections.unwrap_or(self.connections)
    }

    /// The fewest connections open at once anywhere on the ramp (all of them without one):
    /// every shard or process of a ramped load needs one open at every instant.
    pub fn fewest_connections(&self) -> u32 {
        self.stages.iter().filter_map(|s| s.connections).fold(self.first_connections(), u32::min)
    }

    /// True when a stage moves the number of open connections.
    pub fn ramps_connections(&self) -> bool {
        let first = self.first_connections();
        self.stages.iter().any(|s| s.connections.is_some_and(|c| c != first))
    }

    /// The same plan with `connections` (the count at the start) ramped by its stages: the most
    /// open at once become `connections`, the count at the start `start_connections`.
    pub fn with_connection_ramp(mut self) -> Self {
        let first = self.first_connections();
        let most = self.stages.iter().filter_map(|s| s.connections).fold(first, u32::max);
        self.connections = most;
        self.start_connections = (most != first).then_some(first);
        self
    }

    /// The `wsbench loadgen` / `wsbench-loadgen` arguments that reproduce this plan.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--url".into(),
            self.url.clone(),
            "--connections".into(),
            self.first_connections().to_string(),
            "--connect-rate".into(),
            self.connect_rate.to_string(),
            "--size".into(),
            self.size.to_string(),
            match self.mode {
                Mode::Binary => "--binary".into(),
                Mode::Text => "--text".into(),
            },
            "--engine".into(),
            self.engine.name().into(),
            "--duration".into(),
            format_duration(self.duration),
            "--warmup".into(),
            format_duration(self.warmup),
            "--in-flight".into(),
            self.in_flight.to_string(),
            "--threads".into(),
            self.threads.to_string(),
            "--drain-timeout".into(),
            format_duration(self.drain_timeout),
            "--interval".into(),
            format_duration(self.interval),
            "--max-loss".into(),
            self.max_loss.to_string(),
            "--max-failed-connections".into(),
            self.max_failed_connections.to_string(),
        ];
        if let Some(r) = self.rate {
            a.extend(["--rate".into(), r.to_string()]);
        }
        if self.realtime {
            a.push("--realtime".into());
        }
        if !self.spin.is_zero() {
            a.extend(["--spin".into(), format_duration(self.spin)]);
        }
        if self.coalesce != Coalesce::Auto {
            a.extend(["--coalesce".into(), self.coalesce.to_string()]);
        }
        if let Some(shard) = self.shard {
            a.extend(["--shard".into(), shard.to_string()]);
        }
        if let Some(t) = &self.start_at {
            a.extend(["--start-at".into(), t.clone()]);
        }

        if let Some(ca) = &self.ca {
            a.extend(["--ca".into(), ca.display().to_string()]);
        }
        if self.insecure {
            a.push("--insecure".into());
        }
        for (name, value) in &self.headers {
            a.extend(["--header".into(), format!("{name}: {value}")]);
        }
        if !self.subprotocols.is_empty() {
            a.extend(["--subprotocol".into(), self.subprotocols.join(",")]);
        }
        if let Some(secret) = &self.token_secret {
            a.extend(["--token-secret".into(), secret.display().to_string()]);
        }
        if let Some(d) = &self.deflate {
            a.extend(d.to_args());
        }

        if self.workload.is_fanout() {
            a.extend(["--workload".into(), self.workload.name().into()]);
            a.extend(self.fanout.to_args(self.workload, true));
        }
        if let Some(f) = &self.foreign {
            a.extend(f.to_args());
        }
        a.extend(self.churn.to_args());
        for st in &self.stages {
            a.extend(["--stage".into(), st.to_arg()]);
        }
        if !self.idle.is_empty() {
            a.extend(["--idle".into(), self.idle.iter().map(|d| format_duration(*d)).collect::<Vec<_>>().join(",")]);
        }
        if let Some(p) = self.ping_interval {
            a.extend(["--ping-interval".into(), format_duration(p)]);
        }
        if !self.nodelay {
            a.push("--no-nodelay".into());
        }
        if self.rx_timestamps != RxTimestamps::default() {
            a.extend(["--rx-timestamps".into(), self.rx_timestamps.name().into()]);
        }
        if let Some(out) = &self.out {
            a.extend(["--out".into(), out.display().to_string()]);
        }
        a
    }

    /// The part of this plan one process carries out: for a shard, its share of the
    /// connections, of the connect rate, of the open-loop rate (in proportion to its
    /// connections, so every connection sends at the same rate as in one process) and of the
    /// allowance of failed connections, with `shard` cleared; otherwise the plan itself.
    pub fn shard_part(&self) -> LoadPlan {
        let Some(shard) = self.shard else { return self.clone() };
        let connections = shard.share(self.connections);
        let part = f64::from(connections) / f64::from(self.connections.max(1));
        LoadPlan {
            connections,
            connect_rate: self.connect_rate * part,
            rate: self.rate.map(|r| r * part),
            // A connection ramp's places split as connections do: the shard's share of each count.
            stages: self.stages.iter().map(|st| Stage { connections: st.connections.map(|c| shard.share(c)), ..st.scaled(part) }).collect(),
            start_connections: self.start_connections.map(|c| shard.share(c)),
            max_failed_connections: shard.share(self.max_failed_connections),
            shard: None,
            ..self.clone()
        }
    }

    /// True for an open-loop (fixed rate) plan.
    pub fn is_open_loop(&self) -> bool {
        self.rate.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for r in [Runtime::CurrentThread, Runtime::MultiThread] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.name());
        }
        assert_eq!(Runtime::CurrentThread.name(), "current-thread");
        assert_eq!(Engine::Tungstenite.name(), "tungstenite");
        assert_eq!(Mode::Text.name(), "text");
        for h in [Handler::ZeroAlloc, Handler::Alloc] {
            assert_eq!(serde_json::to_value(h).unwrap(), h.name());
        }
    }

    #[test]
    fn args_carry_pause_and_rate() {
        let s = ServerPlan { pause: Some(Pause { every: Duration::from_secs(1), pause_for: Duration::from_millis(50) }), ..Default::default() };
        let a = s.to_args().join(" ");
        assert!(a.contains("--pause-every 1s --pause-for 50ms"), "{a}");
        let l = LoadPlan { rate: Some(2000.0), ..Default::default() };
        assert!(l.to_args().join(" ").contains("--rate 2000"));
        let l = LoadPlan { engine: Engine::ZeroAlloc, ..Default::default() };
        assert!(l.to_args().join(" ").contains("--engine zero-alloc"));
    }

    #[test]
    fn shard_shares_add_up_to_the_whole_for_every_remainder() {
        for count in 1..=17u32 {
            for total in 0..=200u32 {
                let shares: Vec<u32> = (0..count).map(|i| Shard::new(i, count).unwrap().share(total)).collect();
                assert_eq!(shares.iter().sum::<u32>(), total, "{total} over {count}");
                // Deterministic remainders: the first `total % count` shards take one more.
                for (i, s) in shares.iter().enumerate() {
                    assert_eq!(*s, total / count + u32::from((i as u32) < total % count), "{total} over {count}, shard {i}");
                }
                // Striping: every connection of the whole belongs to exactly one shard, and each
                // shard's numbering reaches exactly its own connections.
                let mut owner = vec![None; total as usize];
                for i in 0..count {
                    let shard = Shard::new(i, count).unwrap();
                    for local in 0..shard.share(total) {
                        let g = shard.global_index(local);
                        assert!(g < u64::from(total), "{total} over {count}: shard {i} local {local} -> {g}");
                        assert!(shard.owns(g));
                        assert_eq!(owner[g as usize].replace(i), None, "{total} over {count}: connection {g} twice");
                    }
                }
                assert!(owner.iter().all(Option::is_some), "{total} over {count}: a connection without a shard");
            }
        }
    }

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
        for bad in ["4/4", "0/0", "1", "a/2", "-1/2", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("2/2".parse::<Shard>().unwrap_err().contains("0 to 1"));
    }

    #[test]
    fn a_shard_part_takes_its_share_of_the_whole() {
        let whole = LoadPlan { connections: 5, connect_rate: 100.0, rate: Some(1_000.0), max_failed_connections: 3, ..Default::default() };
        let parts: Vec<_> = (0..2).map(|i| LoadPlan { shard: Some(Shard::new(i, 2).unwrap()), ..whole.clone() }.shard_part()).collect();
        assert_eq!(parts.iter().map(|p| p.connections).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(parts.iter().map(|p| p.max_failed_connections).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(parts.iter().map(|p| p.rate.unwrap()).sum::<f64>(), 1_000.0);
        assert_eq!(parts[0].rate, Some(600.0), "in proportion to connections");
        assert_eq!(parts.iter().map(|p| p.connect_rate).sum::<f64>(), 100.0);
        assert!(parts.iter().all(|p| p.shard.is_none()));
        assert_eq!(whole.shard_part(), whole);
    }

    #[test]
    fn a_shard_of_a_connection_ramp_takes_its_places_of_every_count() {
        // 4 -> 12 -> 4 in 2 shards: shard 0 holds places 0, 2, 4, ..., shard 1 places 1, 3, ...
        let st = |c: u32| Stage { duration: Duration::from_secs(1), rate: 1_200.0, connections: Some(c) };
        let whole = LoadPlan { connections: 4, rate: Some(1_200.0), stages: vec![st(12), st(4)], ..Default::default() }.with_connection_ramp();
        assert_eq!((whole.connections, whole.first_connections(), whole.fewest_connections()), (12, 4, 4));
        let parts: Vec<_> = (0..2).map(|i| LoadPlan { shard: Some(Shard::new(i, 2).unwrap()), ..whole.clone() }.shard_part()).collect();
        for p in &parts {
            assert_eq!((p.connections, p.first_connections()), (6, 2));
            assert_eq!(p.stages.iter().map(|s| s.connections).collect::<Vec<_>>(), [Some(6), Some(2)]);
            assert_eq!(p.stages.iter().map(|s| s.rate).collect::<Vec<_>>(), [600.0, 600.0]);
        }
        let odd = LoadPlan { connections: 5, rate: Some(1_000.0), stages: vec![st(7)], ..Default::default() }.with_connection_ramp();
        let parts: Vec<_> = (0..3).map(|i| LoadPlan { shard: Some(Shard::new(i, 3).unwrap()), ..odd.clone() }.shard_part()).collect();
        assert_eq!(parts.iter().map(|p| p.first_connections()).collect::<Vec<_>>(), [2, 2, 1], "places 0,3 / 1,4 / 2");
        assert_eq!(parts.iter().map(|p| p.connections).collect::<Vec<_>>(), [3, 2, 2], "places 0,3,6 / 1,4 / 2,5");
    }

    #[test]
    fn header_values_never_reach_results() {
        let l = LoadPlan { headers: vec![("Authorization".into(), "Bearer s3cret".into())], subprotocols: vec!["a".into(), "b".into()], ..Default::default() };
        let json = serde_json::to_string(&l).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(json.contains("\"Authorization: <redacted>\""), "{json}");
        let args = l.to_args().join(" ");
        assert!(args.contains("--header Authorization: Bearer s3cret") && args.contains("--subprotocol a,b"), "{args}");
        assert_eq!(parse_header("X-A:  b c ").unwrap(), ("X-A".into(), "b c".into()));
        assert!(parse_header("nocolon").unwrap_err().contains("Name: value"));
    }

    #[test]
    fn load_plans_without_an_engine_read_as_tungstenite() {
        let mut v = serde_json::to_value(LoadPlan { engine: Engine::ZeroAlloc, ..Default::default() }).unwrap();
        assert_eq!(v["engine"], "zero-alloc");
        v.as_object_mut().unwrap().remove("engine");
        let old: LoadPlan = serde_json::from_value(v).unwrap();
        assert_eq!(old.engine, Engine::Tungstenite);
    }
}

//! The load generator's command line, and its conversion into a [`LoadPlan`].
//!
//! Flag names are exactly those [`LoadPlan::to_args`] produces, so the orchestrator can start a
//! process from a plan and the process records an equal plan in its result. clap reports
//! malformed flags itself (exit code 2); [`LoadgenArgs::into_plan`] checks what clap cannot, such
//! as the smallest message size, and the caller exits with code 2 on its error too.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsbench_core::header::HEADER_LEN;
use wsbench_core::plan::{Churn, Correlation, Engine, Fanout, Foreign, LoadPlan, Mode, RxTimestamps, Shard, Stage, Workload, MIN_INTERVAL};
use wsbench_core::token::TokenSecret;
use wsbench_core::units::{format_duration, parse_duration, parse_share, parse_size};

use crate::transport::{Target, Trust};

/// Largest message the load generator sends; larger ones would only measure memory copies.
pub const MAX_SIZE: u64 = 64 << 20;

/// Options of `wsbench loadgen` / `wsbench-loadgen`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct LoadgenArgs {
    /// WebSocket URL of the server under test: ws:// or wss:// (TLS).
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001/")]
    pub url: String,

    /// Connections to open. With a connection ramp (--stage DURATION:RATE:CONNECTIONS), the
    /// connections open during the warm-up, from which the first stage ramps.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub connections: u32,

    /// New connections opened per second while connecting.
    #[arg(long, value_name = "PER_S", default_value_t = 1000.0)]
    pub connect_rate: f64,

    /// Message size in bytes, 32-byte header included (e.g. 32, 1KiB, 64KiB).
    #[arg(long, value_name = "BYTES", default_value = "32", value_parser = parse_size)]
    pub size: u64,

    /// Send text frames.
    #[arg(long, conflicts_with = "binary")]
    pub text: bool,

    /// Send binary frames (the default).
    #[arg(long)]
    pub binary: bool,

    /// Client implementation: tungstenite (the reference) or zero-alloc (wsbench-core's frame
    /// codec on a raw socket, frames built once per connection and stamped in place).
    #[arg(long, value_name = "ENGINE", default_value = "tungstenite", value_parser = parse_engine)]
    pub engine: Engine,

    /// Length of the measured window (e.g. 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Warm-up before the measured window; its messages are echoed but not recorded.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Closed loop: messages outstanding per connection (ignored with --rate).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub in_flight: u32,

    /// Open loop: messages per second over all connections of this process.
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<f64>,

    /// Worker threads, each with its own tokio runtime and an equal share of the connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,

    /// How long to wait for outstanding echoes after the window before counting them lost.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Histogram interval: one interval-log entry and one intervals.csv row each (at least
    /// 50ms). Shorter than the period of a periodic stall, it shows the stall as stripes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Share of the measured messages that may go unanswered before the run fails with exit
    /// code 1, e.g. 0.1% or 0.001 (default 0: any unanswered message fails the run).
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub max_loss: f64,

    /// Connections that may fail to open before the run fails with exit code 1 (default 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_failed_connections: u32,

    /// Run the worker threads under the real-time SCHED_FIFO policy (needs root or
    /// CAP_SYS_NICE), so that on a busy machine they wake on time and the send lag stays low.
    #[arg(long)]
    pub realtime: bool,

    /// Wake this long before each send is due and spin the rest (e.g. 20us, at most 1ms): sends
    /// leave closer to their intended time at the cost of CPU. Default 0: sleep until due.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub spin: Duration,

    /// Open loop: let one timer firing serve every send due within this period (e.g. 1ms),
    /// saving a wake-up per message at the price of sending up to that late (measured as send
    /// lag and charged to latency) and of offering the server each period's sends as one burst.
    /// `0s`: never; `auto` (default): 200us for a worker above 50,000 msgs/s that does not spin,
    /// never otherwise. At most 10ms.
    #[arg(long, value_name = "DURATION|auto", default_value = "auto")]
    pub coalesce: wsbench_core::plan::Coalesce,

    /// Be shard INDEX/COUNT (e.g. 0/2) of a load split over several processes or hosts:
    /// --connections, --connect-rate, --rate and --max-failed-connections then give the whole
    /// load, and this process takes its exact part (connections INDEX, INDEX+COUNT, ...; the
    /// shards' open-loop schedules together are the one-process schedule; on a connection
    /// ramp, its places INDEX, INDEX+COUNT, ... of every open count). Results go to
    /// OUT/shard-INDEX/.
    #[arg(long, value_name = "INDEX/COUNT", value_parser = parse_shard, conflicts_with = "shards")]
    pub shard: Option<Shard>,

    /// As --shard, with INDEX read from the JOB_COMPLETION_INDEX environment variable that a
    /// Kubernetes Indexed Job sets in each pod.
    #[arg(long, value_name = "COUNT")]
    pub shards: Option<u32>,

    /// Begin the warm-up at this wall-clock instant (RFC 3339 UTC, e.g. 2026-11-29T04:00:00Z),
    /// the same for every shard so their schedules line up: connect shortly before it, then
    /// wait. A process that can begin only more than one --interval after it says so, is
    /// marked late in summary.json and exits 1.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// wss:// only: trust the CA certificate(s) in this PEM file instead of the system's roots
    /// (for a server whose certificate a private CA issued, or a self-signed one).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// wss:// only: accept any server certificate without checking who issued it or whom it
    /// names. For self-signed test servers; the run warns and records `tls.insecure: true`.
    #[arg(long)]
    pub insecure: bool,

    /// An extra handshake header, as 'Name: value' (repeatable). Results record the name only.
    /// Headers also come from --header-file and from the WSBENCH_HEADERS environment variable
    /// (one per line), which keeps secrets off the command line.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// A file of handshake headers, one 'Name: value' per line; blank lines and lines starting
    /// with # are skipped.
    #[arg(long, value_name = "FILE")]
    pub header_file: Option<PathBuf>,

    /// Subprotocols to offer, in order of preference (e.g. chat,superchat); the server's choice
    /// is recorded in the summary.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub subprotocol: Vec<String>,

    /// Add ?token=<expiry>.<mac> to every connection's upgrade URL, minted for it (valid 60s)
    /// with the HMAC secret in this file, as `wsbench server --token-secret` asks. Results
    /// record the file's name only.
    #[arg(long, value_name = "FILE")]
    pub token_secret: Option<PathBuf>,

    /// Offer permessage-deflate (RFC 7692) and compress every message when the server agrees
    /// (--engine zero-alloc only: tungstenite 0.29 cannot, so that engine never offers it).
    #[arg(long)]
    pub deflate: bool,

    /// Ask the server to compress with at most this window (9-15 bits).
    #[arg(long, value_name = "BITS", requires = "deflate", value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_server_max_window_bits: Option<u8>,

    /// Compress with at most this window (9-15 bits; the server may ask for less).
    #[arg(long, value_name = "BITS", requires = "deflate", value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_client_max_window_bits: Option<u8>,

    /// Ask the server to reset its compressor after every message.
    #[arg(long, requires = "deflate")]
    pub deflate_server_no_context_takeover: bool,

    /// Reset our compressor after every message.
    #[arg(long, requires = "deflate")]
    pub deflate_client_no_context_takeover: bool,

    /// Folder for summary.json, intervals.csv and the .hlog files (created if missing); without
    /// it the summary is printed on stdout and nothing is written.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// What the server does with messages: echo (round trips), or broadcast, push or sink
    /// (one-way latency; give the server the same --workload).
    #[arg(long, value_name = "WORKLOAD", default_value = "echo", value_parser = parse_workload)]
    pub workload: Workload,

    /// Broadcast: rooms; connection i joins /room/<i % N> (the server's --rooms, at least N).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rooms: u32,

    /// Broadcast: connections that publish (the first N; every connection subscribes). --rate
    /// is shared by them.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub publishers: u32,

    /// Broadcast: the server delivers to the sender too (as its --echo-to-sender).
    #[arg(long)]
    pub echo_to_sender: bool,

    /// Push: the server's --push-rate (messages per second per connection), to know what to expect.
    #[arg(long, value_name = "RATE", default_value_t = 100.0)]
    pub push_rate: f64,

    /// Measure a server that speaks its own protocol: send this template instead of wsbench's
    /// header (text frames unless --template-binary), with placeholders {seq} (the message's
    /// number on its connection: 0, 1, 2, ...), {conn} (the connection's number in this
    /// process), {ts_ns} (intended send time, monotonic ns) and {rand:N} (N random letters and
    /// digits, seeded per connection). Needs --match-json or --match-regex; --size is ignored.
    /// Runs on the tungstenite client (what a typical client is), open or closed loop.
    #[arg(long, value_name = "TEXT", conflicts_with = "template_file")]
    pub template: Option<String>,

    /// As --template, read from a file (UTF-8; a final newline is kept).
    #[arg(long, value_name = "FILE")]
    pub template_file: Option<PathBuf>,

    /// Send the template as binary frames.
    #[arg(long)]
    pub template_binary: bool,

    /// Find the request a reply answers at this JSON pointer (e.g. /id): an integer or a string
    /// of digits, the {seq} of the request. Replies naming a request never sent (or with a
    /// value that is no number, or not JSON) count as `unmatched` and fail the run beyond
    /// --max-loss; frames without the field (server pushes) or naming a request already
    /// answered count as `unsolicited`.
    #[arg(long, value_name = "POINTER", conflicts_with = "match_regex")]
    pub match_json: Option<String>,

    /// As --match-json, with a regular expression whose first capture group is the number,
    /// e.g. '"id":(\d+)'.
    #[arg(long, value_name = "REGEX")]
    pub match_regex: Option<String>,

    /// Churn: close each connection cleanly (1000) after it has sent N messages and open a new
    /// one in its place (the same place in the send schedule), so the server's accept and
    /// handshake path is under load. Both client engines.
    #[arg(long, value_name = "N")]
    pub reconnect_after: Option<u64>,

    /// Churn: close each connection cleanly after it has been open this long (e.g. 30s) and
    /// open a new one in its place. With --reconnect-after, whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub connection_lifetime: Option<Duration>,

    /// Draw each connection's lifetime uniformly within ± this share of --connection-lifetime
    /// (e.g. 10%), so connections opened together do not all close together.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub lifetime_jitter: f64,

    /// Open loop: a stage of a ramp, DURATION:RATE[:CONNECTIONS] (repeatable, e.g. --stage
    /// 10s:2000 --stage 0s:8000 --stage 10s:8000). The rate moves linearly from the previous
    /// stage's (the first from --rate, which the warm-up runs at) to RATE over DURATION; 0s
    /// makes a step. --duration becomes the stages' sum. CONNECTIONS moves the number of open
    /// connections linearly the same way, from the previous stage's (the first from
    /// --connections) to CONNECTIONS (at least 1): connections open as the ramp reaches them
    /// and close cleanly (1000) on the way down; the rate is shared by those open. With
    /// --shard, every shard runs the whole ramp and holds its places of every count; with
    /// churn, open connections churn as without a ramp.
    #[arg(long = "stage", value_name = "DURATION:RATE[:CONNECTIONS]")]
    pub stages: Vec<Stage>,

    /// Idle warm-up probe instead of a load: every connection, warmed by a few round trips,
    /// stays idle for each of these times in turn (e.g. 100ms,1s,5s) and then sends one
    /// message; summary.json `idle` gives that message's round trip per idle time.
    #[arg(long, value_name = "D1,D2,...", value_delimiter = ',', value_parser = parse_duration)]
    pub idle: Vec<Duration>,

    /// With --idle: send a ping every this long while idle (client heartbeats).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,

    /// Leave Nagle's algorithm on (no TCP_NODELAY on the client's sockets).
    #[arg(long)]
    pub no_nodelay: bool,

    /// Where an echo's arrival time comes from: `user` (the clock when the load generator
    /// handles it; the thread wakes for every echo) or `kernel` (open loop, zero-alloc engine,
    /// ws://: the kernel's receive stamp, read at the worker's next wake-up instead of waking
    /// for the echo; other connections fall back to user and summary.json says why).
    #[arg(long, value_name = "user|kernel", default_value = "user", value_parser = parse_rx_timestamps)]
    pub rx_timestamps: RxTimestamps,

    /// Run the Autobahn client cases against a fuzzing server at ADDR (host:port, e.g.
    /// `kosoku -m fuzzingserver`) instead of generating load; the other options are ignored.
    #[arg(long, value_name = "ADDR")]
    pub autobahn: Option<String>,

    /// The agent name the fuzzing server's report uses (with --autobahn).
    #[arg(long, value_name = "NAME", default_value = "wsbench-zero-alloc", requires = "autobahn")]
    pub agent: String,

    /// With --autobahn: offer permessage-deflate on every case (Autobahn's cases 12.* and 13.*).
    #[arg(long, requires = "autobahn")]
    pub autobahn_deflate: bool,
}

impl LoadgenArgs {
    /// Checks the options and resolves them into a plan; the error is one line saying what to change.
    pub fn into_plan(self) -> Result<LoadPlan, String> {
        let job_index = std::env::var(JOB_INDEX_VAR).ok();
        self.into_plan_with(job_index.as_deref())
    }

    /// As [`Self::into_plan`], with the value of `JOB_COMPLETION_INDEX` given.
    pub fn into_plan_with(self, job_index: Option<&str>) -> Result<LoadPlan, String> {
        let shard = match (self.shard, self.shards) {
            (Some(s), _) => Some(s),
            (None, Some(count)) => {
                let index = job_index.ok_or_else(|| format!("--shards {count} takes this shard's index from {JOB_INDEX_VAR}, which is not set; give --shard INDEX/{count} instead"))?;
                let index = index.trim().parse().map_err(|_| format!("{JOB_INDEX_VAR} is `{index}`, not a shard index (0, 1, ...)"))?;
                Some(Shard::new(index, count).map_err(|e| format!("--shards {count} with {JOB_INDEX_VAR}={index}: {e}"))?)
            }
            (None, None) => None,
        };
        let file = match &self.header_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("--header-file {}: {e}", path.display()))?),
            None => None,
        };
        let env = std::env::var(HEADERS_ENV).ok();
        let headers = collect_headers(&self.headers, file.as_deref(), env.as_deref())?;
        let template = match (self.template, &self.template_file) {
            (Some(t), _) => Some(t),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| format!("--template-file {}: {e}", path.display()))?),
            (None, None) => None,
        };
        let correlation = match (self.match_json, self.match_regex) {
            (Some(p), _) => Some(Correlation::MatchJson(p)),
            (None, Some(r)) => Some(Correlation::MatchRegex(r)),
            (None, None) => None,
        };
        let foreign = match (template, correlation) {
            (None, None) => None,
            (Some(template), Some(correlation)) => Some(Foreign { template, correlation }),
            (Some(_), None) => return Err("--template needs a correlation rule to pair replies with requests: --match-json /id or --match-regex '\"id\":(\\d+)'".into()),
            (None, Some(_)) => return Err("--match-json and --match-regex pair replies with the requests of a --template; give --template or --template-file".into()),
        };
        if self.template_binary && foreign.is_none() {
            return Err("--template-binary applies to --template or --template-file".into());
        }
        // A template is text unless said otherwise: JSON and most protocols are.
        let mode = match (&foreign, self.text) {
            (Some(_), _) if self.template_binary || self.binary => Mode::Binary,
            (Some(_), _) | (None, true) => Mode::Text,
            (None, false) => Mode::Binary,
        };
        if self.deflate && self.engine != Engine::ZeroAlloc {
            return Err(format!("--deflate needs --engine zero-alloc: the {} client (tungstenite 0.29) has no permessage-deflate and never offers it", self.engine.name()));
        }
        // With stages the measured window is theirs.
        let duration = if self.stages.is_empty() { self.duration } else { self.stages.iter().map(|s| s.duration).sum() };
        let plan = LoadPlan {
            url: self.url,
            connections: self.connections,
            connect_rate: self.connect_rate,
            size: self.size,
            mode,
            engine: self.engine,
            duration,
            warmup: self.warmup,
            in_flight: self.in_flight,
            rate: self.rate,
            threads: self.threads,
            drain_timeout: self.drain_timeout,
            interval: self.interval,
            max_loss: self.max_loss,
            max_failed_connections: self.max_failed_connections,
            realtime: self.realtime,
            spin: self.spin,
            coalesce: self.coalesce,
            shard,
            start_at: self.start_at,
            ca: self.ca,
            insecure: self.insecure,
            headers,
            subprotocols: self.subprotocol,
            token_secret: self.token_secret,
            deflate: self.deflate.then(|| wsbench_core::codec::deflate::DeflateConfig {
                server_max_window_bits: self.deflate_server_max_window_bits.unwrap_or(wsbench_core::codec::deflate::MAX_WINDOW_BITS),
                client_max_window_bits: self.deflate_client_max_window_bits,
                server_no_context_takeover: self.deflate_server_no_context_takeover,
                client_no_context_takeover: self.deflate_client_no_context_takeover,
            }),
            workload: self.workload,
            fanout: Fanout {
                rooms: self.rooms,
                echo_to_sender: self.echo_to_sender,
                publishers: self.publishers,
                push_rate: self.push_rate,
                ..Fanout::default()
            },
            foreign,
            stages: self.stages,
            idle: self.idle,
            ping_interval: self.ping_interval,
            nodelay: !self.no_nodelay,
            rx_timestamps: self.rx_timestamps,
            churn: Churn { reconnect_after: self.reconnect_after, connection_lifetime: self.connection_lifetime, lifetime_jitter: self.lifetime_jitter },
            out: self.out,
            start_connections: None,
        }
        .with_connection_ramp();
        validate(&plan)?;
        Ok(plan)
    }
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index.
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

/// The environment variable holding extra handshake headers, one `Name: value` per line.
pub const HEADERS_ENV: &str = "WSBENCH_HEADERS";

/// Headers from the command line, then the header file, then the environment, each `Name: value`.
fn collect_headers(cli: &[String], file: Option<&str>, env: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let lines = |text: &str| text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
    let mut all = Vec::new();
    for (from, list) in [("--header", cli.to_vec()), ("--header-file", file.map(lines).unwrap_or_default()), (HEADERS_ENV, env.map(lines).unwrap_or_default())] {
        for line in list {
            let (name, value) = wsbench_core::plan::parse_header(&line).map_err(|e| format!("{from}: {e}"))?;
            // The handshake's own headers are the engines' to write.
            if ["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions"].contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("{from}: `{name}` is set by the WebSocket handshake itself{}", if name.eq_ignore_ascii_case("sec-websocket-protocol") { "; use --subprotocol" } else { "" }));
            }
            all.push((name, value));
        }
    }
    Ok(all)
}

/// The transport target of a plan: address, TLS trust, headers and subprotocols. Fails on what
/// only shows once files are read (a CA file that is missing or holds no certificate).
pub fn target(plan: &LoadPlan) -> Result<Target, String> {
    let parts = url_parts(&plan.url)?;
    let trust = match (&plan.ca, plan.insecure) {
        (Some(ca), _) => Trust::Ca(ca),
        (None, true) => Trust::Insecure,
        (None, false) => Trust::System,
    };
    let secret = match &plan.token_secret {
        Some(path) => Some(TokenSecret::from_file(path).map_err(|e| format!("--token-secret: {e}"))?),
        None => None,
    };
    let mut target = Target::new(&plan.url, parts.addr, &parts.host, parts.secure, trust)?
        .with_headers(plan.headers.clone(), plan.subprotocols.clone())?
        .with_token(secret);
    target.deflate = plan.deflate;
    target.nodelay = plan.nodelay;
    Ok(target)
}

/// A workload's name as plans and results use it.
fn parse_workload(s: &str) -> Result<Workload, String> {
    [Workload::Echo, Workload::Broadcast, Workload::Push, Workload::Sink]
        .into_iter()
        .find(|w| w.name() == s)
        .ok_or_else(|| format!("unknown workload `{s}`; use echo, broadcast, push or sink"))
}

/// `tungstenite` or `zero-alloc`, the names plans and results use.
fn parse_engine(s: &str) -> Result<Engine, String> {
    [Engine::Tungstenite, Engine::ZeroAlloc]
        .into_iter()
        .find(|e| e.name() == s)
        .ok_or_else(|| format!("unknown engine `{s}`; use tungstenite or zero-alloc"))
}

/// `user` or `kernel`.
fn parse_rx_timestamps(s: &str) -> Result<RxTimestamps, String> {
    [RxTimestamps::User, RxTimestamps::Kernel]
        .into_iter()
        .find(|e| e.name() == s)
        .ok_or_else(|| format!("unknown receive timestamps `{s}`; use user or kernel"))
}

/// Checks a plan however it was made (command line or library call).
pub fn validate(plan: &LoadPlan) -> Result<(), String> {
    let parts = url_parts(&plan.url)?;
    if !parts.secure && (plan.ca.is_some() || plan.insecure) {
        return Err(format!("--ca and --insecure apply to wss:// URLs; `{}` is ws://", plan.url));
    }
    if plan.ca.is_some() && plan.insecure {
        return Err("--ca and --insecure exclude each other: --ca checks the certificate, --insecure does not".into());
    }
    if plan.first_connections() == 0 {
        return Err("--connections must be at least 1".into());
    }
    if plan.spin > wsbench_core::plan::MAX_SPIN {
        return Err(format!("--spin is {:?}; spinning longer than 1ms only burns a core, use at most 1ms", plan.spin));
    }
    if !(plan.connect_rate > 0.0 && plan.connect_rate.is_finite()) {
        return Err(format!("--connect-rate is {}; it must be above 0 connections per second", plan.connect_rate));
    }
    if plan.size < HEADER_LEN as u64 {
        return Err(format!("--size is {} bytes; the smallest message is {HEADER_LEN} bytes (the header)", plan.size));
    }
    if plan.size > MAX_SIZE {
        return Err(format!("--size is {} bytes; the largest message is {MAX_SIZE} bytes (64MiB)", plan.size));
    }
    if plan.duration.is_zero() {
        return Err("--duration must be longer than 0s".into());
    }
    if plan.in_flight == 0 {
        return Err("--in-flight must be at least 1".into());
    }
    if plan.interval < MIN_INTERVAL {
        return Err(format!("--interval is {}; the shortest histogram interval is {}", format_duration(plan.interval), format_duration(MIN_INTERVAL)));
    }
    if let Some(r) = plan.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(format!("--rate is {r}; it must be above 0 messages per second"));
        }
    }
    if plan.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if let Some(shard) = plan.shard {
        if shard.count > plan.connections {
            return Err(format!("--shard {shard}: {} shards for {} connections; every shard needs a connection", shard.count, plan.connections));
        }
    }
    if let Some(t) = &plan.start_at {
        wsbench_core::clock::parse_rfc3339(t).map_err(|e| format!("--start-at {e}"))?;
    }
    if !(0.0..=1.0).contains(&plan.max_loss) {
        return Err(format!("--max-loss is {}; it is a share between 0 and 1 (0 % and 100 %)", plan.max_loss));
    }
    if let Some(f) = &plan.foreign {
        if plan.engine != Engine::Tungstenite {
            return Err(format!("--template runs on the tungstenite client (a typical client), not on --engine {}; drop --engine", plan.engine.name()));
        }
        if plan.workload.is_fanout() {
            return Err(format!("--template measures request and reply; it does not combine with --workload {}", plan.workload.name()));
        }
        crate::template::Foreign::new(f)?;
    }
    plan.churn.validate()?;
    if plan.rx_timestamps == RxTimestamps::Kernel && (plan.engine != Engine::ZeroAlloc || plan.workload.is_fanout() || !plan.idle.is_empty()) {
        return Err("--rx-timestamps kernel is for the zero-alloc engine's echo load (--engine zero-alloc, no --workload, no --idle)".into());
    }
    if plan.ping_interval.is_some() && plan.idle.is_empty() {
        return Err("--ping-interval applies to the idle probe (--idle)".into());
    }
    if plan.ping_interval.is_some_and(|p| p < Duration::from_millis(1)) {
        return Err("--ping-interval must be at least 1ms".into());
    }
    if !plan.idle.is_empty() && (plan.engine != Engine::Tungstenite || plan.workload.is_fanout() || !plan.churn.is_off() || !plan.stages.is_empty() || plan.shard.is_some()) {
        return Err("--idle probes echo connections on the tungstenite client, one process; drop --engine zero-alloc, --workload, churn, --stage and --shard".into());
    }
    if !plan.stages.is_empty() {
        wsbench_core::plan::check_stages(&plan.stages, plan.rate, "--stage")?;
        if plan.workload.is_fanout() {
            return Err("--stage ramps the echo load; it does not combine with a fan-out --workload yet".into());
        }
        if let Some(shard) = plan.shard.filter(|s| s.count > plan.fewest_connections()) {
            return Err(format!("--shard {shard}: the connection ramp falls to {} connections; every shard needs one open at every instant, so at most {} shards", plan.fewest_connections(), plan.fewest_connections()));
        }
    }
    if !plan.churn.is_off() && plan.workload.is_fanout() {
        return Err(format!("--reconnect-after and --connection-lifetime apply to the echo workload, not --workload {}", plan.workload.name()));
    }
    crate::fanout::validate(plan)
}

/// What a WebSocket URL says about where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// `host:port` to open a TCP connection to.
    pub addr: String,
    pub host: String,
    /// `wss://`: TLS.
    pub secure: bool,
}

/// Splits a `ws://` or `wss://` URL into its [`UrlParts`].
pub fn url_parts(url: &str) -> Result<UrlParts, String> {
    let req = url.into_client_request().map_err(|e| format!("--url `{url}` is not a WebSocket URL ({e}); write e.g. ws://127.0.0.1:9001/"))?;
    let uri = req.uri();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(format!("--url `{url}` must start with ws:// or wss://")),
    };
    let host = uri.host().ok_or_else(|| format!("--url `{url}` has no host"))?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    // IPv6 literals keep their brackets in `host()`, which is what `host:port` needs.
    Ok(UrlParts { addr: format!("{host}:{port}"), host: host.to_owned(), secure })
}

/// The `host:port` to open a TCP connection to, from a `ws://` or `wss://` URL.
pub fn target_addr(url: &str) -> Result<String, String> {
    url_parts(url).map(|p| p.addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn parse(args: &[String]) -> Result<LoadgenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("wsbench-loadgen".to_owned()).chain(args.iter().cloned())).map(|c| c.args)
    }

    fn round_trip(plan: &LoadPlan) -> LoadPlan {
        parse(&plan.to_args()).unwrap_or_else(|e| panic!("{e}")).into_plan().unwrap()
    }

    #[test]
    fn defaults_equal_the_core_default_plan() {
        assert_eq!(parse(&[]).unwrap().into_plan().unwrap(), LoadPlan::default());
    }

    #[test]
    fn plans_round_trip_through_the_command_line() {
        let plans = [
            LoadPlan::default(),
            LoadPlan {
                url: "ws://localhost:8080/echo".into(),
                connections: 250,
                start_connections: None,
                connect_rate: 125.5,
                size: 64 << 10,
                mode: Mode::Text,
                engine: Engine::ZeroAlloc,
                duration: Duration::from_millis(2_500),
                warmup: Duration::ZERO,
                in_flight: 16,
                rate: Some(2_000.25),
                threads: 3,
                drain_timeout: Duration::from_millis(750),
                interval: Duration::from_millis(100),
                max_loss: 0.001,
                max_failed_connections: 7,
                realtime: true,
                spin: Duration::from_micros(20),
                coalesce: wsbench_core::plan::Coalesce::Every(Duration::ZERO),
                shard: Some(Shard { index: 2, count: 3 }),
                start_at: Some("2026-11-29T04:00:00Z".into()),
                ca: None,
                insecure: false,
                headers: vec![("Authorization".into(), "Bearer x y".into()), ("X-Trace".into(), "1".into())],
                subprotocols: vec!["chat".into(), "superchat".into()],
                token_secret: Some("secrets/ws token".into()),
                deflate: Some(wsbench_core::codec::deflate::DeflateConfig {
                    server_max_window_bits: 12,
                    client_max_window_bits: Some(9),
                    server_no_context_takeover: true,
                    client_no_context_takeover: false,
                }),
                workload: Workload::Echo,
                fanout: Fanout::default(),
                foreign: None,
                churn: Churn::default(),
                stages: Vec::new(),
                idle: Vec::new(),
                ping_interval: None,
                nodelay: true,
                rx_timestamps: RxTimestamps::Kernel,
                out: Some("results/x/trial-1".into()),
            },
            LoadPlan { idle: vec![Duration::from_millis(100), Duration::from_secs(1)], ping_interval: Some(Duration::from_millis(50)), nodelay: false, ..Default::default() },
            LoadPlan {
                rate: Some(500.0),
                duration: Duration::from_millis(2_500),
                stages: vec![Stage { duration: Duration::from_secs(2), rate: 1_000.0, connections: None }, Stage { duration: Duration::from_millis(500), rate: 0.0, connections: Some(10) }],
                ..Default::default()
            },
            LoadPlan { churn: Churn { reconnect_after: Some(10), connection_lifetime: Some(Duration::from_millis(1_500)), lifetime_jitter: 0.1 }, ..Default::default() },
            // A connection ramp: 20 at most, 5 at the start.
            LoadPlan {
                rate: Some(1_000.0),
                connections: 5,
                duration: Duration::from_secs(1),
                stages: vec![Stage { duration: Duration::from_secs(1), rate: 1_000.0, connections: Some(20) }],
                ..Default::default()
            }
            .with_connection_ramp(),
            LoadPlan { url: "wss://localhost:8443/".into(), ca: Some("ca.pem".into()), ..Default::default() },
            LoadPlan { url: "wss://localhost:8443/".into(), insecure: true, ..Default::default() },
            LoadPlan {
                connections: 12,
                rate: Some(300.0),
                workload: Workload::Broadcast,
                fanout: Fanout { rooms: 4, publishers: 3, echo_to_sender: true, ..Fanout::default() },
                ..Default::default()
            },
            LoadPlan { workload: Workload::Push, fanout: Fanout { push_rate: 250.0, ..Fanout::default() }, ..Default::default() },
            LoadPlan { duration: Duration::from_secs(90), rate: Some(1e6), ..Default::default() },
            LoadPlan { engine: Engine::Tungstenite, ..Default::default() },
            LoadPlan {
                mode: Mode::Text,
                foreign: Some(Foreign { template: r#"{"id":{seq},"p":"{rand:8}"}"#.into(), correlation: Correlation::MatchJson("/id".into()) }),
                ..Default::default()
            },
            LoadPlan {
                mode: Mode::Binary,
                rate: Some(100.0),
                foreign: Some(Foreign { template: "n={seq} c={conn}\n".into(), correlation: Correlation::MatchRegex(r"n=(\d+)".into()) }),
                ..Default::default()
            },
        ];
        for p in &plans {
            assert_eq!(&round_trip(p), p);
        }
    }

    #[test]
    fn templates_need_a_rule_and_the_tungstenite_client() {
        let args = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|a| a.into_plan());
        let t = "--template={\"id\":{seq}}";
        let plan = args(&[t, "--match-json", "/id"]).unwrap().unwrap();
        assert_eq!(plan.mode, Mode::Text, "a template is text by default");
        assert_eq!(args(&[t, "--match-json", "/id", "--template-binary"]).unwrap().unwrap().mode, Mode::Binary);
        for (a, says) in [
            (vec![t], "needs a correlation rule"),
            (vec!["--match-json", "/id"], "give --template"),
            (vec![t, "--match-json", "/id", "--engine", "zero-alloc"], "runs on the tungstenite client"),
            (vec![t, "--match-json", "id"], "not a JSON pointer"),
            (vec![t, "--match-regex", "id"], "no capture group"),
            (vec!["--template", "{\"id\":1}", "--match-json", "/id"], "no {seq}"),
            (vec!["--template", "{sequence}", "--match-json", "/id"], "`{sequence}` is unknown"),
            (vec![t, "--match-json", "/id", "--workload", "sink", "--rate", "10"], "does not combine with --workload sink"),
        ] {
            let e = args(&a).unwrap().unwrap_err();
            assert!(e.contains(says), "{a:?}: {e}");
        }
        assert!(args(&[t, "--match-json", "/id", "--match-regex", "(x)"]).is_err(), "one rule at a time");
    }

    #[test]
    fn sizes_accept_units() {
        let a = parse(&["--size".into(), "1KiB".into()]).unwrap();
        assert_eq!(a.size, 1024);
        let a = parse(&["--size".into(), "64KiB".into()]).unwrap();
        assert_eq!(a.size, 65536);
    }

    #[test]
    fn text_and_binary_exclude_each_other() {
        assert!(parse(&["--text".into(), "--binary".into()]).is_err());
        assert_eq!(parse(&["--text".into()]).unwrap().into_plan().unwrap().mode, Mode::Text);
    }

    #[test]
    fn invalid_plans_say_what_to_change() {
        let bad = |args: &[&str]| {
            let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse(&a).unwrap().into_plan().unwrap_err()
        };
        assert!(bad(&["--size", "31"]).contains("32 bytes"));
        assert!(bad(&["--connections", "0"]).contains("--connections"));
        assert!(bad(&["--rate", "0"]).contains("--rate"));
        assert!(bad(&["--duration", "0s"]).contains("--duration"));
        assert!(bad(&["--url", "http://example.com/"]).contains("ws://"));
        assert!(bad(&["--insecure"]).contains("wss://"), "TLS options need a wss:// URL");
        assert!(bad(&["--header", "X-A"]).contains("Name: value"));
        assert!(bad(&["--header", "Sec-WebSocket-Protocol: a"]).contains("--subprotocol"));
        assert!(bad(&["--threads", "0"]).contains("--threads"));
        assert!(bad(&["--in-flight", "0"]).contains("--in-flight"));
        assert!(bad(&["--rx-timestamps", "kernel"]).contains("--engine zero-alloc"), "the tungstenite client has no kernel stamps");
        assert!(bad(&["--rx-timestamps", "kernel", "--engine", "zero-alloc", "--workload", "sink", "--rate", "10"]).contains("--rx-timestamps"));
        assert!(parse(&["--rx-timestamps".into(), "both".into()]).is_err());
        assert!(parse(&["--max-loss".into(), "120%".into()]).is_err());
        assert_eq!(parse(&["--max-loss".into(), "0.1%".into()]).unwrap().max_loss, 0.001);
        for msg in [bad(&["--size", "31"]), bad(&["--url", "nonsense"])] {
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
    }

    #[test]
    fn autobahn_mode_is_a_flag_outside_the_plan() {
        let a = parse(&["--autobahn".into(), "127.0.0.1:9001".into()]).unwrap();
        assert_eq!((a.autobahn.as_deref(), a.agent.as_str()), (Some("127.0.0.1:9001"), "wsbench-zero-alloc"));
        // Not part of a plan: the plan is the default one.
        assert_eq!(a.into_plan().unwrap(), LoadPlan::default());
        let a = parse(&["--autobahn".into(), "127.0.0.1:9001".into(), "--agent".into(), "me".into()]).unwrap();
        assert_eq!(a.agent, "me");
        assert!(parse(&["--agent".into(), "me".into()]).is_err(), "--agent needs --autobahn");
        assert_eq!(parse(&[]).unwrap().autobahn, None);
    }

    #[test]
    fn shards_come_from_the_flag_or_the_job_index() {
        let plan = |args: &[&str], env: Option<&str>| {
            let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse(&a).unwrap().into_plan_with(env)
        };
        assert_eq!(plan(&["--shard", "1/2"], None).unwrap().shard, Some(Shard { index: 1, count: 2 }));
        assert_eq!(plan(&["--shards", "4"], Some("3")).unwrap().shard, Some(Shard { index: 3, count: 4 }));
        assert_eq!(plan(&[], Some("3")).unwrap().shard, None, "the variable alone shards nothing");
        assert!(plan(&["--shards", "4"], None).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(plan(&["--shards", "4"], Some("4")).unwrap_err().contains("0 to 3"));
        assert!(plan(&["--shards", "4"], Some("x")).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(plan(&["--shard", "0/11"], None).unwrap_err().contains("every shard needs a connection"));
        assert!(parse(&["--shard".into(), "2/2".into()]).is_err());
        assert!(parse(&["--shard".into(), "0/2".into(), "--shards".into(), "2".into()]).is_err());
        assert!(plan(&["--start-at", "soon"], None).unwrap_err().contains("--start-at"));
        assert_eq!(plan(&["--start-at", "2026-11-29T04:00:00Z"], None).unwrap().start_at.as_deref(), Some("2026-11-29T04:00:00Z"));
    }

    #[test]
    fn target_address_comes_from_the_url() {
        assert_eq!(target_addr("ws://127.0.0.1:9001/").unwrap(), "127.0.0.1:9001");
        assert_eq!(target_addr("ws://localhost/x").unwrap(), "localhost:80");
        assert_eq!(target_addr("ws://[::1]:9/").unwrap(), "[::1]:9");
        assert_eq!(url_parts("wss://example.com/x").unwrap(), UrlParts { addr: "example.com:443".into(), host: "example.com".into(), secure: true });
    }

    #[test]
    fn headers_come_from_flags_file_and_environment_in_order() {
        let h = collect_headers(&["A: 1".into()], Some("# comment\n\nB: 2\n"), Some("C: 3\nD:4")).unwrap();
        let names: Vec<_> = h.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(names, ["A=1", "B=2", "C=3", "D=4"]);
        assert!(collect_headers(&[], None, Some("broken")).unwrap_err().starts_with(HEADERS_ENV));
        assert!(collect_headers(&["Host: x".into()], None, None).is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("wsbench-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("empty.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let plan = LoadPlan { url: "wss://127.0.0.1:1/".into(), ca: Some(ca.clone()), ..Default::default() };
        assert!(target(&plan).err().unwrap().contains("no certificate"));
        let plan = LoadPlan { ca: Some(dir.join("missing.pem")), ..plan };
        assert!(target(&plan).err().unwrap().contains("missing.pem"));
        let plan = LoadPlan { url: "wss://127.0.0.1:1/".into(), insecure: true, ..Default::default() };
        assert!(target(&plan).is_ok());
    }
}

//! Scenario files: what to run, against what, and which configurations to compare.
//!
//! ```toml
//! name = "quick"
//! trials = 2                       # run interleaved: A B A B ...
//!
//! [server]                         # built-in server options, or `command = [...]` for any server
//! runtime = "multi-thread"
//!
//! [load]
//! connections = 10
//! duration = "5s"
//!
//! [[configs]]                      # each config overrides [server] / [load]
//! name = "current-thread"
//! server = { runtime = "current-thread" }
//!
//! [matrix]                         # or: every combination of these values
//! "load.in_flight" = [1, 16]
//! ```
//!
//! Unknown keys are errors, and every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::codec::deflate::DeflateConfig;
use crate::header::HEADER_LEN;
use crate::layout;
use crate::plan::{Engine, Fanout, Handler, Mode, Pause, Runtime, Workload, DEFAULT_INTERVAL, DEFAULT_MAX_MESSAGE_SIZE, MIN_INTERVAL};
use crate::result::{SearchMetric, SearchOver};
use crate::slo::Slo;
use crate::units::{serde_duration, serde_size};

/// The keys `deflate` and `deflate_*` of a section: the server and load sections name them alike.
macro_rules! deflate_keys_of {
    ($s:expr) => {
        DeflateKeys {
            on: $s.deflate,
            server_max_window_bits: $s.deflate_server_max_window_bits,
            client_max_window_bits: $s.deflate_client_max_window_bits,
            server_no_context_takeover: $s.deflate_server_no_context_takeover,
            client_no_context_takeover: $s.deflate_client_no_context_takeover,
        }
    };
}

/// A scenario error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based line and column, when the error can be placed.
    pub line: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A command-line override of one scenario key, `--set load.rate=20000`: it wins over the
/// scenario's `[server]`/`[load]` and over every configuration's own value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// As the user wrote it, for error messages.
    pub raw: String,
    /// `trials`, `server.<key>` or `load.<key>`.
    pub key: String,
    pub value: toml::Value,
}

impl std::str::FromStr for Setting {
    type Err = String;

    /// `KEY=VALUE`, VALUE in TOML (`20000`, `"5s"`, `[1, 2]`) or, when it is not TOML, a bare
    /// string (`load.duration=5s`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not KEY=VALUE; e.g. --set load.rate=20000 or --set server.engine=zero-alloc"))?;
        let key = key.trim();
        let (section, field) = key.split_once('.').unwrap_or(("", key));
        let known = key == "trials" || (matches!(section, "server" | "load") && !field.is_empty() && !field.contains('.'));
        if !known {
            return Err(format!("`{key}` cannot be set; give `trials`, `server.<key>` or `load.<key>`"));
        }
        let text = value.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {text}")) {
            Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(text.to_owned())),
            Err(_) => toml::Value::String(text.to_owned()),
        };
        Ok(Self { raw: s.to_owned(), key: key.to_owned(), value })
    }
}

/// The command-line overrides, sorted into the sections they override.
#[derive(Default)]
struct Overrides {
    trials: Option<u32>,
    server: ServerSection,
    load: LoadSection,
}

impl Overrides {
    fn of(settings: &[Setting]) -> Result<Self, ScenarioError> {
        let mut o = Self::default();
        for s in settings {
            let err = |m: String| ScenarioError { file: format!("--set {}", s.raw), line: None, message: m };
            let (section, field) = s.key.split_once('.').unwrap_or(("", s.key.as_str()));
            let mut t = toml::Table::new();
            t.insert(field.to_owned(), s.value.clone());
            let at = |e: toml::de::Error| err(format!("key `{}`: {}", s.key, in_our_words(e.message().trim())));
            match section {
                "server" => o.server = o.server.overlay(&toml::Value::Table(t).try_into::<ServerSection>().map_err(at)?),
                "load" => o.load = o.load.overlay(&toml::Value::Table(t).try_into::<LoadSection>().map_err(at)?),
                _ => match s.value.as_integer() {
                    Some(n) if (1..=1000).contains(&n) => o.trials = Some(n as u32),
                    _ => return Err(err("`trials` must be a whole number between 1 and 1000".into())),
                },
            }
        }
        Ok(o)
    }
}

/// A parsed, validated scenario with every configuration fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub trials: u32,
    pub configs: Vec<ConfigSpec>,
    /// `[search]`: find each configuration's capacity under an objective instead of running fixed loads.
    pub search: Option<CapacitySearch>,
    pub path: PathBuf,
    pub text: String,
}

/// One configuration to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSpec {
    pub name: String,
    /// For a point of a rate sweep (`rates = [...]`): the configuration it belongs to.
    pub group: Option<String>,
    pub server: ServerSpec,
    pub load: LoadSpec,
}

/// The server of a configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerSpec {
    /// `wsbench server` with these options.
    Builtin(BuiltinServer),
    /// Any server started by a command; `{port}` in its arguments is replaced by a free port.
    Command(CommandServer),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BuiltinServer {
    pub engine: Engine,
    pub workload: Workload,
    pub handler: Handler,
    pub runtime: Runtime,
    pub workers: usize,
    pub max_message_size: u64,
    pub pause: Option<Pause>,
    /// Serve `wss://` with a throwaway certificate made for the trial; the load generators
    /// trust its CA alone.
    pub tls: bool,
    /// Ask every upgrade for a time-limited token, with a throwaway secret made for the trial
    /// that the load generators mint their tokens with (`--token-secret` on both sides).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tokens: bool,
    /// Accept permessage-deflate within these bounds (server keys `deflate` and
    /// `deflate_*`, as the flags name them); zero-alloc engine only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate: Option<DeflateConfig>,
    /// Gatekeeping: origins allowed (`allow_origin`), upgrades per second per peer
    /// (`conn_rate`) and the burst a peer starts with (`conn_burst`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_burst: Option<u32>,
    /// Broadcast and push settings (server keys `rooms`, `echo_to_sender`, `push_rate`, `push_size`).
    pub fanout: Fanout,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CommandServer {
    pub command: Vec<String>,
    /// How long to wait for the port to accept connections.
    #[serde(with = "serde_duration")]
    pub ready_timeout: Duration,
    /// Path part of the WebSocket URL, e.g. `/` or `/ws`.
    pub path: String,
}

/// The load of a configuration, before it is split over processes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadSpec {
    pub connections: u32,
    pub connect_rate: f64,
    pub size: u64,
    pub mode: Mode,
    /// The load generator's client implementation.
    pub engine: Engine,
    #[serde(with = "serde_duration")]
    pub duration: Duration,
    #[serde(with = "serde_duration")]
    pub warmup: Duration,
    pub in_flight: u32,
    /// Open loop: total messages per second over every process.
    pub rate: Option<f64>,
    /// Load-generator processes; connections and rate are split between them (a connection
    /// ramp's run as its shards, each holding its places of every count).
    pub processes: u32,
    /// Worker threads per load-generator process.
    pub threads: usize,
    #[serde(with = "serde_duration")]
    pub drain_timeout: Duration,
    /// Histogram interval of the load generators (see [`crate::plan::LoadPlan::interval`]).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Share of measured messages that may go unanswered (see [`crate::plan::LoadPlan::max_loss`]).
    pub max_loss: f64,
    /// Connections of the whole configuration that may fail to open.
    pub max_failed_connections: u32,
    /// Load-generator worker threads run under `SCHED_FIFO` (see [`crate::plan::LoadPlan::realtime`]).
    pub realtime: bool,
    /// Open loop: wake this long before a send is due and spin the rest (see [`crate::plan::LoadPlan::spin`]).
    #[serde(with = "serde_duration")]
    pub spin: Duration,
    /// Open loop: how each worker groups its timer's firings (see [`crate::plan::Coalesce`]).
    #[serde(default)]
    pub coalesce: crate::plan::Coalesce,
    /// The built-in server's workload, which the load generators drive.
    pub workload: Workload,
    /// The server's fan-out settings, with load key `publishers`.
    pub fanout: Fanout,
    /// Load keys `template` and `match_json` / `match_regex`: messages from a template.
    pub foreign: Option<crate::plan::Foreign>,
    /// Connection churn (load keys `reconnect_after`, `connection_lifetime`, `lifetime_jitter`).
    pub churn: crate::plan::Churn,
    /// Open-loop ramp (`[[load.stages]]`); `duration` is then the stages' sum.
    pub stages: Vec<crate::plan::Stage>,
    /// Idle warm-up probe (load keys `idle`, `ping_interval`, `nodelay`; see [`crate::plan::LoadPlan::idle`]).
    pub idle: Vec<Duration>,
    pub ping_interval: Option<Duration>,
    pub nodelay: bool,
    /// Offer permessage-deflate (load keys `deflate` and `deflate_*`, as the flags name them;
    /// zero-alloc client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate: Option<DeflateConfig>,
    /// Where an echo's arrival time comes from (load key `rx_timestamps`: `"user"` or `"kernel"`).
    #[serde(default)]
    pub rx_timestamps: crate::plan::RxTimestamps,
    /// The `Origin` header every handshake sends (load key `origin`); none by default, as tools send none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The bulk-transfer cross-check a size sweep adds (see [`BULK_IN_FLIGHT`]): the report reads
    /// its bytes per second beside the sweep's fitted bandwidth.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bulk: bool,
}

/// Messages in flight on the one connection of a size sweep's bulk-transfer configuration: two,
/// so that while one message is echoed back the next is on its way out and both directions stream
/// rather than wait for round trips. Deeper pipelines only queue in the socket buffers, which
/// loopback TCP then autotunes to tens of MB, so every copy misses the cache: a plain TCP echo
/// pair without WebSocket (scripts/benchmarks/echo_pair.py) moved 1,762, 1,584 and 1,044 MB/s at
/// depths 1, 2 and 8 here. The bulk figure would measure that queueing, not the bandwidth.
pub const BULK_IN_FLIGHT: u32 = 2;

impl BuiltinServer {
    /// The gatekeeping flags of this server, which its plan does not carry (the token secret is
    /// the trial's own and added where it is made).
    pub fn gate_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for o in &self.allow_origins {
            a.extend(["--allow-origin".to_owned(), o.clone()]);
        }
        if let Some(r) = self.conn_rate {
            a.extend(["--conn-rate".to_owned(), r.to_string()]);
        }
        if let Some(b) = self.conn_burst {
            a.extend(["--conn-burst".to_owned(), b.to_string()]);
        }
        a
    }

    /// The plan of a server process for this configuration, listening on `listen`.
    pub fn plan(&self, listen: std::net::SocketAddr, tls: Option<crate::plan::TlsFiles>, out: Option<PathBuf>) -> crate::plan::ServerPlan {
        crate::plan::ServerPlan {
            listen,
            engine: self.engine,
            workload: self.workload,
            handler: self.handler,
            runtime: self.runtime,
            workers: self.workers,
            max_message_size: self.max_message_size,
            pause: self.pause,
            tls,
            subprotocols: Vec::new(),
            require_subprotocol: false,
            deflate: self.deflate,
            fanout: self.fanout,
            out,
        }
    }
}

impl LoadSpec {
    /// The whole load as one process's plan against `url`: callers split it (processes,
    /// shards) and set where it writes.
    pub fn plan(&self, url: &str) -> crate::plan::LoadPlan {
        crate::plan::LoadPlan {
            url: url.to_owned(),
            connections: self.connections,
            connect_rate: self.connect_rate,
            size: self.size,
            mode: self.mode,
            engine: self.engine,
            duration: self.duration,
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
            workload: self.workload,
            fanout: self.fanout,
            foreign: self.foreign.clone(),
            churn: self.churn,
            stages: self.stages.clone(),
            idle: self.idle.clone(),
            ping_interval: self.ping_interval,
            nodelay: self.nodelay,
            deflate: self.deflate,
            rx_timestamps: self.rx_timestamps,
            headers: self.origin.iter().map(|o| ("Origin".to_owned(), o.clone())).collect(),
            ..Default::default()
        }
        .with_connection_ramp()
    }
}

// ---------------------------------------------------------------- the file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<Spanned<String>>,
    description: Option<String>,
    trials: Option<Spanned<u32>>,
    server: Option<Spanned<ServerSection>>,
    load: Option<Spanned<LoadSection>>,
    configs: Option<Vec<Spanned<RawConfig>>>,
    matrix: Option<BTreeMap<Spanned<String>, Spanned<Vec<toml::Value>>>>,
    search: Option<Spanned<SearchSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchSection {
    slo: Spanned<String>,
    over: Option<Spanned<SearchOver>>,
    metric: Option<Spanned<SearchMetric>>,
    precision: Option<Spanned<String>>,
    start_rate: Option<Spanned<f64>>,
    max_rate: Option<Spanned<f64>>,
    start_connections: Option<Spanned<u32>>,
    max_connections: Option<Spanned<u32>>,
    rate_per_connection: Option<Spanned<f64>>,
    max_probes: Option<u32>,
}

/// `[search]`: the highest open-loop rate (or the most connections) that meets an objective,
/// by bracketing and bisection.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapacitySearch {
    pub slo: Slo,
    /// What is varied: the rate (default) or the number of connections.
    pub over: SearchOver,
    /// Which latency the objective bounds: every message's (default) or a broadcast's completion.
    pub metric: SearchMetric,
    /// Stop bisecting when (failing − passing) / passing is at most this (0.05 = 5 %).
    pub precision: f64,
    /// First rate probed, msgs/s.
    pub start_rate: f64,
    /// Never probe above this, msgs/s.
    pub max_rate: f64,
    /// A search over connections: the first count probed and the most ever probed.
    pub start_connections: u32,
    pub max_connections: u32,
    /// A search over connections: every connection's open-loop rate, msgs/s, so the total is
    /// connections × this. None: the load's own rate (a broadcast's publishers) or closed loop.
    pub rate_per_connection: Option<f64>,
    /// Probes per configuration and trial at most.
    pub max_probes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Spanned<String>,
    server: Option<Spanned<ServerSection>>,
    load: Option<Spanned<LoadSection>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    engine: Option<Engine>,
    workload: Option<Workload>,
    handler: Option<Handler>,
    runtime: Option<Runtime>,
    workers: Option<NonZeroUsize>,
    #[serde(default, deserialize_with = "serde_size::option::deserialize")]
    max_message_size: Option<u64>,
    #[serde(default, with = "serde_duration::option")]
    pause_every: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    pause_for: Option<Duration>,
    tls: Option<bool>,
    tokens: Option<bool>,
    deflate: Option<bool>,
    deflate_server_max_window_bits: Option<u8>,
    deflate_client_max_window_bits: Option<u8>,
    deflate_server_no_context_takeover: Option<bool>,
    deflate_client_no_context_takeover: Option<bool>,
    allow_origin: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::units::serde_rate::deserialize_option")]
    conn_rate: Option<f64>,
    conn_burst: Option<u32>,
    command: Option<Vec<String>>,
    #[serde(default, with = "serde_duration::option")]
    ready_timeout: Option<Duration>,
    path: Option<String>,
    rooms: Option<NonZeroU32>,
    echo_to_sender: Option<bool>,
    push_rate: Option<f64>,
    #[serde(default, deserialize_with = "serde_size::option::deserialize")]
    push_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSection {
    connections: Option<NonZeroU32>,
    connect_rate: Option<f64>,
    #[serde(default, deserialize_with = "serde_size::option::deserialize")]
    size: Option<u64>,
    mode: Option<Mode>,
    engine: Option<Engine>,
    #[serde(default, with = "serde_duration::option")]
    duration: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    warmup: Option<Duration>,
    in_flight: Option<NonZeroU32>,
    rate: Option<f64>,
    rates: Option<Vec<f64>>,
    /// A size sweep: sizes (`[32, "1KiB"]`) or `"seed"`, WebSockets.jl's i³·1020 B for i = 1…12.
    sizes: Option<toml::Value>,
    processes: Option<NonZeroU32>,
    threads: Option<NonZeroUsize>,
    #[serde(default, with = "serde_duration::option")]
    drain_timeout: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "crate::units::serde_share::deserialize_option")]
    max_loss: Option<f64>,
    max_failed_connections: Option<u32>,
    realtime: Option<bool>,
    #[serde(default, with = "serde_duration::option")]
    spin: Option<Duration>,
    /// `"auto"` or a duration (see [`crate::plan::Coalesce`]).
    coalesce: Option<crate::plan::Coalesce>,
    publishers: Option<NonZeroU32>,
    /// Other people's protocols (see [`crate::plan::Foreign`]).
    template: Option<String>,
    match_json: Option<String>,
    match_regex: Option<String>,
    reconnect_after: Option<u64>,
    #[serde(default, with = "serde_duration::option")]
    connection_lifetime: Option<Duration>,
    #[serde(default, deserialize_with = "crate::units::serde_share::deserialize_option")]
    lifetime_jitter: Option<f64>,
    stages: Option<Vec<crate::plan::Stage>>,
    idle: Option<Vec<String>>,
    #[serde(default, with = "serde_duration::option")]
    ping_interval: Option<Duration>,
    nodelay: Option<bool>,
    deflate: Option<bool>,
    deflate_server_max_window_bits: Option<u8>,
    deflate_client_max_window_bits: Option<u8>,
    deflate_server_no_context_takeover: Option<bool>,
    deflate_client_no_context_takeover: Option<bool>,
    rx_timestamps: Option<crate::plan::RxTimestamps>,
    origin: Option<String>,
}

/// `over` wins where it says something; `base` fills the rest.
macro_rules! overlay {
    ($base:expr, $over:expr, $ty:ident { $($f:ident),* }) => {
        $ty { $($f: $over.$f.clone().or_else(|| $base.$f.clone())),* }
    };
}

impl ServerSection {
    fn overlay(&self, over: &Self) -> Self {
        overlay!(self, over, ServerSection {
            engine, workload, handler, runtime, workers, max_message_size, pause_every, pause_for, tls, tokens, command, ready_timeout, path,
            rooms, echo_to_sender, push_rate, push_size,
            deflate, deflate_server_max_window_bits, deflate_client_max_window_bits, deflate_server_no_context_takeover, deflate_client_no_context_takeover,
            allow_origin, conn_rate, conn_burst
        })
    }
}

impl LoadSection {
    fn overlay(&self, over: &Self) -> Self {
        overlay!(self, over, LoadSection {
            connections, connect_rate, size, mode, engine, duration, warmup, in_flight, rate, rates, sizes, processes, threads, drain_timeout, interval, max_loss, max_failed_connections, realtime, spin, coalesce, publishers,
            template, match_json, match_regex,
            reconnect_after, connection_lifetime, lifetime_jitter, stages,
            idle, ping_interval, nodelay,
            deflate, deflate_server_max_window_bits, deflate_client_max_window_bits, deflate_server_no_context_takeover, deflate_client_no_context_takeover,
            rx_timestamps, origin
        })
    }
}

// ---------------------------------------------------------------- loading

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read the scenario: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses scenario text; `path` names the file in errors and gives the default name.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        Self::parse_with(path, text, &[])
    }

    /// Reads and validates a scenario file with command-line overrides applied.
    pub fn load_with(path: &Path, settings: &[Setting]) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read the scenario: {e}"),
        })?;
        Self::parse_with(path, &text, settings)
    }

    /// [`Scenario::parse`] with `--set` overrides, which win over every configuration's values.
    pub fn parse_with(path: &Path, text: &str, settings: &[Setting]) -> Result<Self, ScenarioError> {
        let overrides = Overrides::of(settings)?;
        let cx = Cx { file: path.display().to_string(), text };
        let raw: RawScenario = toml::from_str(text).map_err(|e| cx.de_err(&e))?;

        // Names become folders below the results folder: one folder each, never a path.
        let name = match &raw.name {
            Some(n) => {
                layout::check_name(n.get_ref()).map_err(|e| cx.err(Some(n.span()), format!("key `name`: {:?} {e}", n.get_ref())))?;
                n.get_ref().clone()
            }
            None => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
                layout::check_name(&stem).map_err(|e| cx.err(None, format!("the file name gives the scenario name {stem:?}, which {e}; set key `name`")))?;
                stem
            }
        };
        let trials = match &raw.trials {
            Some(t) if *t.get_ref() == 0 || *t.get_ref() > 1000 => return Err(cx.err(Some(t.span()), "`trials` must be between 1 and 1000".into())),
            Some(t) => *t.get_ref(),
            None => 1,
        };
        let trials = overrides.trials.unwrap_or(trials);
        let base_server = raw.server.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default();
        let base_load = raw.load.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default();

        // Each variant: a name, overlays, and where to point when it does not validate.
        let mut variants: Vec<(String, ServerSection, LoadSection, Option<std::ops::Range<usize>>)> = Vec::new();
        match (&raw.configs, &raw.matrix) {
            (Some(_), Some(m)) if !m.is_empty() => {
                let first = m.keys().next().map(|k| k.span());
                return Err(cx.err(first, "use either [[configs]] or [matrix], not both".into()));
            }
            (Some(configs), _) => {
                for c in configs {
                    let c = c.get_ref();
                    let s = c.server.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default();
                    let l = c.load.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default();
                    let span = c.server.as_ref().map(|s| s.span()).or_else(|| c.load.as_ref().map(|s| s.span())).unwrap_or(c.name.span());
                    layout::check_name(c.name.get_ref())
                        .map_err(|e| cx.err(Some(c.name.span()), format!("key `configs.name`: {:?} {e}", c.name.get_ref())))?;
                    if variants.iter().any(|v| &v.0 == c.name.get_ref()) {
                        return Err(cx.err(Some(c.name.span()), format!("config name `{}` is used twice", c.name.get_ref())));
                    }
                    variants.push((c.name.get_ref().clone(), s, l, Some(span)));
                }
            }
            (None, Some(m)) => variants = expand_matrix(&cx, m)?,
            (None, None) => {}
        }
        if variants.is_empty() {
            variants.push(("default".into(), ServerSection::default(), LoadSection::default(), raw.server.as_ref().map(|s| s.span()).or(raw.load.as_ref().map(|s| s.span()))));
        }

        let search = match &raw.search {
            Some(sec) => Some(resolve_search(&cx, sec)?),
            None => None,
        };
        let mut configs = Vec::new();
        for (vname, s, l, span) in variants {
            let server = base_server.overlay(&s).overlay(&overrides.server);
            let mut load = base_load.overlay(&l);
            // A rate given on the command line replaces a sweep, and a sweep replaces a rate.
            if overrides.load.rate.is_some() {
                load.rates = None;
            }
            if overrides.load.rates.is_some() {
                load.rate = None;
            }
            let mut load = load.overlay(&overrides.load);
            let at = |m: String| cx.err(span.clone(), m);
            if let Some(search) = &search {
                check_search_config(search, &load, server.workload, &vname).map_err(at)?;
                // A search over connections starts from its first probe, so the configuration is
                // checked (rooms, publishers, open loop) as that probe will run.
                if search.over == SearchOver::Connections {
                    load.connections = NonZeroU32::new(search.start_connections);
                    if let Some(r) = search.rate_per_connection {
                        load.rate = Some(r * f64::from(search.start_connections));
                    }
                }
            }
            if let Some(sizes) = load.sizes.take() {
                if load.size.is_some() || load.rates.is_some() {
                    return Err(at(format!("config `{vname}`: load key `sizes` is a sweep of `size`; remove `size` and `rates`")));
                }
                let sizes = size_list(&sizes).map_err(|m| at(format!("config `{vname}`: load key `sizes`: {m}")))?;
                for &size in &sizes {
                    let name = if vname == "default" { format!("{size}B") } else { format!("{vname}@{size}B") };
                    configs.push(resolve(&name, server.clone(), LoadSection { size: Some(size), ..load.clone() }).map_err(at)?);
                }
                // A direct measurement of what the fit infers: one connection streaming the
                // largest size back to back, closed loop with a deep pipeline, so its bytes per
                // second can stand beside the fitted bandwidth (echo workload only).
                if server.workload.unwrap_or_default() == Workload::Echo && load.stages.is_none() && load.idle.is_none() {
                    let name = if vname == "default" { "bulk".to_owned() } else { format!("{vname}@bulk") };
                    let bulk = LoadSection {
                        size: sizes.iter().max().copied(),
                        connections: NonZeroU32::new(1),
                        processes: NonZeroU32::new(1),
                        in_flight: NonZeroU32::new(BULK_IN_FLIGHT),
                        rate: None,
                        ..load.clone()
                    };
                    let mut spec = resolve(&name, server.clone(), bulk).map_err(at)?;
                    spec.load.bulk = true;
                    configs.push(spec);
                }
                continue;
            }
            match load.rates.take() {
                None => configs.push(resolve(&vname, server, load).map_err(at)?),
                Some(_) if load.rate.is_some() => {
                    return Err(at(format!("config `{vname}`: give either load key `rate` or `rates` (a sweep), not both")));
                }
                Some(rates) if rates.is_empty() => return Err(at(format!("config `{vname}`: load key `rates` is empty"))),
                Some(rates) => {
                    // A sweep: one configuration per rate, grouped so the report can draw the curve.
                    for r in rates {
                        let point = LoadSection { rate: Some(r), ..load.clone() };
                        let mut spec = resolve(&format!("{vname}@{r}"), server.clone(), point).map_err(at)?;
                        spec.group = Some(vname.clone());
                        configs.push(spec);
                    }
                }
            }
        }
        Ok(Scenario { name, description: raw.description.unwrap_or_default(), trials, configs, search, path: path.to_owned(), text: text.to_owned() })
    }
}

/// WebSockets.jl's benchmark sizes: i³·1020 bytes for i = 1…12 (1,020 B to 1.76 MB).
pub fn seed_sizes() -> Vec<u64> {
    (1..=12u64).map(|i| i * i * i * 1020).collect()
}

/// The sizes of a `sizes` key: `"seed"`, or a list of sizes (`32`, `"1KiB"`), each at least a header.
fn size_list(v: &toml::Value) -> Result<Vec<u64>, String> {
    let sizes = match v {
        toml::Value::String(s) if s == "seed" => seed_sizes(),
        toml::Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
                toml::Value::String(s) => crate::units::parse_size(s),
                other => Err(format!("`{other}` is not a size")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("give a list of sizes such as [64, \"1KiB\", \"64KiB\"], or \"seed\" for WebSockets.jl's twelve sizes".into()),
    };
    match sizes.iter().find(|s| **s < HEADER_LEN as u64) {
        Some(s) => Err(format!("{s} bytes is smaller than the {HEADER_LEN}-byte header every message carries")),
        None => Ok(sizes),
    }
}

struct Cx<'a> {
    file: String,
    text: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, message: String) -> ScenarioError {
        let line = span.map(|s| {
            let before = &self.text[..s.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            (line, col)
        });
        ScenarioError { file: self.file.clone(), line, message }
    }

    /// A TOML or serde error in our words, naming the key whose value it is about.
    fn de_err(&self, e: &toml::de::Error) -> ScenarioError {
        let mut message = in_our_words(e.message().trim());
        if let Some(key) = e.span().and_then(|s| self.key_before(s.start)) {
            if !message.contains(&format!("`{key}`")) {
                message = format!("key `{key}`: {message}");
            }
        }
        self.err(e.span(), message)
    }

    /// The key assigned on the line of `pos` just before it (`connections = 0` → `connections`).
    fn key_before(&self, pos: usize) -> Option<String> {
        let mut pos = pos.min(self.text.len());
        while !self.text.is_char_boundary(pos) {
            pos -= 1;
        }
        let upto = &self.text[..pos];
        let line = &upto[upto.rfind('\n').map(|i| i + 1).unwrap_or(0)..];
        let before = line[..line.rfind('=')?].trim_end();
        // Past the last character that cannot be part of a key, however many bytes it has.
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = before[start..].trim_matches('"');
        (!key.is_empty()).then(|| key.to_owned())
    }
}

/// serde's type names mean little to someone writing a scenario.
fn in_our_words(message: &str) -> String {
    if message.contains("expected a nonzero") {
        let got = message.split('`').nth(1).unwrap_or("0");
        return format!("must be at least 1, not {got}");
    }
    message
        .replace("expected u32", "expected a whole number")
        .replace("expected usize", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected f64", "expected a number")
}

type Variant = (String, ServerSection, LoadSection, Option<std::ops::Range<usize>>);

fn expand_matrix(cx: &Cx, m: &BTreeMap<Spanned<String>, Spanned<Vec<toml::Value>>>) -> Result<Vec<Variant>, ScenarioError> {
    let mut variants: Vec<Variant> = vec![(String::new(), ServerSection::default(), LoadSection::default(), None)];
    for (key, values) in m {
        let (section, field) = key.get_ref().split_once('.').unwrap_or(("", key.get_ref()));
        if !matches!(section, "server" | "load") || field.is_empty() {
            return Err(cx.err(Some(key.span()), format!("matrix key `{}` must be `server.<key>` or `load.<key>`", key.get_ref())));
        }
        if values.get_ref().is_empty() {
            return Err(cx.err(Some(values.span()), format!("matrix key `{}` has no values", key.get_ref())));
        }
        let mut next = Vec::new();
        for (name, s, l, _) in &variants {
            for v in values.get_ref() {
                let mut t = toml::Table::new();
                t.insert(field.to_owned(), v.clone());
                let label = format!("{field}={}", match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let at = |e: toml::de::Error| cx.err(Some(key.span()), format!("matrix key `{}`: {}", key.get_ref(), e.message()));
                let (mut s, mut l) = (s.clone(), l.clone());
                if section == "server" {
                    s = s.overlay(&toml::Value::Table(t).try_into::<ServerSection>().map_err(at)?);
                } else {
                    l = l.overlay(&toml::Value::Table(t).try_into::<LoadSection>().map_err(at)?);
                }
                let name = if name.is_empty() { label } else { format!("{name},{label}") };
                next.push((name, s, l, Some(key.span())));
            }
        }
        variants = next;
    }
    Ok(variants)
}

fn resolve_search(cx: &Cx, sec: &Spanned<SearchSection>) -> Result<CapacitySearch, ScenarioError> {
    let s = sec.get_ref();
    let slo = Slo::parse(s.slo.get_ref()).map_err(|m| cx.err(Some(s.slo.span()), format!("[search] key `slo`: {m}")))?;
    let precision = match &s.precision {
        None => 0.05,
        Some(p) => {
            let v = p.get_ref().trim().strip_suffix('%').and_then(|v| v.trim().parse::<f64>().ok());
            match v {
                Some(v) if v > 0.0 && v < 100.0 => v / 100.0,
                _ => return Err(cx.err(Some(p.span()), format!("[search] key `precision` is `{}`; write a percentage such as \"5%\"", p.get_ref()))),
            }
        }
    };
    let over = s.over.as_ref().map(|o| *o.get_ref()).unwrap_or_default();
    // Keys of the other kind of search would be ignored in silence: name them instead.
    let (theirs, ours) = match over {
        SearchOver::Rate => ([("start_connections", s.start_connections.as_ref().map(|k| k.span())), ("max_connections", s.max_connections.as_ref().map(|k| k.span())), ("rate_per_connection", s.rate_per_connection.as_ref().map(|k| k.span()))], "rate"),
        SearchOver::Connections => ([("start_rate", s.start_rate.as_ref().map(|k| k.span())), ("max_rate", s.max_rate.as_ref().map(|k| k.span())), ("", None)], "connections"),
    };
    if let Some((key, span)) = theirs.iter().find(|(_, span)| span.is_some()) {
        return Err(cx.err(span.clone(), format!("[search] key `{key}` belongs to another kind of search; this one is over = \"{ours}\"")));
    }
    let start_rate = s.start_rate.as_ref().map_or(1000.0, |r| *r.get_ref());
    let max_rate = s.max_rate.as_ref().map_or(1_000_000.0, |r| *r.get_ref());
    if !start_rate.is_finite() || start_rate <= 0.0 || !max_rate.is_finite() || max_rate < start_rate {
        return Err(cx.err(Some(sec.span()), "[search] needs 0 < `start_rate` <= `max_rate`".into()));
    }
    let start_connections = s.start_connections.as_ref().map_or(100, |c| *c.get_ref());
    let max_connections = s.max_connections.as_ref().map_or(10_000, |c| *c.get_ref());
    if start_connections == 0 || max_connections < start_connections {
        return Err(cx.err(Some(sec.span()), "[search] needs 0 < `start_connections` <= `max_connections`".into()));
    }
    let rate_per_connection = match &s.rate_per_connection {
        Some(r) if !r.get_ref().is_finite() || *r.get_ref() <= 0.0 => {
            return Err(cx.err(Some(r.span()), format!("[search] key `rate_per_connection` must be above 0 msgs/s, not {}", r.get_ref())));
        }
        r => r.as_ref().map(|r| *r.get_ref()),
    };
    let max_probes = s.max_probes.unwrap_or(20);
    if max_probes < 2 {
        return Err(cx.err(Some(sec.span()), "[search] key `max_probes` must be at least 2 (one to bracket, one to refine)".into()));
    }
    let metric = s.metric.as_ref().map(|m| *m.get_ref()).unwrap_or_default();
    Ok(CapacitySearch { slo, over, metric, precision, start_rate, max_rate, start_connections, max_connections, rate_per_connection, max_probes })
}

impl CapacitySearch {
    /// The objective in words, naming the latency it bounds when that is not every message's:
    /// `p99 <= 5 ms`, `completion p95 <= 250 ms`.
    pub fn objective(&self) -> String {
        match self.metric {
            SearchMetric::Latency => self.slo.to_string(),
            SearchMetric::Completion => format!("completion {}", self.slo),
        }
    }
}

/// A configuration's load keys that a search sets itself, and what only a broadcast has.
fn check_search_config(search: &CapacitySearch, load: &LoadSection, workload: Option<Workload>, vname: &str) -> Result<(), String> {
    match search.over {
        SearchOver::Rate if load.rate.is_some() || load.rates.is_some() => {
            return Err(format!("config `{vname}`: [search] finds the rate itself; remove load keys `rate` and `rates`"));
        }
        SearchOver::Connections if load.connections.is_some() => {
            return Err(format!("config `{vname}`: [search] over = \"connections\" finds the connection count itself; remove load key `connections`"));
        }
        SearchOver::Connections if search.rate_per_connection.is_some() && (load.rate.is_some() || load.rates.is_some()) => {
            return Err(format!(
                "config `{vname}`: [search] key `rate_per_connection` sets the rate (connections × it); remove load keys `rate` and `rates`"
            ));
        }
        SearchOver::Connections if load.rates.is_some() => {
            return Err(format!("config `{vname}`: a search over connections cannot sweep `rates`; give one `rate` or `rate_per_connection`"));
        }
        _ => {}
    }
    if search.metric == SearchMetric::Completion && workload != Some(Workload::Broadcast) {
        return Err(format!(
            "config `{vname}`: [search] metric = \"completion\" is a broadcast's completion latency; set server key `workload = \"broadcast\"`"
        ));
    }
    Ok(())
}

fn resolve(name: &str, s: ServerSection, l: LoadSection) -> Result<ConfigSpec, String> {
    let cfg = |m: String| format!("config `{name}`: {m}");
    let server = match s.command {
        Some(command) => {
            let builtin_keys = [
                ("engine", s.engine.is_some()),
                ("workload", s.workload.is_some()),
                ("handler", s.handler.is_some()),
                ("runtime", s.runtime.is_some()),
                ("workers", s.workers.is_some()),
                ("max_message_size", s.max_message_size.is_some()),
                ("pause_every", s.pause_every.is_some()),
                ("pause_for", s.pause_for.is_some()),
                ("tls", s.tls.is_some()),
                ("tokens", s.tokens.is_some()),
                ("rooms", s.rooms.is_some()),
                ("echo_to_sender", s.echo_to_sender.is_some()),
                ("push_rate", s.push_rate.is_some()),
                ("push_size", s.push_size.is_some()),
                ("deflate", s.deflate.is_some()),
                ("deflate_server_max_window_bits", s.deflate_server_max_window_bits.is_some()),
                ("deflate_client_max_window_bits", s.deflate_client_max_window_bits.is_some()),
                ("deflate_server_no_context_takeover", s.deflate_server_no_context_takeover.is_some()),
                ("deflate_client_no_context_takeover", s.deflate_client_no_context_takeover.is_some()),
                ("allow_origin", s.allow_origin.is_some()),
                ("conn_rate", s.conn_rate.is_some()),
                ("conn_burst", s.conn_burst.is_some()),
            ];
            if let Some((k, _)) = builtin_keys.iter().find(|(_, set)| *set) {
                return Err(cfg(format!("server key `{k}` applies to the built-in server, but `command` runs an external one; remove one of them")));
            }
            if command.is_empty() {
                return Err(cfg("server key `command` is empty; give the program and its arguments, e.g. [\"node\", \"echo.js\", \"{port}\"]".into()));
            }
            ServerSpec::Command(CommandServer {
                command,
                ready_timeout: s.ready_timeout.unwrap_or(Duration::from_secs(10)),
                path: s.path.unwrap_or_else(|| "/".into()),
            })
        }
        None => {
            if s.ready_timeout.is_some() || s.path.is_some() {
                return Err(cfg("server keys `ready_timeout` and `path` apply only with `command`".into()));
            }
            let pause = match (s.pause_every, s.pause_for) {
                (None, None) => None,
                (Some(_), Some(f)) if f.is_zero() => None,
                (Some(every), Some(pause_for)) => {
                    if pause_for >= every {
                        return Err(cfg(format!("server key `pause_for` ({pause_for:?}) must be shorter than `pause_every` ({every:?})")));
                    }
                    Some(Pause { every, pause_for })
                }
                _ => return Err(cfg("server keys `pause_every` and `pause_for` go together; give both".into())),
            };
            let engine = s.engine.unwrap_or_default();
            // The bounds the server accepts an offer within.
            let deflate = deflate_keys("server", "engine", deflate_keys_of!(s), engine).map_err(cfg)?;
            let (allow_origins, conn_rate, conn_burst) = server_gate(&s).map_err(cfg)?;
            ServerSpec::Builtin(BuiltinServer {
                engine,
                workload: s.workload.unwrap_or_default(),
                handler: s.handler.unwrap_or_default(),
                runtime: s.runtime.unwrap_or_default(),
                workers: s.workers.map(|w| w.get()).unwrap_or(2),
                max_message_size: s.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
                pause,
                tls: s.tls.unwrap_or(false),
                tokens: s.tokens.unwrap_or(false),
                deflate,
                allow_origins,
                conn_rate,
                conn_burst,
                fanout: Fanout {
                    rooms: s.rooms.map_or(1, |r| r.get()),
                    echo_to_sender: s.echo_to_sender.unwrap_or(false),
                    publishers: l.publishers.map_or(1, |p| p.get()),
                    push_rate: s.push_rate.unwrap_or(Fanout::default().push_rate),
                    push_size: s.push_size.unwrap_or(Fanout::default().push_size),
                },
            })
        }
    };
    let (workload, fanout) = match &server {
        ServerSpec::Builtin(b) => (b.workload, b.fanout),
        ServerSpec::Command(_) => (Workload::Echo, Fanout::default()),
    };
    // What the client offers.
    let deflate = deflate_keys("load", "client", deflate_keys_of!(l), l.engine.unwrap_or_default()).map_err(cfg)?;
    let foreign = match (l.template, l.match_json, l.match_regex) {
        (None, None, None) => None,
        (Some(template), Some(p), None) => Some(crate::plan::Foreign { template, correlation: crate::plan::Correlation::MatchJson(p) }),
        (Some(template), None, Some(r)) => Some(crate::plan::Foreign { template, correlation: crate::plan::Correlation::MatchRegex(r) }),
        (Some(_), None, None) => return Err(cfg("load key `template` needs a correlation rule: `match_json` (a JSON pointer such as \"/id\") or `match_regex`".into())),
        (Some(_), Some(_), Some(_)) => return Err(cfg("load keys `match_json` and `match_regex` exclude each other; give one".into())),
        (None, _, _) => return Err(cfg("load keys `match_json` and `match_regex` pair replies with a `template`'s requests; give `template` too".into())),
    };
    if foreign.is_some() {
        if workload != Workload::Echo {
            return Err(cfg(format!("load key `template` drives request-reply servers; the built-in server's workload is `{}`", workload.name())));
        }
        if l.engine == Some(Engine::ZeroAlloc) {
            return Err(cfg("load key `template` runs on the tungstenite client; remove load key `engine = \"zero-alloc\"`".into()));
        }
    }
    let stages = l.stages.clone().unwrap_or_default();
    let connections = l.connections.map(|c| c.get()).unwrap_or(10);
    let duration = if stages.is_empty() {
        l.duration.unwrap_or(Duration::from_secs(10))
    } else {
        if l.rates.is_some() || l.sizes.is_some() {
            return Err(cfg("load key `stages` is a ramp of its own; it does not combine with `rates` or `sizes`".into()));
        }
        let total = crate::plan::check_stages(&stages, l.rate, "load key `stages`").map_err(cfg)?;
        if l.duration.is_some_and(|d| d != total) {
            return Err(cfg(format!(
                "load key `duration` ({}) differs from the stages' sum ({}); leave `duration` out with stages",
                crate::units::format_duration(l.duration.unwrap_or_default()),
                crate::units::format_duration(total)
            )));
        }
        total
    };
    let load = LoadSpec {
        connections,
        connect_rate: l.connect_rate.unwrap_or(1000.0),
        size: l.size.unwrap_or(32),
        // A template is text unless said otherwise: JSON and most protocols are.
        mode: l.mode.unwrap_or(if foreign.is_some() { Mode::Text } else { Mode::default() }),
        engine: l.engine.unwrap_or_default(),
        duration,
        warmup: l.warmup.unwrap_or(Duration::from_secs(2)),
        in_flight: l.in_flight.map(|c| c.get()).unwrap_or(1),
        rate: l.rate,
        processes: l.processes.map(|c| c.get()).unwrap_or(1),
        threads: l.threads.map(|c| c.get()).unwrap_or(1),
        drain_timeout: l.drain_timeout.unwrap_or(Duration::from_secs(2)),
        interval: l.interval.unwrap_or(DEFAULT_INTERVAL),
        max_loss: l.max_loss.unwrap_or(0.0),
        max_failed_connections: l.max_failed_connections.unwrap_or(0),
        realtime: l.realtime.unwrap_or(false),
        spin: l.spin.unwrap_or(Duration::ZERO),
        coalesce: l.coalesce.unwrap_or_default(),
        workload,
        fanout,
        foreign,
        churn: crate::plan::Churn {
            reconnect_after: l.reconnect_after,
            connection_lifetime: l.connection_lifetime,
            lifetime_jitter: l.lifetime_jitter.unwrap_or(0.0),
        },
        stages,
        idle: l
            .idle
            .iter()
            .flatten()
            .map(|d| crate::units::parse_duration(d).map_err(|e| cfg(format!("load key `idle`: {e}"))))
            .collect::<Result<_, _>>()?,
        ping_interval: l.ping_interval,
        nodelay: l.nodelay.unwrap_or(true),
        deflate,
        rx_timestamps: l.rx_timestamps.unwrap_or_default(),
        origin: l.origin.clone(),
        bulk: false,
    };
    if load.rx_timestamps == crate::plan::RxTimestamps::Kernel && (load.engine != Engine::ZeroAlloc || load.workload.is_fanout() || !load.idle.is_empty()) {
        return Err(cfg("load key `rx_timestamps = \"kernel\"` is for the zero-alloc client's echo load: set `engine = \"zero-alloc\"`, and no fan-out workload or `idle`".into()));
    }
    if load.deflate.is_some() && load.foreign.is_some() {
        return Err(cfg("load key `deflate` runs on the zero-alloc client, and `template` on the tungstenite client; remove one".into()));
    }
    if let Some(o) = &load.origin {
        check_origin(o).map_err(|e| cfg(format!("load key `origin`: {e}")))?;
    }
    if load.ping_interval.is_some() && load.idle.is_empty() {
        return Err(cfg("load key `ping_interval` applies to the idle probe (load key `idle`)".into()));
    }
    if let Err(e) = check_fanout(&load) {
        return Err(cfg(e));
    }
    if let Err(e) = load.churn.validate() {
        // The flags' names, as the scenario's keys.
        return Err(cfg(e.replace("--reconnect-after", "load key `reconnect_after`").replace("--connection-lifetime", "load key `connection_lifetime`").replace("--lifetime-jitter", "load key `lifetime_jitter`")));
    }
    if !load.churn.is_off() && load.workload.is_fanout() {
        return Err(cfg("load keys `reconnect_after` and `connection_lifetime` apply to the echo workload only".into()));
    }
    if let Some(why) = crate::plan::pacing_conflict(load.spin, load.coalesce, load.workload) {
        return Err(cfg(format!("load keys `spin` and `coalesce` {why}")));
    }
    if load.spin > crate::plan::MAX_SPIN {
        return Err(cfg(format!("load key `spin` is {}; spinning longer than {} only burns a core", crate::units::format_duration(load.spin), crate::units::format_duration(crate::plan::MAX_SPIN))));
    }
    if load.interval < MIN_INTERVAL {
        return Err(cfg(format!("load key `interval` is {}; the shortest histogram interval is {}", crate::units::format_duration(load.interval), crate::units::format_duration(MIN_INTERVAL))));
    }
    if load.size < HEADER_LEN as u64 {
        return Err(cfg(format!("load key `size` is {} bytes; the smallest message is {HEADER_LEN} bytes (the header)", load.size)));
    }
    if let ServerSpec::Builtin(b) = &server {
        if load.size > b.max_message_size {
            return Err(cfg(format!("load key `size` ({}) exceeds server key `max_message_size` ({})", load.size, b.max_message_size)));
        }
    }
    if load.duration.is_zero() {
        return Err(cfg("load key `duration` must be longer than 0s".into()));
    }
    if !load.connect_rate.is_finite() || load.connect_rate <= 0.0 {
        return Err(cfg("load key `connect_rate` must be above 0".into()));
    }
    if let Some(r) = load.rate {
        if !r.is_finite() || r <= 0.0 {
            return Err(cfg(format!("load key `rate` is {r}; it must be above 0 messages per second")));
        }
    }
    if load.processes > load.connections {
        return Err(cfg(format!("load key `processes` ({}) exceeds `connections` ({}); every process needs a connection", load.processes, load.connections)));
    }
    // The processes of a connection ramp run as its shards, each holding its places of every count.
    let fewest = load.stages.iter().filter_map(|s| s.connections).fold(load.connections, u32::min);
    if load.processes > fewest {
        return Err(cfg(format!("load key `processes` ({}) exceeds the {fewest} connections the ramp in `stages` falls to; every process needs one open at every instant", load.processes)));
    }
    Ok(ConfigSpec { name: name.to_owned(), group: None, server, load })
}

/// Keys `deflate` and `deflate_*` of one section, as written.
#[derive(Clone, Copy)]
struct DeflateKeys {
    on: Option<bool>,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
    server_no_context_takeover: Option<bool>,
    client_no_context_takeover: Option<bool>,
}

/// Keys `deflate` and `deflate_*` of `section` (`server`, `load`), named as the flags are on
/// both sides: the bounds the server accepts an offer within, or what the client offers.
/// `side` names what runs there (`engine`, `client`).
fn deflate_keys(section: &str, side: &str, k: DeflateKeys, engine: Engine) -> Result<Option<DeflateConfig>, String> {
    let params = [
        ("deflate_server_max_window_bits", k.server_max_window_bits.is_some()),
        ("deflate_client_max_window_bits", k.client_max_window_bits.is_some()),
        ("deflate_server_no_context_takeover", k.server_no_context_takeover.is_some()),
        ("deflate_client_no_context_takeover", k.client_no_context_takeover.is_some()),
    ];
    if k.on != Some(true) {
        return match params.iter().find(|(_, set)| *set) {
            Some((p, _)) => Err(format!("{section} key `{p}` is a parameter of permessage-deflate; add {section} key `deflate = true`")),
            None => Ok(None),
        };
    }
    if engine != Engine::ZeroAlloc {
        return Err(format!(
            "{section} key `deflate` needs {section} key `engine = \"zero-alloc\"`: the {} {side} (tungstenite 0.29) has no permessage-deflate",
            engine.name()
        ));
    }
    let range = crate::codec::deflate::MIN_WINDOW_BITS..=crate::codec::deflate::MAX_WINDOW_BITS;
    for (p, v) in [("deflate_server_max_window_bits", k.server_max_window_bits), ("deflate_client_max_window_bits", k.client_max_window_bits)] {
        if let Some(b) = v.filter(|b| !range.contains(b)) {
            return Err(format!("{section} key `{p}` is {b}; window bits go from {} to {}", range.start(), range.end()));
        }
    }
    Ok(Some(DeflateConfig {
        server_max_window_bits: k.server_max_window_bits.unwrap_or(crate::codec::deflate::MAX_WINDOW_BITS),
        client_max_window_bits: k.client_max_window_bits,
        server_no_context_takeover: k.server_no_context_takeover.unwrap_or(false),
        client_no_context_takeover: k.client_no_context_takeover.unwrap_or(false),
    }))
}


/// Origins allowed, upgrades per second per peer, and the burst.
type Gate = (Vec<String>, Option<f64>, Option<u32>);

/// Server keys `allow_origin`, `conn_rate` and `conn_burst`, checked as the server's flags are.
fn server_gate(s: &ServerSection) -> Result<Gate, String> {
    let origins = s.allow_origin.clone().unwrap_or_default();
    for o in &origins {
        check_origin(o).map_err(|e| format!("server key `allow_origin`: {e}"))?;
    }
    if let Some(r) = s.conn_rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(format!("server key `conn_rate` is {r}; give upgrades per second per peer, above 0"));
    }
    match (s.conn_rate, s.conn_burst) {
        (None, Some(_)) => Err("server key `conn_burst` is the burst of `conn_rate`; give `conn_rate` too".into()),
        (_, Some(0)) => Err("server key `conn_burst` must be at least 1: a peer with an empty bucket could never connect".into()),
        (rate, burst) => Ok((origins, rate, burst)),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
fn check_origin(o: &str) -> Result<(), String> {
    let host = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
    match host.map(|h| h.strip_suffix('/').unwrap_or(h)) {
        Some(h) if !h.is_empty() && !h.contains(['/', '?', '#', ' ', '\r', '\n']) => Ok(()),
        _ => Err(format!("{o:?} is not an origin; give scheme://host[:port] with no path, e.g. https://a.example")),
    }
}

/// What the broadcast, push and sink workloads need of a configuration.
fn check_fanout(load: &LoadSpec) -> Result<(), String> {
    let f = &load.fanout;
    match load.workload {
        Workload::Echo => return Ok(()),
        Workload::Push => {
            if !(f.push_rate.is_finite() && f.push_rate > 0.0) {
                return Err(format!("server key `push_rate` is {}; it must be above 0 messages per second per connection", f.push_rate));
            }
            if f.push_size < HEADER_LEN as u64 || f.push_size > 64 << 10 {
                return Err(format!("server key `push_size` is {}; it must be between {HEADER_LEN} and 65536 bytes", f.push_size));
            }
        }
        Workload::Broadcast | Workload::Sink => {
            if load.rate.is_none() {
                return Err(format!("workload `{}` is open loop: give load key `rate`", load.workload.name()));
            }
        }
    }
    if load.workload == Workload::Broadcast && (f.rooms > load.connections || f.publishers > load.connections) {
        return Err(format!("server key `rooms` ({}) and load key `publishers` ({}) must not exceed `connections` ({})", f.rooms, f.publishers, load.connections));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("scenarios/t.toml"), text)
    }

    #[test]
    fn template_keys_make_a_foreign_load_that_reaches_the_plan() {
        let s = parse("[server]\ncommand = [\"srv\", \"{port}\"]\n[load]\ntemplate = '{\"id\":{seq}}'\nmatch_json = \"/id\"\n").unwrap();
        let load = &s.configs[0].load;
        assert_eq!(load.mode, Mode::Text, "a template is text unless said otherwise");
        let plan = load.plan("ws://127.0.0.1:1/");
        let f = plan.foreign.as_ref().expect("the plan carries the template");
        assert_eq!((f.template.as_str(), &f.correlation), ("{\"id\":{seq}}", &crate::plan::Correlation::MatchJson("/id".into())));
        assert!(plan.to_args().windows(2).any(|w| w == ["--match-json", "/id"]));
        let s = parse("[load]\ntemplate = '{seq}'\nmatch_regex = '(\\d+)'\nmode = \"binary\"\n").unwrap();
        assert_eq!(s.configs[0].load.mode, Mode::Binary);

        for (text, says) in [
            ("[load]\ntemplate = '{seq}'\n", "needs a correlation rule"),
            ("[load]\nmatch_json = '/id'\n", "give `template` too"),
            ("[load]\ntemplate = '{seq}'\nmatch_json = '/id'\nmatch_regex = '(x)'\n", "exclude each other"),
            ("[load]\ntemplate = '{seq}'\nmatch_json = '/id'\nengine = \"zero-alloc\"\n", "tungstenite client"),
            ("[server]\nworkload = \"sink\"\n[load]\nrate = 10\ntemplate = '{seq}'\nmatch_json = '/id'\n", "request-reply"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn names_that_would_leave_the_results_folder_name_file_line_and_key() {
        let e = parse("name = \"../evil\"\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(1), "{e}");
        assert!(e.message.contains("key `name`") && e.message.contains("\"../evil\""), "{e}");
        let e = parse("name = \"s\"\n[[configs]]\nname = \"ok\"\n[[configs]]\nname = \"/tmp/x\"\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(5), "{e}");
        assert!(e.message.contains("key `configs.name`") && e.message.contains("\"/tmp/x\""), "{e}");
        let e = Scenario::parse(Path::new("dir/...toml"), "").unwrap_err();
        assert!(e.message.contains("set key `name`"), "{e}");
        // Matrix and sweep names are made by wsbench and slugged, never refused.
        assert!(parse("[matrix]\n\"load.in_flight\" = [1, 2]\n").is_ok());
    }

    fn set(s: &str) -> Setting {
        s.parse().unwrap()
    }

    #[test]
    fn settings_win_over_every_configuration() {
        let text = "trials = 3\n[load]\nsize = 64\n[[configs]]\nname = \"a\"\nload = { rate = 500 }\n[[configs]]\nname = \"b\"\nload = { rates = [1, 2] }\n";
        let s = Scenario::parse_with(Path::new("t.toml"), text, &[set("load.rate=20000"), set("trials=1"), set("load.duration=5s"), set("server.engine=zero-alloc")]).unwrap();
        assert_eq!(s.trials, 1);
        // The sweep of `b` became one rate: two configurations, both at the rate given.
        assert_eq!(s.configs.len(), 2);
        for c in &s.configs {
            assert_eq!(c.load.rate, Some(20000.0), "{}", c.name);
            assert_eq!(c.load.duration, Duration::from_secs(5));
            assert!(matches!(&c.server, ServerSpec::Builtin(b) if b.engine == Engine::ZeroAlloc));
        }
        // Without settings nothing changes.
        assert_eq!(Scenario::parse(Path::new("t.toml"), text).unwrap().configs.len(), 3);
    }

    #[test]
    fn sizes_sweep_one_configuration_per_size() {
        let s = parse("[load]\nsizes = \"seed\"\n").unwrap();
        let mut sizes = seed_sizes();
        sizes.push(1_762_560);
        assert_eq!(s.configs.iter().map(|c| c.load.size).collect::<Vec<_>>(), sizes);
        assert_eq!(s.configs[0].name, "1020B");
        assert_eq!(s.configs[11].load.size, 1_762_560);
        // The bulk cross-check: the largest size, one connection, a closed-loop pipeline.
        let bulk = &s.configs[12];
        assert_eq!((bulk.name.as_str(), bulk.load.bulk, bulk.load.connections, bulk.load.in_flight, bulk.load.rate), ("bulk", true, 1, BULK_IN_FLIGHT, None));
        assert!(s.configs[..12].iter().all(|c| !c.load.bulk));
        let s = parse("[load]\nrate = 100\nconnections = 4\nsizes = [64, \"4KiB\"]\n[[configs]]\nname = \"zero\"\nserver = { engine = \"zero-alloc\" }\n[[configs]]\nname = \"tung\"\n").unwrap();
        let names: Vec<&str> = s.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["zero@64B", "zero@4096B", "zero@bulk", "tung@64B", "tung@4096B", "tung@bulk"]);
        assert_eq!((s.configs[2].load.size, s.configs[2].load.rate), (4096, None));
        // One-way workloads have no echo to stream.
        let s = parse("[server]\nworkload = \"sink\"\n[load]\nrate = 100\nsizes = [64, 128]\n").unwrap();
        assert_eq!(s.configs.len(), 2);
        let e = parse("[load]\nsizes = [8]\n").unwrap_err();
        assert!(e.message.contains("header"), "{e}");
        let e = parse("[load]\nsizes = \"big\"\n").unwrap_err();
        assert!(e.message.contains("seed"), "{e}");
        let e = parse("[load]\nsize = 64\nsizes = [64, 128]\n").unwrap_err();
        assert!(e.message.contains("remove `size`"), "{e}");
    }

    #[test]
    fn bad_settings_say_which_setting_and_why() {
        for (bad, says) in [
            ("load.rate", "KEY=VALUE"),
            ("rate=5", "`rate` cannot be set"),
            ("load.rat=5", "rat"),
            ("load.connections=0", "load.connections"),
            ("trials=0", "between 1 and 1000"),
            ("server.engine=fast", "fast"),
        ] {
            let e = match bad.parse::<Setting>() {
                Err(e) => e,
                Ok(s) => Scenario::parse_with(Path::new("t.toml"), "", &[s]).unwrap_err().to_string(),
            };
            assert!(e.contains(says), "--set {bad}: {e}");
        }
        let e = Scenario::parse_with(Path::new("t.toml"), "", &[set("load.rate=abc")]).unwrap_err();
        assert_eq!(e.file, "--set load.rate=abc", "{e}");
    }

    #[test]
    fn a_key_after_multibyte_text_is_named_without_panicking() {
        // Found by the scenario fuzz target (its corpus keeps the whole input).
        let e = parse("[load]\n\"é\" = 1\nx=\"é\"é = 0\n");
        assert!(e.is_err());
        let text = std::str::from_utf8(b"name =88888888888888888889# The README's first command:\xd8\x9e\xdf\x8es fi").unwrap();
        assert!(parse(text).is_err());
    }

    #[test]
    fn bad_values_are_answered_in_our_words_with_their_key() {
        let e = parse("[load]\nconnections = 0\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(2), "{e}");
        assert!(e.message.contains("key `connections`") && e.message.contains("at least 1"), "{e}");
        assert!(!e.message.contains("u32"), "{e}");
        let e = parse("[[configs]]\nname = \"a\"\nload = { threads = 0 }\n").unwrap_err();
        assert!(e.message.contains("key `threads`") && e.message.contains("at least 1"), "{e}");
        let e = parse("[load]\nduration = \"abc\"\n").unwrap_err();
        assert!(e.message.contains("key `duration`") && e.message.contains("`abc` is not a duration;"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse("trials = 2\n[load]\nconnections = 5\nrat = 100\n").unwrap_err();
        assert_eq!(e.file, "scenarios/t.toml");
        assert_eq!(e.line.map(|l| l.0), Some(4), "{e}");
        assert!(e.to_string().contains("rat"), "{e}");
    }

    #[test]
    fn configs_overlay_the_base() {
        let s = parse(
            "[server]\nruntime = \"multi-thread\"\nworkers = 2\n[load]\nconnections = 4\n\
             [[configs]]\nname = \"ct\"\nserver = { runtime = \"current-thread\" }\n\
             [[configs]]\nname = \"mt\"\n",
        )
        .unwrap();
        assert_eq!(s.configs.len(), 2);
        let ServerSpec::Builtin(ct) = &s.configs[0].server else { panic!() };
        assert_eq!(ct.runtime, Runtime::CurrentThread);
        let ServerSpec::Builtin(mt) = &s.configs[1].server else { panic!() };
        assert_eq!(mt.runtime, Runtime::MultiThread);
        assert_eq!(s.configs[1].load.connections, 4);
        assert_eq!(s.name, "t");
    }

    #[test]
    fn load_engine_defaults_to_tungstenite_and_overlays() {
        let s = parse("[load]\nconnections = 4\n[[configs]]\nname = \"t\"\n[[configs]]\nname = \"z\"\nload = { engine = \"zero-alloc\" }\n").unwrap();
        assert_eq!(s.configs[0].load.engine, Engine::Tungstenite);
        assert_eq!(s.configs[1].load.engine, Engine::ZeroAlloc);
        assert_eq!(s.configs[1].load.connections, 4);
    }

    #[test]
    fn rx_timestamps_is_a_load_key_for_the_zero_alloc_echo_load() {
        use crate::plan::RxTimestamps;
        assert_eq!(parse("[load]\nconnections = 4\n").unwrap().configs[0].load.rx_timestamps, RxTimestamps::User);
        let s = parse("[load]\nengine = \"zero-alloc\"\nrate = 100\nrx_timestamps = \"kernel\"\n").unwrap();
        let plan = s.configs[0].load.plan("ws://127.0.0.1:1/echo");
        assert_eq!(plan.rx_timestamps, RxTimestamps::Kernel);
        assert!(plan.to_args().windows(2).any(|w| w[0] == "--rx-timestamps" && w[1] == "kernel"));
        let e = parse("[load]\nrx_timestamps = \"kernel\"\n").unwrap_err().to_string();
        assert!(e.contains("rx_timestamps") && e.contains("zero-alloc"), "{e}");
        let e = parse("[load]\nrx_timestamps = \"nic\"\n").unwrap_err().to_string();
        assert!(e.contains("rx_timestamps") || e.contains("unknown variant"), "{e}");
    }

    #[test]
    fn coalesce_is_auto_unless_asked_and_excludes_spinning() {
        use crate::plan::Coalesce;
        assert_eq!(parse("[load]\nconnections = 4\n").unwrap().configs[0].load.coalesce, Coalesce::Auto);
        assert_eq!(parse("[load]\ncoalesce = \"1ms\"\n").unwrap().configs[0].load.coalesce, Coalesce::Every(Duration::from_millis(1)));
        assert_eq!(parse("[load]\ncoalesce = \"0s\"\nspin = \"20us\"\n").unwrap().configs[0].load.coalesce, Coalesce::Every(Duration::ZERO));
        let e = parse("[load]\ncoalesce = \"1ms\"\nspin = \"20us\"\n").unwrap_err().to_string();
        assert!(e.contains("`spin` and `coalesce` exclude each other"), "{e}");
        let e = parse("[load]\ncoalesce = \"50ms\"\n").unwrap_err().to_string();
        assert!(e.contains("coalesce") && e.contains("10ms"), "{e}");
        // The plan carries it to the load generator's command line, and back.
        let plan = parse("[load]\ncoalesce = \"1ms\"\n").unwrap().configs[0].load.plan("ws://127.0.0.1:1/echo");
        assert_eq!(plan.coalesce, Coalesce::Every(Duration::from_millis(1)));
        let args = plan.to_args();
        assert!(args.windows(2).any(|w| w[0] == "--coalesce" && w[1] == "1ms"), "{args:?}");
    }

    #[test]
    fn spin_defaults_to_none_and_has_a_ceiling() {
        assert_eq!(parse("[load]\nconnections = 4\n").unwrap().configs[0].load.spin, Duration::ZERO);
        assert_eq!(parse("[load]\nspin = \"20us\"\n").unwrap().configs[0].load.spin, Duration::from_micros(20));
        let e = parse("[load]\nspin = \"5ms\"\n").unwrap_err();
        assert!(e.to_string().contains("spin") && e.to_string().contains("1ms"), "{e}");
    }

    #[test]
    fn interval_defaults_to_a_second_and_has_a_floor() {
        assert_eq!(parse("[load]\nconnections = 4\n").unwrap().configs[0].load.interval, DEFAULT_INTERVAL);
        assert_eq!(parse("[load]\ninterval = \"100ms\"\n").unwrap().configs[0].load.interval, Duration::from_millis(100));
        let e = parse("[load]\ninterval = \"10ms\"\n").unwrap_err();
        assert!(e.to_string().contains("interval") && e.to_string().contains("50ms"), "{e}");
    }

    #[test]
    fn churn_keys_reach_the_plan_and_are_checked() {
        let l = &parse("[load]\nreconnect_after = 10\nconnection_lifetime = \"30s\"\nlifetime_jitter = \"10%\"\n").unwrap().configs[0].load;
        assert_eq!(l.churn, crate::plan::Churn { reconnect_after: Some(10), connection_lifetime: Some(Duration::from_secs(30)), lifetime_jitter: 0.1 });
        assert_eq!(l.plan("ws://127.0.0.1:1/").churn, l.churn);
        assert!(parse("[load]\n").unwrap().configs[0].load.churn.is_off());
        let e = parse("[load]\nreconnect_after = 0\n").unwrap_err();
        assert!(e.to_string().contains("load key `reconnect_after`"), "{e}");
        let e = parse("[load]\nlifetime_jitter = 0.1\n").unwrap_err();
        assert!(e.to_string().contains("load key `connection_lifetime`"), "{e}");
    }

    #[test]
    fn a_connection_ramp_plans_for_its_most_connections_and_starts_from_the_load_s() {
        let ramp = "[load]\nconnections = 5\nrate = 100\n[[load.stages]]\nduration = \"2s\"\nrate = 100\nconnections = 50\n[[load.stages]]\nduration = \"1s\"\nrate = 100\nconnections = 10\n";
        let plan = parse(ramp).unwrap().configs[0].load.plan("ws://127.0.0.1:1/");
        assert_eq!((plan.connections, plan.start_connections, plan.first_connections()), (50, Some(5), 5));
        assert!(plan.ramps_connections());
        assert!(plan.to_args().windows(2).any(|w| w == ["--connections", "5"]), "the load generator is told the count it starts from");
        // Its processes run as its shards: each needs a place open at every instant.
        assert_eq!(parse(&ramp.replacen("rate = 100\n", "rate = 100\nprocesses = 5\n", 1)).unwrap().configs[0].load.processes, 5);
        let e = parse(&ramp.replacen("rate = 100\n", "rate = 100\nprocesses = 6\n", 1)).unwrap_err();
        assert!(e.to_string().contains("exceeds `connections` (5)"), "{e}");
        let e = parse(&ramp.replacen("connections = 5\n", "connections = 12\n", 1).replacen("rate = 100\n", "rate = 100\nprocesses = 11\n", 1)).unwrap_err();
        assert!(e.to_string().contains("the 10 connections the ramp in `stages` falls to"), "{e}");
        let e = parse(&ramp.replace("connections = 10", "connections = 0")).unwrap_err();
        assert!(e.to_string().contains("at least one connection"), "{e}");
        // Stages that keep the load's count ramp the rate only.
        let plan = parse("[load]\nconnections = 5\nrate = 100\n[[load.stages]]\nduration = \"1s\"\nrate = 200\nconnections = 5\n").unwrap().configs[0].load.plan("ws://x:1/");
        assert_eq!((plan.connections, plan.start_connections, plan.ramps_connections()), (5, None, false));
    }

    #[test]
    fn loss_and_failed_connection_budgets_default_to_none() {
        let l = &parse("[load]\nconnections = 4\n").unwrap().configs[0].load;
        assert_eq!((l.max_loss, l.max_failed_connections), (0.0, 0));
        let l = &parse("[load]\nmax_loss = \"0.1%\"\nmax_failed_connections = 3\n").unwrap().configs[0].load;
        assert_eq!((l.max_loss, l.max_failed_connections), (0.001, 3));
        assert_eq!(parse("[load]\nmax_loss = 0.02\n").unwrap().configs[0].load.max_loss, 0.02);
        let e = parse("[load]\nmax_loss = \"120%\"\n").unwrap_err();
        assert!(e.to_string().contains("120%"), "{e}");
    }

    #[test]
    fn matrix_is_the_cartesian_product() {
        let s = parse("[matrix]\n\"server.runtime\" = [\"current-thread\", \"multi-thread\"]\n\"load.in_flight\" = [1, 16]\n").unwrap();
        let names: Vec<_> = s.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["in_flight=1,runtime=current-thread", "in_flight=1,runtime=multi-thread", "in_flight=16,runtime=current-thread", "in_flight=16,runtime=multi-thread"]);
    }

    #[test]
    fn matrix_errors_point_at_the_key() {
        let e = parse("trials = 1\n[matrix]\n\"server.runtim\" = [\"x\"]\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(3), "{e}");
        assert!(e.message.contains("runtim"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = parse("[load]\nsize = \"tiny\"\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(2), "{e}");
        let e = parse("[server]\nruntime = \"fibers\"\n").unwrap_err();
        assert!(e.message.contains("current-thread"), "{e}");
        let e = parse("[load]\nsize = 8\n").unwrap_err();
        assert!(e.message.contains("size"), "{e}");
        assert_eq!(e.line.map(|l| l.0), Some(1), "{e}");
    }

    #[test]
    fn command_servers_reject_builtin_keys() {
        let e = parse("[server]\ncommand = [\"node\", \"echo.js\", \"{port}\"]\nruntime = \"current-thread\"\n").unwrap_err();
        assert!(e.message.contains("runtime"), "{e}");
        let s = parse("[server]\ncommand = [\"node\", \"echo.js\", \"{port}\"]\n").unwrap();
        assert!(matches!(s.configs[0].server, ServerSpec::Command(_)));
    }

    #[test]
    fn rates_make_a_sweep() {
        let s = parse("[load]\nrates = [1000, 2000]\n[[configs]]\nname = \"a\"\n[[configs]]\nname = \"b\"\n").unwrap();
        let names: Vec<_> = s.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a@1000", "a@2000", "b@1000", "b@2000"]);
        assert_eq!(s.configs[3].group.as_deref(), Some("b"));
        assert_eq!(s.configs[3].load.rate, Some(2000.0));
        let e = parse("[load]\nrate = 5\nrates = [1000]\n").unwrap_err();
        assert!(e.message.contains("rates"), "{e}");
    }

    #[test]
    fn search_is_parsed_and_located() {
        let s = parse("[search]\nslo = \"p99 <= 5ms\"\nprecision = \"10%\"\n").unwrap();
        let search = s.search.unwrap();
        assert_eq!(search.slo.bound_us, 5_000.0);
        assert_eq!(search.precision, 0.1);
        let e = parse("trials = 1\n[search]\nslo = \"p97 <= 5ms\"\n").unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(3), "{e}");
        let e = parse("[search]\nslo = \"p99 <= 5ms\"\n[load]\nrate = 100\n").unwrap_err();
        assert!(e.message.contains("rate"), "{e}");
    }

    #[test]
    fn a_search_over_connections_is_checked_like_the_rest() {
        let s = parse("[search]\nover = \"connections\"\nslo = \"p95 <= 250ms\"\nstart_connections = 50\nrate_per_connection = 10\n").unwrap();
        let search = s.search.unwrap();
        assert_eq!((search.over, search.start_connections, search.max_connections, search.rate_per_connection), (SearchOver::Connections, 50, 10_000, Some(10.0)));
        // Keys of the other kind of search are named, on their line.
        let e = parse("[search]\nover = \"connections\"\nslo = \"p95 <= 250ms\"\nmax_rate = 5000\n").unwrap_err();
        assert!(e.message.contains("`max_rate`") && e.message.contains("connections"), "{e}");
        assert_eq!(e.line.map(|l| l.0), Some(4), "{e}");
        let e = parse("[search]\nslo = \"p95 <= 250ms\"\nstart_connections = 5\n").unwrap_err();
        assert!(e.message.contains("`start_connections`"), "{e}");
        // The search sets the connections; a fixed total rate and rate_per_connection exclude each other.
        let e = parse("[search]\nover = \"connections\"\nslo = \"p95 <= 250ms\"\n[load]\nconnections = 10\n").unwrap_err();
        assert!(e.message.contains("connections"), "{e}");
        let e = parse("[search]\nover = \"connections\"\nslo = \"p95 <= 250ms\"\nrate_per_connection = 1\n[load]\nrate = 100\n").unwrap_err();
        assert!(e.message.contains("rate_per_connection"), "{e}");
        assert!(parse("[search]\nover = \"connections\"\nslo = \"p95 <= 250ms\"\n[load]\nrate = 100\n").is_ok());
        // Completion latency exists for broadcasts only.
        let e = parse("[search]\nover = \"connections\"\nmetric = \"completion\"\nslo = \"p95 <= 250ms\"\n").unwrap_err();
        assert!(e.message.contains("broadcast"), "{e}");
        let s = parse("[server]\nworkload = \"broadcast\"\n[load]\nrate = 100\n[search]\nover = \"connections\"\nmetric = \"completion\"\nslo = \"p95 <= 250ms\"\nstart_connections = 20\n").unwrap();
        assert_eq!(s.configs[0].load.connections, 20, "checked as its first probe runs");
        let e = parse("[search]\nover = \"conns\"\nslo = \"p95 <= 250ms\"\n").unwrap_err();
        assert!(e.message.contains("over"), "{e}");
    }

    #[test]
    fn deflate_keys_reach_both_plans_and_tungstenite_declines_them_by_key_and_config() {
        let s = parse(
            "[server]\nengine = \"zero-alloc\"\ndeflate = true\ndeflate_server_max_window_bits = 10\ndeflate_client_no_context_takeover = true\n\
             [load]\nengine = \"zero-alloc\"\ndeflate = true\n",
        )
        .unwrap();
        let c = &s.configs[0];
        let ServerSpec::Builtin(b) = &c.server else { panic!() };
        let d = b.deflate.expect("deflate reaches the server");
        assert_eq!((d.server_max_window_bits, d.client_max_window_bits, d.server_no_context_takeover, d.client_no_context_takeover), (10, None, false, true));
        let args = b.plan("127.0.0.1:0".parse().unwrap(), None, None).to_args();
        assert!(args.windows(2).any(|w| w == ["--deflate-server-max-window-bits", "10"]) && args.contains(&"--deflate-client-no-context-takeover".into()), "{args:?}");
        assert!(c.load.plan("ws://127.0.0.1:1/").to_args().contains(&"--deflate".into()));
        // The client's offer takes the same parameters, under the load section.
        let s = parse("[load]\nengine = \"zero-alloc\"\ndeflate = true\ndeflate_client_max_window_bits = 10\ndeflate_server_no_context_takeover = true\n").unwrap();
        let plan = s.configs[0].load.plan("ws://127.0.0.1:1/");
        let d = plan.deflate.expect("deflate reaches the load generator");
        assert_eq!((d.server_max_window_bits, d.client_max_window_bits, d.server_no_context_takeover, d.client_no_context_takeover), (15, Some(10), true, false));
        let args = plan.to_args();
        assert!(args.windows(2).any(|w| w == ["--deflate-client-max-window-bits", "10"]) && args.contains(&"--deflate-server-no-context-takeover".into()), "{args:?}");
        // Without the keys nothing is offered or accepted.
        let plain = &parse("[server]\nengine = \"zero-alloc\"\n").unwrap().configs[0];
        assert!(matches!(&plain.server, ServerSpec::Builtin(b) if b.deflate.is_none()) && plain.load.plan("ws://x/").deflate.is_none());

        for (text, says, line) in [
            ("[server]\ndeflate = true\n", "server key `deflate` needs server key `engine = \"zero-alloc\"`: the tungstenite engine", 1),
            ("[[configs]]\nname = \"tung\"\nload = { deflate = true }\n", "config `tung`: load key `deflate` needs load key `engine = \"zero-alloc\"`", 3),
            ("[server]\nengine = \"zero-alloc\"\ndeflate_server_max_window_bits = 10\n", "add server key `deflate = true`", 1),
            ("[server]\nengine = \"zero-alloc\"\ndeflate = true\ndeflate_client_max_window_bits = 8\n", "server key `deflate_client_max_window_bits` is 8", 1),
            ("[server]\ncommand = [\"x\"]\ndeflate = true\n", "server key `deflate` applies to the built-in server", 1),
            ("[load]\nengine = \"zero-alloc\"\ndeflate_client_no_context_takeover = true\n", "add load key `deflate = true`", 1),
            ("[load]\nengine = \"zero-alloc\"\ndeflate = true\ndeflate_server_max_window_bits = 16\n", "load key `deflate_server_max_window_bits` is 16", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("scenarios/t.toml:{line}:")), "{text}: {e}");
        }
        let e = parse("[server]\ndeflate = \"yes\"\n").unwrap_err();
        assert!(e.message.contains("key `deflate`"), "{e}");
    }

    #[test]
    fn gate_keys_reach_the_server_and_the_origin_the_load_generator() {
        let s = parse("[server]\nallow_origin = [\"https://a.example\", \"http://b:8080\"]\nconn_rate = \"50/s\"\nconn_burst = 5\n[load]\norigin = \"https://a.example\"\n").unwrap();
        let ServerSpec::Builtin(b) = &s.configs[0].server else { panic!() };
        assert_eq!(b.gate_args(), ["--allow-origin", "https://a.example", "--allow-origin", "http://b:8080", "--conn-rate", "50", "--conn-burst", "5"]);
        assert_eq!(s.configs[0].load.plan("ws://x/").headers, [("Origin".to_owned(), "https://a.example".to_owned())]);
        for (text, says) in [
            ("[server]\nallow_origin = [\"a.example\"]\n", "server key `allow_origin`: \"a.example\" is not an origin"),
            ("[server]\nconn_burst = 5\n", "give `conn_rate` too"),
            ("[server]\nconn_rate = 5\nconn_burst = 0\n", "at least 1"),
            ("[server]\nconn_rate = 0\n", "the rate must be above 0"),
            ("[server]\nconn_rate = \"50/h\"\n", "per second or per minute"),
            ("[load]\norigin = \"https://a.example/path\"\n", "load key `origin`"),
            ("[server]\ncommand = [\"x\"]\nconn_rate = 5\n", "server key `conn_rate` applies to the built-in server"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn pauses_need_both_keys() {
        let e = parse("[server]\npause_every = \"1s\"\n").unwrap_err();
        assert!(e.message.contains("pause_for"), "{e}");
        let s = parse("[server]\npause_every = \"1s\"\npause_for = \"50ms\"\n").unwrap();
        let ServerSpec::Builtin(b) = &s.configs[0].server else { panic!() };
        assert_eq!(b.pause.unwrap().pause_for, Duration::from_millis(50));
    }

    #[test]
    fn fanout_keys_reach_both_plans_and_bad_combinations_are_named() {
        let s = parse("[server]\nworkload = \"broadcast\"\nrooms = 4\necho_to_sender = true\n[load]\nconnections = 40\npublishers = 8\nrate = 400\n").unwrap();
        let c = &s.configs[0];
        let ServerSpec::Builtin(b) = &c.server else { panic!() };
        assert_eq!((b.workload, b.fanout.rooms, b.fanout.echo_to_sender), (Workload::Broadcast, 4, true));
        assert_eq!((c.load.workload, c.load.fanout.publishers, c.load.fanout.rooms), (Workload::Broadcast, 8, 4));
        let e = parse("[server]\nworkload = \"broadcast\"\n[load]\nconnections = 4\n").unwrap_err();
        assert!(e.message.contains("give load key `rate`"), "{e}");
        // Processes of a broadcast run as shards of its rooms (see `wsbench run`).
        assert_eq!(parse("[server]\nworkload = \"broadcast\"\n[load]\nconnections = 4\nrate = 10\nprocesses = 2\n").unwrap().configs[0].load.processes, 2);
        let e = parse("[server]\ncommand = [\"x\"]\nrooms = 2\n").unwrap_err();
        assert!(e.message.contains("server key `rooms` applies to the built-in server"), "{e}");
        let s = parse("[server]\nworkload = \"push\"\npush_rate = 50\npush_size = \"1KiB\"\n").unwrap();
        assert_eq!((s.configs[0].load.fanout.push_rate, s.configs[0].load.fanout.push_size), (50.0, 1024));
        let e = parse("[server]\nworkload = \"push\"\npush_size = 8\n").unwrap_err();
        assert!(e.message.contains("push_size"), "{e}");
    }
}

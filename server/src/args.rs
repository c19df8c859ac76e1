//! The server's command line, and its conversion into a [`ServerPlan`].
//!
//! The flags are exactly those [`ServerPlan::to_args`] prints, so a server started by hand and
//! one started by `wsbench run` are configured the same way; a unit test holds the two together.
//! Parsing checks the syntax of each value; [`ServerArgs::into_plan`] checks how they combine.
//! This module knows nothing of sockets or runtimes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use wsbench_core::codec::deflate::{self, DeflateConfig};
use wsbench_core::header::HEADER_LEN;
use wsbench_core::plan::{Engine, Fanout, Handler, Pause, Runtime, ServerPlan, TlsFiles, Workload};
use wsbench_core::units::{parse_duration, parse_size};

use crate::gate::GateConfig;
use crate::limits::{default_max_connections, Limits};

/// Options of `wsbench-server` and of `wsbench server`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed on stdout).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,

    /// WebSocket implementation under test.
    #[arg(long, value_name = "ENGINE", default_value = "tungstenite", value_parser = named(ENGINES, Engine::name))]
    pub engine: Engine,

    /// What the server does with each message.
    #[arg(long, value_name = "WORKLOAD", default_value = "echo", value_parser = named(WORKLOADS, Workload::name))]
    pub workload: Workload,

    /// How the workload treats each message: zero-alloc works on the received bytes; alloc decodes
    /// into owned values and round-trips through serde_json like ordinary application code.
    #[arg(long, value_name = "HANDLER", default_value = "zero-alloc", value_parser = named(HANDLERS, Handler::name))]
    pub handler: Handler,

    /// Tokio runtime flavour: one thread for everything, or a work-stealing pool of --workers threads.
    #[arg(long, value_name = "RUNTIME", default_value = "multi-thread", value_parser = named(RUNTIMES, Runtime::name))]
    pub runtime: Runtime,

    /// Worker threads of the multi-thread runtime (ignored by current-thread).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,

    /// Largest message (and frame) accepted, e.g. 64KiB or 16MiB; larger ones are closed with code 1009.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_message_size: u64,

    /// Emulate a stop-the-world pause (like a garbage collector) this often, e.g. 1s; needs --pause-for.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pause_every: Option<Duration>,

    /// How long each emulated pause freezes every runtime thread, e.g. 50ms; shorter than --pause-every.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pause_for: Option<Duration>,

    /// Serve TLS (wss://) with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Subprotocols spoken (e.g. chat,superchat): the server answers with the first of the
    /// client's offer that is among them, and with none when none is.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub subprotocols: Vec<String>,

    /// Refuse an upgrade (400) that offers none of --subprotocols.
    #[arg(long, requires = "subprotocols")]
    pub require_subprotocol: bool,

    #[command(flatten)]
    pub deflate: DeflateArgs,

    /// Directory for server.json and server-latency.hlog (created if missing); nothing is written without it.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub fanout: FanoutArgs,

    #[command(flatten)]
    pub gate: GateArgs,
}

/// Who may open a WebSocket. Each refusal is counted by cause in /metrics and server.json
/// (`limits_reached`); the settings are in server.json's config (`gate`). /healthz, /metrics
/// and /client are not gated.
#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
#[command(next_help_heading = "Gatekeeping")]
pub struct GateArgs {
    /// Allow upgrades from this origin only (repeatable), e.g. https://a.example; another Origin
    /// gets HTTP 403. An upgrade without an Origin header passes: browsers always send one, and
    /// origin checks protect browsers' users; tools (and the load generator) send none.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = crate::gate::parse_origin)]
    pub allow_origins: Vec<String>,

    /// Ask every upgrade for ?token=<expiry>.<mac>, HMAC-SHA256 keyed with this file's bytes
    /// (at least 16; `wsbench token` mints one). No token: 401; forged or malformed: 403;
    /// expired: 401. A /client page carries a token valid 60s, so whoever can load the page can
    /// connect (turn it off with --no-client-page).
    #[arg(long, value_name = "FILE")]
    pub token_secret: Option<PathBuf>,

    /// WebSocket upgrades allowed per peer IP address, e.g. 100/s or 6000/min; beyond it HTTP 429
    /// with Retry-After. A token bucket per peer that starts full at --conn-burst.
    #[arg(long, value_name = "RATE", value_parser = crate::gate::parse_rate)]
    pub conn_rate: Option<f64>,

    /// Upgrades a peer may make at once before --conn-rate applies: its bucket's size, and what
    /// it holds at the peer's first upgrade. Default: one second of --conn-rate (at least 1).
    #[arg(long, value_name = "N", requires = "conn_rate")]
    pub conn_burst: Option<u32>,

    /// Do not serve the browser page at GET /client (404).
    #[arg(long)]
    pub no_client_page: bool,
}

impl GateArgs {
    /// The gate's settings (the secret's file is read by the caller).
    pub fn into_config(self) -> Result<GateConfig, String> {
        if self.conn_burst == Some(0) {
            return Err("--conn-burst must be at least 1: a peer with an empty bucket could never connect".into());
        }
        let conn_burst = self
            .conn_rate
            .map(|r| self.conn_burst.unwrap_or_else(|| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32));
        Ok(GateConfig {
            allow_origins: self.allow_origins,
            token_secret: self.token_secret,
            page_token_ttl_s: None,
            conn_rate_per_s: self.conn_rate,
            conn_burst,
            client_page: !self.no_client_page,
        })
    }
}

/// permessage-deflate (RFC 7692); the parameter names are the RFC's.
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Compression (permessage-deflate, RFC 7692)")]
pub struct DeflateArgs {
    /// Accept permessage-deflate when a client offers it (--engine zero-alloc only: tungstenite
    /// 0.29 has no permessage-deflate, so the tungstenite engine always declines the offer).
    #[arg(long)]
    pub deflate: bool,

    /// Compress with at most this LZ77 window (9-15 bits; less if the client asks for less).
    #[arg(long, value_name = "BITS", requires = "deflate", value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_server_max_window_bits: Option<u8>,

    /// Ask the client to compress with at most this window (9-15 bits), when its offer allows.
    #[arg(long, value_name = "BITS", requires = "deflate", value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_client_max_window_bits: Option<u8>,

    /// Reset the server's compressor after every message (less memory kept, worse ratio).
    #[arg(long, requires = "deflate")]
    pub deflate_server_no_context_takeover: bool,

    /// Ask the client to reset its compressor after every message.
    #[arg(long, requires = "deflate")]
    pub deflate_client_no_context_takeover: bool,
}

impl DeflateArgs {
    fn into_config(self) -> Option<DeflateConfig> {
        self.deflate.then(|| DeflateConfig {
            server_max_window_bits: self.deflate_server_max_window_bits.unwrap_or(deflate::MAX_WINDOW_BITS),
            client_max_window_bits: self.deflate_client_max_window_bits,
            server_no_context_takeover: self.deflate_server_no_context_takeover,
            client_no_context_takeover: self.deflate_client_no_context_takeover,
        })
    }
}

/// Settings of the broadcast and push workloads.
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Broadcast and push")]
pub struct FanoutArgs {
    /// Broadcast: rooms; a client joins room K with the path /room/K (K < N), otherwise by its connection index.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rooms: u32,

    /// Broadcast: deliver a message to its sender too.
    #[arg(long)]
    pub echo_to_sender: bool,

    /// Push: messages per second sent to each connection, on an open-loop schedule.
    #[arg(long, value_name = "RATE", default_value_t = 100.0)]
    pub push_rate: f64,

    /// Push: size of each message, header included (at least 32 bytes), e.g. 1KiB.
    #[arg(long, value_name = "SIZE", default_value = "32", value_parser = parse_size)]
    pub push_size: u64,
}

impl FanoutArgs {
    fn into_fanout(self) -> Result<Fanout, String> {
        if self.rooms == 0 {
            return Err("--rooms must be at least 1".into());
        }
        if !(self.push_rate.is_finite() && self.push_rate > 0.0 && self.push_rate <= 1e6) {
            return Err(format!("--push-rate {} must be above 0 and at most 1000000 messages per second per connection", self.push_rate));
        }
        if self.push_size < HEADER_LEN as u64 || self.push_size > MAX_PUSH_SIZE {
            return Err(format!("--push-size {} must be between {HEADER_LEN} bytes (the header) and 64KiB", self.push_size));
        }
        Ok(Fanout {
            rooms: self.rooms,
            echo_to_sender: self.echo_to_sender,
            publishers: Fanout::default().publishers,
            push_rate: self.push_rate,
            push_size: self.push_size,
        })
    }
}

/// Largest pushed message: one frame of it fits a receiver's queue many times over.
pub const MAX_PUSH_SIZE: u64 = 64 << 10;

/// The limits that keep one client, or many, from knocking the server over. Each one reached is
/// counted in /metrics; the values are recorded in server.json's config (`limits`).
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Server-wide memory for partially received messages (and, on the zero-alloc engine, the large-message buffers connections keep between messages, kept only while at most half of it is spent); the connection that would go past it is closed with 1008.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_buffered: u64,

    /// Close a connection (1008) that has half a message in and sends nothing more for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Ping a connection that has sent nothing for this long (0s: never).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Drop a pinged connection (1011) that sends nothing at all for this long.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub pong_timeout: Duration,

    /// How long a closing connection waits for the client's close frame (shutdown waits at most 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// How long a client may take to send its HTTP request head.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Unsent output a connection may queue beyond the one message being written; a client that leaves more unread is closed with 1008.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_write_buffer: u64,

    /// Sockets served at once, pending handshakes included; more get HTTP 503. Default: the open-file limit (ulimit -n) less 64.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Zero-alloc engine: a connection quiet this long (nothing half-read or unwritten) leaves its task and waits in the server's epoll set, about 230 B instead of 1.7 KiB. Waking it again costs a few allocations and some CPU, so loads sparser than one message per connection per this long are no longer allocation-free. A quiet connection also gives back the large-message buffer it kept (after 1s when parking is off). 0s: never park.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub park_after: Duration,
}

impl LimitArgs {
    /// Checks the limits and returns them; the error names the flag and what to change.
    pub fn into_limits(self) -> Result<Limits, String> {
        let size = |v: u64, flag: &str| {
            usize::try_from(v).ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("{flag} must be at least 1 byte and fit in memory, e.g. 1MiB")
            })
        };
        let positive = |d: Duration, flag: &str| {
            if d.is_zero() {
                Err(format!("{flag} must be longer than 0, e.g. 10s"))
            } else {
                Ok(d)
            }
        };
        let max_connections = match self.max_connections {
            Some(0) => return Err("--max-connections must be at least 1".into()),
            Some(n) => n,
            None => default_max_connections(),
        };
        Ok(Limits {
            max_buffered: size(self.max_buffered, "--max-buffered")?,
            read_timeout: positive(self.read_timeout, "--read-timeout")?,
            ping_interval: self.ping_interval,
            pong_timeout: positive(self.pong_timeout, "--pong-timeout")?,
            close_timeout: positive(self.close_timeout, "--close-timeout")?,
            handshake_timeout: positive(self.handshake_timeout, "--handshake-timeout")?,
            max_write_buffer: size(self.max_write_buffer, "--max-write-buffer")?,
            max_connections,
            park_after: self.park_after,
        })
    }
}

// Every variant of the core enums, in the order `--help` lists them.
const ENGINES: &[Engine] = &[Engine::Tungstenite, Engine::ZeroAlloc];
const WORKLOADS: &[Workload] = &[Workload::Echo, Workload::Broadcast, Workload::Push, Workload::Sink];
const HANDLERS: &[Handler] = &[Handler::ZeroAlloc, Handler::Alloc];
const RUNTIMES: &[Runtime] = &[Runtime::CurrentThread, Runtime::MultiThread];

/// Never called: it stops compiling when core gains a variant, as a reminder to list it above.
#[allow(dead_code)]
fn every_variant_is_listed(e: Engine, w: Workload, h: Handler, r: Runtime) {
    match e {
        Engine::Tungstenite | Engine::ZeroAlloc => {}
    }
    match w {
        Workload::Echo | Workload::Broadcast | Workload::Push | Workload::Sink => {}
    }
    match h {
        Handler::ZeroAlloc | Handler::Alloc => {}
    }
    match r {
        Runtime::CurrentThread | Runtime::MultiThread => {}
    }
}

/// A clap parser accepting exactly the core names of `all`, so `--help` lists them and the values
/// stay the core types (core has no clap).
fn named<T>(all: &'static [T], name: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|&v| name(v))).map(move |s| {
        *all.iter()
            .find(|&&v| name(v) == s)
            .expect("PossibleValuesParser only passes listed names")
    })
}

impl ServerArgs {
    /// Checks how the options combine and returns the plan and the limits they describe.
    /// The error is one line that names the flags involved and what to change.
    pub fn into_parts(self) -> Result<(ServerPlan, Limits), String> {
        let limits = self.limits.clone().into_limits()?;
        Ok((self.into_plan()?, limits))
    }

    /// Checks how the options combine and returns the plan they describe (the limits are
    /// [`ServerArgs::into_parts`]' business).
    pub fn into_plan(self) -> Result<ServerPlan, String> {
        if self.workers == 0 {
            return Err("--workers must be at least 1".into());
        }
        if self.max_message_size == 0 {
            return Err("--max-message-size must be at least 1 byte, e.g. 64KiB".into());
        }
        if usize::try_from(self.max_message_size).is_err() {
            return Err(format!(
                "--max-message-size {} does not fit in memory on this platform",
                self.max_message_size
            ));
        }
        if self.handler == Handler::Alloc && self.workload != Workload::Echo {
            return Err(format!(
                "--handler alloc applies to --workload echo only; --workload {} on the tungstenite engine is the ordinary-application contrast",
                self.workload.name()
            ));
        }
        if self.deflate.deflate && self.engine != Engine::ZeroAlloc {
            return Err(format!(
                "--deflate needs --engine zero-alloc: the {} engine (tungstenite 0.29) has no permessage-deflate and declines it",
                self.engine.name()
            ));
        }
        let pause = match (self.pause_every, self.pause_for) {
            (None, None) => None,
            (Some(every), Some(pause_for)) => {
                if pause_for.is_zero() {
                    return Err("--pause-for must be longer than 0, e.g. 50ms".into());
                }
                if pause_for >= every {
                    return Err(format!(
                        "--pause-for ({}) must be shorter than --pause-every ({})",
                        wsbench_core::units::format_duration(pause_for),
                        wsbench_core::units::format_duration(every)
                    ));
                }
                Some(Pause { every, pause_for })
            }
            _ => return Err("--pause-every and --pause-for go together: give both (e.g. --pause-every 1s --pause-for 50ms) or neither".into()),
        };
        Ok(ServerPlan {
            listen: self.listen,
            engine: self.engine,
            workload: self.workload,
            handler: self.handler,
            runtime: self.runtime,
            workers: self.workers,
            max_message_size: self.max_message_size,
            pause,
            tls: self.tls_cert.zip(self.tls_key).map(|(cert, key)| TlsFiles { cert, key }),
            subprotocols: self.subprotocols,
            require_subprotocol: self.require_subprotocol,
            deflate: self.deflate.into_config(),
            fanout: self.fanout.into_fanout()?,
            out: self.out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn parse(args: &[String]) -> Result<ServerArgs, clap::Error> {
        Cli::try_parse_from(
            std::iter::once("wsbench-server".to_owned()).chain(args.iter().cloned()),
        )
        .map(|c| c.args)
    }

    fn plan_from(args: &[&str]) -> Result<ServerPlan, String> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&owned).map_err(|e| e.to_string())?.into_plan()
    }

    #[test]
    fn defaults_are_the_default_plan() {
        assert_eq!(plan_from(&[]).unwrap(), ServerPlan::default());
    }

    #[test]
    fn every_plan_round_trips_through_its_arguments() {
        let mut plans = vec![ServerPlan::default()];
        for (&runtime, &handler) in RUNTIMES.iter().zip(HANDLERS.iter().rev()) {
            plans.push(ServerPlan {
                listen: "127.0.0.1:0".parse().unwrap(),
                runtime,
                handler,
                workers: 7,
                max_message_size: 1024,
                pause: Some(Pause {
                    every: Duration::from_millis(1500),
                    pause_for: Duration::from_millis(50),
                }),
                out: Some(PathBuf::from("/tmp/some dir/out")),
                tls: Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }),
                subprotocols: vec!["chat".into(), "v2.x".into()],
                require_subprotocol: true,
                engine: Engine::ZeroAlloc,
                deflate: Some(DeflateConfig {
                    server_max_window_bits: 10,
                    client_max_window_bits: Some(9),
                    server_no_context_takeover: handler == Handler::Alloc,
                    client_no_context_takeover: true,
                }),
                ..ServerPlan::default()
            });
        }
        for plan in plans {
            let args = plan.to_args();
            let back = parse(&args)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
                .into_plan()
                .unwrap();
            assert_eq!(back, plan, "{args:?}");
        }
    }

    #[test]
    fn sizes_and_durations_take_units() {
        let plan = plan_from(&[
            "--max-message-size",
            "1KiB",
            "--pause-every",
            "1s",
            "--pause-for",
            "50ms",
        ])
        .unwrap();
        assert_eq!(plan.max_message_size, 1024);
        assert_eq!(
            plan.pause,
            Some(Pause {
                every: Duration::from_secs(1),
                pause_for: Duration::from_millis(50)
            })
        );
    }

    #[test]
    fn limits_default_as_documented_and_take_units() {
        let owned: Vec<String> = Vec::new();
        let (_, l) = parse(&owned).unwrap().into_parts().unwrap();
        assert_eq!(l.max_buffered, 256 << 20);
        assert_eq!(l.read_timeout, Duration::from_secs(30));
        assert_eq!(l.ping_interval, Duration::from_secs(20));
        assert_eq!(l.pong_timeout, Duration::from_secs(20));
        assert_eq!(l.close_timeout, Duration::from_secs(10));
        assert_eq!(l.handshake_timeout, Duration::from_secs(10));
        assert_eq!(l.max_write_buffer, 1 << 20);
        assert_eq!(l.max_connections, default_max_connections());
        let args: Vec<String> = [
            "--max-buffered",
            "1MiB",
            "--read-timeout",
            "1s",
            "--ping-interval",
            "0s",
            "--max-write-buffer",
            "64KiB",
            "--max-connections",
            "10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (_, l) = parse(&args).unwrap().into_parts().unwrap();
        assert_eq!(
            (
                l.max_buffered,
                l.read_timeout,
                l.ping_interval,
                l.max_write_buffer,
                l.max_connections
            ),
            (
                1 << 20,
                Duration::from_secs(1),
                Duration::ZERO,
                64 << 10,
                10
            )
        );
        for bad in [
            ["--max-buffered", "0"],
            ["--read-timeout", "0s"],
            ["--max-connections", "0"],
            ["--max-write-buffer", "0"],
        ] {
            let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let err = parse(&args).unwrap().into_parts().unwrap_err();
            assert!(err.contains(bad[0]), "{err}");
        }
    }

    #[test]
    fn gate_flags_state_their_defaults() {
        let gate = |args: &[&str]| {
            let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse(&owned).map_err(|e| e.to_string())?.gate.into_config()
        };
        let open = gate(&[]).unwrap();
        assert_eq!((open.conn_rate_per_s, open.conn_burst, open.client_page), (None, None, true));
        let g = gate(&["--conn-rate", "2.5/s", "--allow-origin", "https://a.example", "--allow-origin", "http://b:1"]).unwrap();
        assert_eq!((g.conn_rate_per_s, g.conn_burst), (Some(2.5), Some(3)));
        assert_eq!(g.allow_origins, ["https://a.example", "http://b:1"]);
        let g = gate(&["--conn-rate", "100/s", "--conn-burst", "20", "--no-client-page"]).unwrap();
        assert_eq!((g.conn_burst, g.client_page), (Some(20), false));
        assert!(gate(&["--conn-burst", "5"]).is_err(), "a burst without a rate");
        assert!(gate(&["--conn-rate", "1/s", "--conn-burst", "0"]).unwrap_err().contains("--conn-burst"));
        assert!(gate(&["--allow-origin", "a.example"]).is_err());
    }

    #[test]
    fn pause_flags_go_together() {
        let err = plan_from(&["--pause-every", "1s"]).unwrap_err();
        assert!(err.contains("--pause-for"), "{err}");
        let err = plan_from(&["--pause-for", "1s"]).unwrap_err();
        assert!(err.contains("--pause-every"), "{err}");
        let err = plan_from(&["--pause-every", "50ms", "--pause-for", "50ms"]).unwrap_err();
        assert!(err.contains("shorter"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(plan_from(&["--workers", "0"])
            .unwrap_err()
            .contains("--workers"));
        assert!(plan_from(&["--max-message-size", "0"])
            .unwrap_err()
            .contains("--max-message-size"));
        assert!(plan_from(&["--runtime", "fast"]).is_err());
        assert!(plan_from(&["--engine", "nope"]).is_err());
        assert!(plan_from(&["--handler", "fast"]).is_err());
        assert_eq!(
            plan_from(&["--handler", "alloc"]).unwrap().handler,
            Handler::Alloc
        );
        assert!(plan_from(&["--listen", "localhost"]).is_err());
        let err = plan_from(&["--deflate"]).unwrap_err();
        assert!(err.contains("--engine zero-alloc"), "{err}");
        assert!(plan_from(&["--engine", "zero-alloc", "--deflate", "--deflate-server-max-window-bits", "8"]).is_err());
        assert!(plan_from(&["--engine", "zero-alloc", "--deflate-client-no-context-takeover"]).is_err());
        assert_eq!(
            plan_from(&["--runtime", "current-thread"]).unwrap().runtime,
            Runtime::CurrentThread
        );
    }
}

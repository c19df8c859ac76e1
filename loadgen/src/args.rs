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
use wsbench_core::plan::{Engine, Fanout, LoadPlan, Mode, Workload, MIN_INTERVAL};
use wsbench_core::units::{format_duration, parse_duration, parse_share, parse_size};

/// Largest message the load generator sends; larger ones would only measure memory copies.
pub const MAX_SIZE: u64 = 64 << 20;

/// Options of `wsbench loadgen` / `wsbench-loadgen`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct LoadgenArgs {
    /// WebSocket URL of the server under test (ws:// only).
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001/")]
    pub url: String,

    /// Connections to open.
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

    /// Run the Autobahn client cases against a fuzzing server at ADDR (host:port, e.g.
    /// `kosoku -m fuzzingserver`) instead of generating load; the other options are ignored.
    #[arg(long, value_name = "ADDR")]
    pub autobahn: Option<String>,

    /// The agent name the fuzzing server's report uses (with --autobahn).
    #[arg(long, value_name = "NAME", default_value = "wsbench-zero-alloc", requires = "autobahn")]
    pub agent: String,
}

impl LoadgenArgs {
    /// Checks the options and resolves them into a plan; the error is one line saying what to change.
    pub fn into_plan(self) -> Result<LoadPlan, String> {
        let plan = LoadPlan {
            url: self.url,
            connections: self.connections,
            connect_rate: self.connect_rate,
            size: self.size,
            mode: if self.text { Mode::Text } else { Mode::Binary },
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
            workload: self.workload,
            fanout: Fanout {
                rooms: self.rooms,
                echo_to_sender: self.echo_to_sender,
                publishers: self.publishers,
                push_rate: self.push_rate,
                ..Fanout::default()
            },
            out: self.out,
        };
        validate(&plan)?;
        Ok(plan)
    }
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

/// Checks a plan however it was made (command line or library call).
pub fn validate(plan: &LoadPlan) -> Result<(), String> {
    target_addr(&plan.url)?;
    if plan.connections == 0 {
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
    if !(0.0..=1.0).contains(&plan.max_loss) {
        return Err(format!("--max-loss is {}; it is a share between 0 and 1 (0 % and 100 %)", plan.max_loss));
    }
    crate::fanout::validate(plan)
}

/// The `host:port` to open a TCP connection to, from a `ws://` URL.
pub fn target_addr(url: &str) -> Result<String, String> {
    let req = url.into_client_request().map_err(|e| format!("--url `{url}` is not a WebSocket URL ({e}); write e.g. ws://127.0.0.1:9001/"))?;
    let uri = req.uri();
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") => return Err(format!("--url `{url}`: wss:// (TLS) is not supported; use ws://")),
        _ => return Err(format!("--url `{url}` must start with ws://")),
    }
    let host = uri.host().ok_or_else(|| format!("--url `{url}` has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    // IPv6 literals keep their brackets in `host()`, which is what `host:port` needs.
    Ok(format!("{host}:{port}"))
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
                workload: Workload::Echo,
                fanout: Fanout::default(),
                out: Some("results/x/trial-1".into()),
            },
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
        ];
        for p in &plans {
            assert_eq!(&round_trip(p), p);
        }
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
        assert!(bad(&["--url", "wss://example.com/"]).contains("wss://"));
        assert!(bad(&["--url", "http://example.com/"]).contains("ws://"));
        assert!(bad(&["--threads", "0"]).contains("--threads"));
        assert!(bad(&["--in-flight", "0"]).contains("--in-flight"));
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
    fn target_address_comes_from_the_url() {
        assert_eq!(target_addr("ws://127.0.0.1:9001/").unwrap(), "127.0.0.1:9001");
        assert_eq!(target_addr("ws://localhost/x").unwrap(), "localhost:80");
        assert_eq!(target_addr("ws://[::1]:9/").unwrap(), "[::1]:9");
    }
}

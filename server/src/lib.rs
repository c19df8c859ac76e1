//! wsbench-server: the WebSocket server under test.
//!
//! The binary (`wsbench-server`, or `wsbench server`) is a thin shell over [`run_main`]: it
//! checks the options, builds the tokio runtime the plan names (wiring emulated pauses into its
//! thread hooks), binds, prints one readiness line on stdout, serves until SIGTERM or SIGINT,
//! and writes `server.json` next to the live `server-latency.hlog`. Tests and embedders can run
//! the same server in-process with [`serve`] or [`Server`].
//!
//! Module map: `args` (command line into a plan), `server` (accept loop, routing, shutdown
//! sequence), `http` (request heads, the upgrade), `routes` (healthz, metrics), `engine/`
//! (WebSocket implementations), `gate` (origins, tokens, connection rate), `workload/` (what
//! is done with a message), `metrics`
//! (counters), `recorder` (one-way latency histograms and log), `pause` (stop-the-world
//! emulation), `shutdown` (the shutdown broadcast), `report` (`server.json`).
//! stdout carries the readiness line and nothing else; every log line goes to stderr.

mod args;
mod engine;
mod gate;
mod http;
mod limits;
mod metrics;
mod park;
mod pause;
mod recorder;
mod report;
mod routes;
mod server;
mod shutdown;
mod transport;
mod trim;
mod workload;

/// The HTTP request-head parser, public for the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub use http::{parse_head, Refusal, Route};

use std::future::Future;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};
use wsbench_core::event::Listening;
use wsbench_core::plan::{Runtime, ServerPlan};
use wsbench_core::token::TokenSecret;

pub use args::{GateArgs, LimitArgs, ServerArgs};
pub use gate::{Gate, GateConfig};
pub use limits::Limits;
pub use metrics::{Metrics, Snapshot};
pub use pause::PauseGate;
pub use recorder::AllocationWindow;
pub use report::{write_summary, ServerReport};
pub use server::Server;

/// Pending connections the kernel queues for us; generous, for connection storms.
const LISTEN_BACKLOG: u32 = 4096;

/// Why the server could not start or finish. Each message says what failed and on what.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot write {}: {}", path.display(), os_message(source))]
    Output { path: PathBuf, source: io::Error },
    #[error("{0}")]
    LatencyLog(String),
    #[error("cannot start the tokio runtime: {}", os_message(.0))]
    Runtime(io::Error),
    #[error("cannot start a thread: {}", os_message(.0))]
    Thread(io::Error),
    #[error("cannot install signal handlers: {}", os_message(.0))]
    Signals(io::Error),
    #[error("cannot print the readiness line on stdout: {}", os_message(.0))]
    Stdout(io::Error),
    #[error("cannot watch parked sockets (epoll): {}", os_message(.0))]
    Park(io::Error),
}

impl ServeError {
    fn listen(addr: SocketAddr, e: &io::Error) -> Self {
        Self::Listen {
            addr,
            reason: os_message(e),
        }
    }
}

/// An I/O error as a person reads it: `Address already in use`, without `(os error 98)`.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => text[..i].to_owned(),
        _ => text,
    }
}

/// Runs the server as a process does, and returns the process's exit code: 0 after a shutdown
/// by signal, 1 when the server cannot start or its files cannot be written, 2 for options that
/// do not go together. Every error is one line on stderr, prefixed `wsbench server:`.
/// `command` is the argv recorded in `server.json`.
pub fn run_main(args: ServerArgs, command: Vec<String>) -> ExitCode {
    let gate_args = args.gate.clone();
    let parts = args.into_parts().and_then(|(plan, limits)| {
        let config = gate_args.into_config()?;
        // An unreadable or short secret is bad input: say so before anything starts.
        let secret = match &config.token_secret {
            Some(path) => Some(TokenSecret::from_file(path).map_err(|e| format!("--token-secret: {e}"))?),
            None => None,
        };
        Ok((plan, limits, Gate::new(config, secret)))
    });
    let (plan, limits, gate) = match parts {
        Ok(parts) => parts,
        Err(msg) => {
            eprintln!("wsbench server: {msg}");
            return ExitCode::from(2);
        }
    };
    // Unusable TLS files are bad input, like a bad flag: say so before anything starts.
    if let Some(files) = &plan.tls {
        if let Err(e) = transport::Tls::from_pem_files(&files.cert, &files.key) {
            eprintln!("wsbench server: --tls-cert/--tls-key: {e}");
            return ExitCode::from(2);
        }
    }
    match run(plan, limits, gate, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbench server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: ServerPlan, limits: Limits, access: Gate, command: Vec<String>) -> Result<(), ServeError> {
    trim::fix_mmap_threshold();
    let gate = Arc::new(PauseGate::new());
    let runtime = build_runtime(&plan, Arc::clone(&gate)).map_err(ServeError::Runtime)?;
    let result = runtime.block_on(async {
        let listener = bind(plan.listen)?;
        let server = Server::with_pause_gate(plan.clone(), listener, gate)?.with_limits(limits).with_gate(access);
        // Handlers go in before the readiness line, so a signal sent on seeing it is never fatal.
        let shutdown = termination_signal()?;
        announce(server.local_addr())?;
        // Served from a spawned task so that, on the multi-thread runtime, it runs on worker
        // threads (the ones whose unpark hook is a pause safepoint), not on this one.
        tokio::spawn(server.run(shutdown)).await.map_err(|e| {
            ServeError::Thread(io::Error::other(format!("the server task failed: {e}")))
        })?
    });
    // Nothing should be left running; do not wait on a straggler.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let report = result?;

    if let Some(dir) = &plan.out {
        let summary = report.server_json(&plan, command);
        write_summary(dir, &summary).map_err(|source| ServeError::Output {
            path: dir.join(wsbench_core::layout::SERVER_SUMMARY),
            source,
        })?;
    }
    match report.log_error {
        Some(e) => Err(ServeError::LatencyLog(e)),
        None => Ok(()),
    }
}

/// Serves `plan` on `listener` until `shutdown` resolves: the in-process form of the server, for
/// tests and embedders. Pauses are emulated at message, accept and request safepoints only (the
/// runtime's unpark hook is the caller's to install; see [`Server::with_pause_gate`]).
pub async fn serve(
    plan: ServerPlan,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<ServerReport, ServeError> {
    Server::new(plan, listener)?.run(shutdown).await
}

/// The runtime the plan names, with a pause safepoint each time a worker thread wakes up.
fn build_runtime(plan: &ServerPlan, gate: Arc<PauseGate>) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = match plan.runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(plan.workers);
            b
        }
    };
    builder
        .enable_all()
        .thread_name("wsbench-worker")
        .on_thread_unpark(move || gate.safepoint())
        .build()
}

fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |e: io::Error| ServeError::listen(addr, &e);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT; a live listener on
    // the port still makes bind fail, as it should.
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// Resolves on the first SIGTERM or SIGINT.
fn termination_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        eprintln!("wsbench server: {name} received, shutting down");
    })
}

/// Prints the readiness line, the only thing this process ever writes on stdout.
fn announce(addr: SocketAddr) -> Result<(), ServeError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}", Listening::new(addr).to_line())
        .and_then(|()| out.flush())
        .map_err(ServeError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_in_process_until_the_shutdown_future_resolves() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        let step = Duration::from_secs(10);
        let plan = ServerPlan {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerPlan::default()
        };
        let listener = bind(plan.listen).unwrap();
        let server = Server::new(plan, listener).unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));

        let (mut ws, _) = tokio::time::timeout(
            step,
            tokio_tungstenite::connect_async(format!("ws://{addr}/")),
        )
        .await
        .unwrap()
        .unwrap();
        ws.send(Message::text("in process")).await.unwrap();
        let echo = tokio::time::timeout(step, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text("in process"));

        stop.send(()).unwrap();
        // The server says goodbye with 1001 and waits for our reply, which reading sends.
        let bye = tokio::time::timeout(step, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            matches!(bye, Message::Close(Some(ref f)) if u16::from(f.code) == 1001),
            "{bye:?}"
        );
        while let Ok(Some(Ok(_))) = tokio::time::timeout(step, ws.next()).await {}

        let report = tokio::time::timeout(step, running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(report.complete);
        assert_eq!(
            (report.metrics.messages_in, report.metrics.messages_out),
            (1, 1)
        );
        assert_eq!(report.metrics.connections_open, 0);
        assert_eq!(
            report.one_way_latency_ns.len(),
            0,
            "a message without a wsbench header is not timed"
        );
    }

    #[test]
    fn os_errors_read_like_sentences() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(os_message(&e), "Address already in use");
        assert_eq!(os_message(&io::Error::other("plain")), "plain");
    }
}

//! `wsbench-server`: parses the command line and hands it to the library.
//!
//! The binary counts its heap allocations (`wsbench_core::alloc`), so `server.json` can report
//! allocations per message.

use std::process::ExitCode;

use clap::Parser;

wsbench_core::count_allocations!();

/// The WebSocket server under test for wsbench: echoes messages, records one-way latency,
/// can emulate garbage-collector pauses, and serves /healthz and /metrics beside the WebSocket.
#[derive(Parser)]
#[command(name = "wsbench-server", version)]
struct Cli {
    #[command(flatten)]
    args: wsbench_server::ServerArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wsbench_server::run_main(cli.args, std::env::args().collect())
}

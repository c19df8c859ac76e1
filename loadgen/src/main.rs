//! `wsbench-loadgen`: the load generator as a stand-alone binary. Everything but argument
//! parsing lives in the library, so `wsbench loadgen` behaves the same.

use clap::Parser;

// Counts heap allocations, so `summary.json` can report allocations per message.
wsbench_core::count_allocations!();

/// Opens WebSocket connections to a server, sends messages on a closed- or open-loop schedule,
/// checks every echo and records latency into HdrHistogram interval logs.
#[derive(Debug, Parser)]
#[command(name = "wsbench-loadgen", version)]
struct Cli {
    #[command(flatten)]
    args: wsbench_loadgen::LoadgenArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    wsbench_loadgen::run_main(cli.args, std::env::args().collect())
}

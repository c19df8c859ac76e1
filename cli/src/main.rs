//! `wsbench`: the one command users type. Parses arguments and hands them to the library.

use std::process::ExitCode;

use clap::Parser;

// Counts heap allocations: `wsbench server` and `wsbench loadgen` run in this binary and report
// allocations per message in server.json and summary.json.
wsbench_core::count_allocations!();

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    wsbench::main_with(wsbench::Cli::parse(), argv)
}

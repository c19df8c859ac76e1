//! The `wsbench` command: `run`, `server`, `loadgen`, `report`, `merge`.
//!
//! This crate wires the others together and owns orchestration (starting, sampling and stopping
//! processes). It holds no measurement logic: the server, the load generator and the analysis
//! each live in their own crate and never call each other.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod procstat;
pub mod run;

/// WebSocket benchmarks the way users feel them: a server and load generators in separate
/// processes, every message's latency in HdrHistograms, plots and reports at the end.
#[derive(Debug, Parser)]
#[command(name = "wsbench", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: start the server and load generators as separate processes, interleave
    /// trials of every configuration, sample CPU and memory, then write the report.
    Run(run::RunArgs),
    /// Run the WebSocket server under test (same as the `wsbench-server` binary).
    Server(wsbench_server::ServerArgs),
    /// Run one load-generator process (same as the `wsbench-loadgen` binary).
    Loadgen(wsbench_loadgen::LoadgenArgs),
    /// Write plots (PNG and SVG) and report.md for a run directory.
    Report {
        /// A run directory: results/<scenario>/<run-id>.
        run_dir: PathBuf,
    },
    /// Merge the outputs of several load-generator processes of one trial, losslessly
    /// (interval histograms are added, never averaged).
    Merge {
        /// Load-generator output directories (each with summary.json and .hlog files).
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged summary.json, logs and intervals.csv.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Exit code for a run that failed (a process died, the server never came up, ...).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad input: arguments or scenario file.
pub const EXIT_USAGE: u8 = 2;

/// Runs a parsed command line; `argv` is recorded in result files.
pub fn main_with(cli: Cli, argv: Vec<String>) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::main(args, argv),
        Command::Server(args) => wsbench_server::run_main(args, argv),
        Command::Loadgen(args) => wsbench_loadgen::run_main(args, argv),
        Command::Report { run_dir } => match wsbench_analysis::report(&run_dir) {
            Ok(paths) => {
                println!("{}", paths.report_md.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wsbench report: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        },
        Command::Merge { dirs, out } => match wsbench_analysis::merge_loadgen(&dirs, &out) {
            Ok(summary) => {
                println!(
                    "merged {} load generators into {}: {} messages, {:.0} msgs/s, p99 {:.1} µs",
                    dirs.len(),
                    out.display(),
                    summary.messages.received,
                    summary.throughput_msgs_per_s,
                    summary.latency_us.p99
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wsbench merge: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        },
    }
}

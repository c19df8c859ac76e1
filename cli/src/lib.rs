//! The `wsbench` command: `run`, `server`, `loadgen`, `report`, `compare`, `export`, `merge`.
//!
//! This crate wires the others together and owns orchestration (starting, sampling and stopping
//! processes). It holds no measurement logic: the server, the load generator and the analysis
//! each live in their own crate and never call each other.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod children;
pub mod procstat;
pub mod run;
pub mod tls;

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
    /// Compare two runs or configurations (BASE CANDIDATE), or every configuration of one run with
    /// a baseline (RUN --baseline CONFIG): medians over trials, the ratio with its 95 % bootstrap
    /// confidence interval, and a verdict per metric. Exit 0: no --fail-if threshold breached;
    /// 1: one was; 2: bad input.
    Compare(CompareArgs),
    /// Write every metric of every trial of a run as CSV: one row per configuration and trial.
    Export {
        /// A run directory: results/<scenario>/<run-id>.
        run_dir: PathBuf,
        /// The CSV file to write (`-` for standard output).
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
    /// Merge the outputs of several load-generator processes of one trial, losslessly
    /// (interval histograms are added, never averaged). Results that measured different things
    /// (message size, mode, client engine, server workload, server, rate plan, window) are
    /// refused with exit 2 naming the differing keys. Exit 0: merged; 1: could not write;
    /// 2: bad input.
    Merge {
        /// Load-generator output directories (each with summary.json and .hlog files).
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged summary.json, logs and intervals.csv.
        #[arg(long)]
        out: PathBuf,
        /// Merge even results that differ; the merged summary lists every differing value
        /// under config.differing.
        #[arg(long)]
        force: bool,
    },
    /// Internal to `wsbench run`: kills the process groups of its children if it dies.
    #[command(name = "watch-groups", hide = true)]
    WatchGroups,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The base: a run directory (results/<scenario>/<run-id>) or one configuration's directory;
    /// with --baseline, the run whose configurations are compared.
    pub base: PathBuf,
    /// The candidate, compared with the base: a run or configuration directory.
    #[arg(conflicts_with = "baseline")]
    pub candidate: Option<PathBuf>,
    /// Compare every other configuration of the run BASE with this one.
    #[arg(long, value_name = "CONFIG")]
    pub baseline: Option<String>,
    /// The configuration to compare when a run has several [default: those of equal names].
    #[arg(long, value_name = "NAME", conflicts_with = "baseline")]
    pub config: Option<String>,
    /// Exit 1 when a metric is significantly past a change, e.g. 'p99 > +10%' or
    /// 'throughput < -5%' (the whole confidence interval must lie past it, so a difference that
    /// may be noise does not fail), or past an absolute limit, e.g. 'p99 > 5ms' or
    /// 'throughput < 50000'. With fewer than 5 trials a side, changes are not judged
    /// (inconclusive, exit 0) and an absolute limit fails only when every trial is past it.
    /// Metrics: capacity, throughput, p50, p95, p99, p99.9, max, errors, cpu, rss, allocations,
    /// loadgen-allocations. Repeatable.
    #[arg(long = "fail-if", value_name = "CONDITION")]
    pub fail_if: Vec<String>,
    /// Output: aligned tables, GitHub Markdown (for a job summary or PR comment), or JSON.
    #[arg(long, value_enum, default_value_t = CompareFormat::Terminal)]
    pub format: CompareFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Terminal,
    Markdown,
    Json,
}

/// `wsbench compare`: parses the thresholds, compares, prints, and exits 0, 1 or 2.
fn compare_main(args: CompareArgs) -> ExitCode {
    use wsbench_analysis::compare::{Selection, Settings, Threshold};
    use wsbench_analysis::export::ComparisonFormat;
    let usage = |message: &dyn std::fmt::Display| {
        eprintln!("wsbench compare: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let thresholds = match args.fail_if.iter().map(|s| s.parse::<Threshold>()).collect::<Result<Vec<_>, _>>() {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let selection = match (args.candidate, args.baseline) {
        (Some(candidate), None) => Selection::Pair { base: args.base, candidate, config: args.config },
        (None, Some(baseline)) => Selection::Baseline { run: args.base, baseline },
        _ => return usage(&"give a CANDIDATE to compare BASE with, or --baseline CONFIG to compare the configurations of the run BASE"),
    };
    let comparison = match wsbench_analysis::compare(&selection, &thresholds, &Settings::default()) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let format = match args.format {
        CompareFormat::Terminal => ComparisonFormat::Terminal,
        CompareFormat::Markdown => ComparisonFormat::Markdown,
        CompareFormat::Json => ComparisonFormat::Json,
    };
    if let Err(e) = format.exporter().export(&comparison, &mut std::io::stdout().lock()) {
        return usage(&format_args!("cannot write the comparison: {e}"));
    }
    // The verdict on the gates also goes to stderr, so a CI log shows it whatever the format.
    for line in comparison.warnings().into_iter().chain(comparison.gate_lines()) {
        eprintln!("wsbench compare: {line}");
    }
    ExitCode::from(comparison.exit_code())
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
        Command::Compare(args) => compare_main(args),
        Command::WatchGroups => children::watchdog_main(),
        Command::Export { run_dir, csv } => {
            let run = match wsbench_analysis::load::run(&run_dir) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("wsbench export: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match wsbench_analysis::export::csv::write(&run, &csv) {
                Ok(rows) => {
                    eprintln!("wsbench export: {rows} rows (configuration × trial) written to {}", csv.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wsbench export: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        Command::Merge { dirs, out, force } => match wsbench_analysis::merge_loadgen(&dirs, &out, force) {
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
                ExitCode::from(if e.is_bad_input() { EXIT_USAGE } else { EXIT_FAILED })
            }
        },
    }
}

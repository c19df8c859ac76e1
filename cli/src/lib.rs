//! The `wsbench` command: `run`, `server`, `loadgen`, `report`, `compare`, `export`, `merge`,
//! `collect`, `k8s render`.
//!
//! This crate wires the others together and owns orchestration (starting, sampling and stopping
//! processes). It holds no measurement logic: the server, the load generator and the analysis
//! each live in their own crate and never call each other.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod children;
pub mod k8s;
pub mod live;
pub mod plan;
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
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
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
    /// refused with exit 2 naming the differing keys; shards of a sharded load (`--shard`) are
    /// refused while any is missing. Exit 0: merged; 1: shards missing, or could not write;
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
    /// Gather the shards of one load (`wsbench loadgen --shard i/n`, e.g. the pods of a
    /// Kubernetes Indexed Job) into one run folder that report, compare and export read. Refuses
    /// while any shard is missing, naming each, and merges nothing; otherwise merges every shard
    /// losslessly into OUT/<config>/trial-1/ and writes OUT/run.json. Exit 0: collected;
    /// 1: shards missing, or could not write; 2: bad input.
    Collect(CollectArgs),
    /// Kubernetes: render manifests that run a scenario's load as shards of an Indexed Job.
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
    /// Print a time-limited token for `wsbench server --token-secret`: `<expiry>.<mac>`, to add
    /// to a WebSocket URL as ?token=... (HMAC-SHA256 over the path and the expiry, base64url).
    /// Exit 0: printed; 2: bad input.
    Token(TokenArgs),
    /// Internal to `wsbench run`: kills the process groups of its children if it dies.
    #[command(name = "watch-groups", hide = true)]
    WatchGroups,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The server's secret file (at least 16 bytes; a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub secret: PathBuf,
    /// How long the token is valid from now, e.g. 60s or 10m (rounded up to whole seconds).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = wsbench_core::units::parse_duration)]
    pub ttl: std::time::Duration,
    /// The URL path the token opens (the server checks the path it is used on).
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub path: String,
}

/// `wsbench token`: one token on stdout.
fn token_main(args: TokenArgs) -> ExitCode {
    if !args.path.starts_with('/') || args.path.contains(['?', '#']) {
        eprintln!("wsbench token: --path {:?} must be a URL path starting with / (no query)", args.path);
        return ExitCode::from(EXIT_USAGE);
    }
    if args.ttl.is_zero() {
        eprintln!("wsbench token: --ttl must be longer than 0, e.g. 60s");
        return ExitCode::from(EXIT_USAGE);
    }
    match wsbench_core::token::TokenSecret::from_file(&args.secret) {
        Ok(secret) => {
            println!("{}", secret.mint_for(&args.path, args.ttl, std::time::SystemTime::now()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsbench token: --secret: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CollectArgs {
    /// Shard folders (shard-<i>/, each with summary.json), or folders holding them.
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// The run folder to write, e.g. results/<scenario>/<run-id>.
    #[arg(long)]
    pub out: PathBuf,
    /// The scenario file the shards ran: its name and text go into run.json.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Name of the configuration (the folder under OUT) [default: the scenario's only
    /// configuration, else `sharded`].
    #[arg(long, value_name = "NAME")]
    pub config: Option<String>,
    /// Merge even shards whose results differ in what they measured (see merge --force).
    #[arg(long)]
    pub force: bool,
}

/// `wsbench collect`: exit 0 collected, 1 shards missing or not written, 2 bad input.
fn collect_main(args: CollectArgs, argv: Vec<String>) -> ExitCode {
    let usage = |message: &dyn std::fmt::Display| {
        eprintln!("wsbench collect: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let (scenario, scenario_file, only_config) = match &args.scenario {
        Some(path) => match wsbench_core::scenario::Scenario::load(path) {
            Ok(s) => {
                let only = (s.configs.len() == 1).then(|| s.configs[0].name.clone());
                (s.name.clone(), Some((path.clone(), s.text.clone())), only)
            }
            Err(e) => return usage(&e),
        },
        None => ("sharded".to_owned(), None, None),
    };
    let opts = wsbench_analysis::collect::CollectOptions {
        scenario,
        scenario_file,
        config: args.config.or(only_config).unwrap_or_else(|| "sharded".to_owned()),
        command: argv,
        force: args.force,
    };
    match wsbench_analysis::collect::collect(&args.dirs, &args.out, &opts) {
        Ok(c) => {
            let s = &c.summary;
            println!(
                "collected {} shards into {}: {} connections, {} messages, {:.0} msgs/s, p99 {:.1} µs",
                c.shards,
                c.trial_dir.display(),
                s.connections.established,
                s.messages.received,
                s.throughput_msgs_per_s,
                s.latency_us.p99
            );
            for line in s.reason.iter().chain(&s.failed_checks) {
                eprintln!("wsbench collect: the merged run failed: {line}");
            }
            eprintln!("wsbench collect: `wsbench report {}` writes its report", c.run_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsbench collect: {e}");
            ExitCode::from(if e.is_bad_input() { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
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
    /// loadgen-allocations, connect, tls, handshake, first-message, compression (wire bytes per
    /// payload byte with permessage-deflate), cpu-per-message, capacity_connections. Repeatable.
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

/// Why `dir` is not a run directory, naming the runs inside it when it holds some (a
/// `results/<scenario>` folder); `None` when it is one.
fn not_a_run(dir: &std::path::Path) -> Option<String> {
    if dir.join(wsbench_core::layout::RUN_MANIFEST).is_file() {
        return None;
    }
    if !dir.is_dir() {
        return Some(format!("{}: no such folder; pass a run directory written by `wsbench run` (results/<scenario>/<run-id>)", dir.display()));
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join(wsbench_core::layout::RUN_MANIFEST).is_file()).collect())
        .unwrap_or_default();
    if runs.is_empty() {
        return Some(format!("{}: no run.json here; pass a run directory written by `wsbench run` (results/<scenario>/<run-id>)", dir.display()));
    }
    // Run ids are UTC date and time, so the newest sorts last.
    runs.sort();
    let shown: Vec<String> = runs.iter().rev().take(10).map(|p| format!("  {}", p.display())).collect();
    let more = if runs.len() > shown.len() { format!("\n  … and {} older", runs.len() - shown.len()) } else { String::new() };
    Some(format!("{} is not a run but holds {}; pass one of them (newest first):\n{}{more}", dir.display(), plan::plural(runs.len(), "run"), shown.join("\n")))
}

fn report_main(run_dir: &std::path::Path) -> ExitCode {
    match wsbench_analysis::report(run_dir) {
        Ok(paths) => {
            println!("{}", paths.report_md.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsbench report: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
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
        Command::Report { run_dir } => match not_a_run(&run_dir) {
            Some(message) => {
                eprintln!("wsbench report: {message}");
                ExitCode::from(EXIT_USAGE)
            }
            None => report_main(&run_dir),
        },
        Command::Compare(args) => compare_main(args),
        Command::WatchGroups => children::watchdog_main(),
        Command::Collect(args) => collect_main(args, argv),
        Command::K8s(cmd) => k8s::main(cmd),
        Command::Token(args) => token_main(args),
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
                    "merged {} load generators into {}: {} messages, {} msgs/s, p99 {}",
                    dirs.len(),
                    out.display(),
                    wsbench_core::units::thousands(summary.messages.received as f64),
                    wsbench_core::units::thousands(summary.throughput_msgs_per_s),
                    wsbench_core::units::latency_us(summary.latency_us.p99)
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

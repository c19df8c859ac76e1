//! `wsbench run SCENARIO.toml`: orchestration of one run.
//!
//! For every trial of every configuration (interleaved: A B A B ..., so machine drift hits every
//! configuration alike) it starts the server as its own process and waits until it is ready,
//! starts the load-generator processes with their share of connections and rate, samples every
//! process from /proc, stops them with signals and leaves their files in the trial folder. At the
//! end it writes `run.json` and the report. It measures nothing itself.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};

use wsbench_core::clock::wall_clock_rfc3339;
use wsbench_core::event::Listening;
use wsbench_core::layout;
use wsbench_core::slo::ACHIEVED_SHARE;
use wsbench_core::units::{latency_us, thousands};
use wsbench_core::plan::{LoadPlan, Shard, TlsFiles};
use wsbench_core::result::{CapacityProbe, CapacityResult, ConfigEntry, HostInfo, LimitedBy, LoadgenSummary, RunManifest, SearchMetric, SearchOver};
use wsbench_core::scenario::{CapacitySearch, ConfigSpec, LoadSpec, Scenario, ServerSpec, Setting};
use wsbench_core::warning::LOADGEN_CPU_LIMIT_PCT;

use crate::children::{self, GroupChild};
use crate::live::LiveLine;
use crate::plan;
use crate::procstat::Sampler;
use crate::{EXIT_FAILED, EXIT_USAGE};

/// How long a server may take to print its listening line or open its port by default.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it is killed.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack on top of a load generator's planned time before it is interrupted.
const LOADGEN_SLACK: Duration = Duration::from_secs(30);
/// Time for a trial's shards to start before their shared start (see [`shared_start`]).
pub(crate) const SHARD_START_MARGIN: Duration = Duration::from_millis(1_500);

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario file (TOML), e.g. scenarios/quick.toml.
    pub scenario: PathBuf,
    /// Folder under which results/<scenario>/<run-id>/ is created.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Name of the run folder [default: UTC date and time, e.g. 20261125-101500].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Override the scenario's number of trials.
    #[arg(long)]
    pub trials: Option<u32>,
    /// Override a scenario key for every configuration, e.g. `--set load.rate=20000`,
    /// `--set server.engine=zero-alloc`, `--set load.duration=30s`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
    /// Run only this configuration (or rate sweep) of the scenario. Repeatable.
    #[arg(long = "config", visible_alias = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Print what would run and for how long, then exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the results as JSON on standard output instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Do not write the report at the end (run `wsbench report RUN_DIR` later).
    #[arg(long)]
    pub no_report: bool,
    /// Program started for the server and load-generator processes [default: this executable].
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
}

/// Entry point of `wsbench run`.
pub fn main(args: RunArgs, argv: Vec<String>) -> ExitCode {
    let mut scenario = match Scenario::load_with(&args.scenario, &args.set) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsbench run: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(id) = &args.run_id {
        if let Err(e) = layout::check_name(id) {
            eprintln!("wsbench run: --run-id {id:?} {e}; give a plain folder name such as 20261125-101500");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if let Some(t) = args.trials {
        if t == 0 {
            eprintln!("wsbench run: --trials must be at least 1");
            return ExitCode::from(EXIT_USAGE);
        }
        scenario.trials = t;
    }
    if !args.only.is_empty() {
        if let Err(e) = keep_only(&mut scenario, &args.only) {
            eprintln!("wsbench run: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if args.dry_run {
        print!("{}", plan::describe(&scenario, &args.results));
        return ExitCode::SUCCESS;
    }
    match run(&args, &scenario, argv) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("wsbench run: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Keeps the configurations named in `--only` (a rate sweep by its name keeps all its rates).
fn keep_only(scenario: &mut Scenario, only: &[String]) -> Result<(), String> {
    let names = |s: &Scenario| {
        let mut v: Vec<String> = s.configs.iter().map(|c| c.group.clone().unwrap_or_else(|| c.name.clone())).collect();
        v.dedup();
        v.join(", ")
    };
    if let Some(missing) = only.iter().find(|n| !scenario.configs.iter().any(|c| &c.name == *n || c.group.as_ref() == Some(*n))) {
        return Err(format!("--config {missing}: {} has no such configuration; it has: {}", scenario.path.display(), names(scenario)));
    }
    scenario.configs.retain(|c| only.iter().any(|n| &c.name == n || c.group.as_ref() == Some(n)));
    Ok(())
}

/// Everything a trial needs to know about the run around it.
struct RunContext {
    exe: PathBuf,
    /// The longest the trials after the current one can take, for the live line's ETA.
    after_this: std::cell::Cell<Duration>,
    /// The scenario file's folder: where a server `command` runs.
    scenario_dir: Option<PathBuf>,
    run_dir: PathBuf,
    interrupted: Arc<AtomicBool>,
}

fn run(args: &RunArgs, scenario: &Scenario, argv: Vec<String>) -> Result<bool> {
    let exe = match &args.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().context("cannot find the wsbench executable to start servers and load generators")?,
    };
    let started = SystemTime::now();
    let run_dir = create_run_dir(&args.results, &scenario.name, args.run_id.as_deref(), started)?;

    // Children run in their own process groups, so the terminal's Ctrl-C reaches only us: we
    // stop scheduling new trials and interrupt the current one, which still writes its files.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let flag = interrupted.clone();
        // SAFETY: the handler only swaps an atomic, kills process groups and _exits, all
        // async-signal-safe. A second signal ends the orchestrator and its children at once.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if flag.swap(true, Ordering::SeqCst) {
                    children::kill_all_groups();
                    libc::_exit(EXIT_FAILED.into());
                }
            })
        }
        .context("cannot install the signal handler")?;
    }
    let watchdog = std::env::current_exe().context("cannot find the wsbench executable to start the child watchdog")?;
    children::start_watchdog(&watchdog).context("cannot start the child watchdog")?;
    let scenario_dir = scenario.path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).and_then(|p| p.canonicalize().ok());
    let cx = RunContext { exe, after_this: std::cell::Cell::new(Duration::ZERO), scenario_dir, run_dir: run_dir.clone(), interrupted };

    let order: Vec<(usize, u32)> = (1..=scenario.trials).flat_map(|t| (0..scenario.configs.len()).map(move |c| (c, t))).collect();
    let mut manifest = RunManifest {
        schema_version: wsbench_core::SCHEMA_VERSION,
        wsbench_version: wsbench_core::VERSION.into(),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        scenario_text: scenario.text.clone(),
        run_id: run_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        started_at: wall_clock_rfc3339(started),
        command: argv,
        host: HostInfo::current(),
        trials: scenario.trials,
        configs: scenario
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.clone(),
                dir: layout::slug(&c.name),
                group: c.group.clone(),
                asked_rate: c.load.rate,
                server: serde_json::to_value(&c.server).unwrap_or_default(),
                load: serde_json::to_value(&c.load).unwrap_or_default(),
            })
            .collect(),
        order: order.iter().map(|&(c, t)| (scenario.configs[c].name.clone(), t)).collect(),
        failures: Vec::new(),
    };
    write_manifest(&run_dir, &manifest)?;

    eprintln!(
        "wsbench run: scenario `{}`: {} × {} → {}",
        scenario.name,
        plan::plural(scenario.configs.len(), "configuration"),
        plan::plural(scenario.trials as usize, "trial"),
        run_dir.display()
    );
    let mut ok = true;
    for (i, &(c, t)) in order.iter().enumerate() {
        if cx.interrupted.load(Ordering::Relaxed) {
            ok = false;
            manifest.failures.push((scenario.configs[c].name.clone(), t, "not run: interrupted".into()));
            continue;
        }
        let config = &scenario.configs[c];
        cx.after_this.set(order[i + 1..].iter().map(|&(c, _)| plan::config_time(&scenario.configs[c], scenario.search.as_ref())).sum());
        let prefix = format!("[{}/{}] {} · trial {t}/{}", i + 1, order.len(), config.name, scenario.trials);
        eprintln!("{prefix}: running");
        let dir = layout::trial_dir(&cx.run_dir, &config.name, t);
        let outcome = match &scenario.search {
            None => run_trial(&cx, config, &dir).map(|s| one_line(&s)),
            Some(search) => run_search(&cx, config, &dir, search).map(|c| capacity_line(&c)),
        };
        match outcome {
            Ok(line) => eprintln!("{prefix}: {line}"),
            Err(TrialError::ServerStart(e)) => {
                // A server that cannot start will not start on the next trial either.
                manifest.failures.push((config.name.clone(), t, format!("{e:#}")));
                write_manifest(&run_dir, &manifest)?;
                bail!("{}: {e:#}", config.name);
            }
            Err(TrialError::Failed(e)) => {
                ok = false;
                eprintln!("{prefix}: failed: {e:#}");
                manifest.failures.push((config.name.clone(), t, format!("{e:#}")));
            }
        }
        write_manifest(&run_dir, &manifest)?;
    }

    // What was found goes to standard output: a table, or JSON with --json; progress and
    // diagnostics stay on standard error.
    match wsbench_analysis::load::run(&run_dir) {
        Ok(loaded) if args.json => {
            let mut value = wsbench_analysis::report::headline_json(&loaded);
            if !args.no_report {
                value["report"] = serde_json::Value::from(match wsbench_analysis::report(&run_dir) {
                    Ok(paths) => paths.report_md.display().to_string(),
                    Err(e) => {
                        eprintln!("wsbench run: the report could not be written: {e}");
                        ok = false;
                        String::new()
                    }
                });
            }
            value["ok"] = serde_json::Value::from(ok);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Ok(loaded) => {
            print!("\n{}", wsbench_analysis::doc::terminal(&wsbench_analysis::report::headline(&loaded)));
            if !args.no_report {
                match wsbench_analysis::report(&run_dir) {
                    // The last line of stdout, bare, for scripts: `wsbench run … | tail -1`.
                    Ok(paths) => println!("{}", paths.report_md.display()),
                    Err(e) => {
                        eprintln!("wsbench run: the report could not be written: {e}");
                        ok = false;
                    }
                }
            }
        }
        Err(e) => {
            eprintln!("wsbench run: the results could not be read back: {e}");
            ok = false;
        }
    }
    if cx.interrupted.load(Ordering::Relaxed) {
        eprintln!("wsbench run: interrupted; what was measured is in {}", run_dir.display());
    }
    Ok(ok)
}

fn create_run_dir(results: &Path, scenario: &str, run_id: Option<&str>, started: SystemTime) -> Result<PathBuf> {
    let (dir, fixed) = match run_id {
        Some(id) => (layout::run_dir(results, scenario, id), true),
        None => {
            let stamp = humantime::format_rfc3339_seconds(started).to_string();
            // 2026-11-25T10:15:00Z -> 20261125-101500
            let id: String = stamp.chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect::<String>().replace('T', "-");
            (layout::run_dir(results, scenario, &id), false)
        }
    };
    let mut candidate = dir.clone();
    let mut n = 2;
    while candidate.exists() {
        if fixed {
            bail!("{} already exists; choose another --run-id", candidate.display());
        }
        candidate = dir.with_file_name(format!("{}-{n}", dir.file_name().unwrap_or_default().to_string_lossy()));
        n += 1;
    }
    fs::create_dir_all(&candidate).with_context(|| format!("cannot create {}", candidate.display()))?;
    Ok(candidate)
}

fn write_manifest(run_dir: &Path, m: &RunManifest) -> Result<()> {
    let path = run_dir.join(layout::RUN_MANIFEST);
    fs::write(&path, serde_json::to_vec_pretty(m)?).with_context(|| format!("cannot write {}", path.display()))
}

fn one_line(s: &LoadgenSummary) -> String {
    let mut line = format!(
        "{} msgs/s · latency p50 {} p99 {} max {} · {} sent, {}",
        thousands(s.throughput_msgs_per_s),
        latency_us(s.latency_us.p50),
        latency_us(s.latency_us.p99),
        latency_us(s.latency_us.max),
        thousands(s.messages.sent as f64),
        plan::plural(s.messages.faults() as usize, "error")
    );
    if !s.warnings.is_empty() {
        line.push_str(&format!(" · {}", plan::plural(s.warnings.len(), "warning")));
    }
    line
}


enum TrialError {
    /// The server never became ready: the run stops, later trials would fail the same way.
    ServerStart(anyhow::Error),
    /// This trial failed; its files are kept and the run goes on.
    Failed(anyhow::Error),
}

/// A started server process and where it listens.
struct ServerProcess {
    child: GroupChild,
    addr: SocketAddr,
    log: PathBuf,
}

/// Runs one trial (server, load generators, sampling) with its files in `dir`.
fn run_trial(cx: &RunContext, config: &ConfigSpec, dir: &Path) -> Result<LoadgenSummary, TrialError> {
    let dir = dir.to_owned();
    fs::create_dir_all(&dir).map_err(|e| TrialError::Failed(anyhow!("cannot create {}: {e}", dir.display())))?;

    let tls = match &config.server {
        ServerSpec::Builtin(b) if b.tls => Some(crate::tls::throwaway(&dir).map_err(TrialError::ServerStart)?),
        _ => None,
    };
    let token_secret = match &config.server {
        ServerSpec::Builtin(b) if b.tokens => Some(crate::tls::throwaway_token_secret(&dir).map_err(TrialError::ServerStart)?),
        _ => None,
    };
    let mut server = start_server(cx, &config.server, &dir, tls.as_ref(), token_secret.as_deref()).map_err(TrialError::ServerStart)?;
    let path = match &config.server {
        ServerSpec::Command(c) => c.path.clone(),
        ServerSpec::Builtin(_) => "/".into(),
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://{}{}", server.addr, path);
    let mut plans = split_load(&config.load, &url, &dir);
    let start_at = plans.iter().find(|p| p.shard.is_some()).map(shared_start);
    for plan in &mut plans {
        plan.ca = tls.as_ref().map(|t| t.ca.clone());
        plan.token_secret = token_secret.clone();
        if plan.shard.is_some() {
            plan.start_at.clone_from(&start_at);
        }
    }

    let mut loadgens = Vec::new();
    let mut procs = vec![("server".to_string(), server.child.id())];
    for (i, plan) in plans.iter().enumerate() {
        let log = dir.join(if plans.len() == 1 { "loadgen.log".to_string() } else { format!("loadgen-{i}.log") });
        let child = spawn_logged(Command::new(&cx.exe).arg("loadgen").args(plan.to_args()), &log).map_err(|e| {
            stop_server(&mut server);
            TrialError::Failed(e.context("cannot start the load generator"))
        })?;
        procs.push((format!("loadgen-{i}"), child.id()));
        loadgens.push((child, log));
    }
    let sampler = Sampler::start(&dir.join(layout::PROCESSES_CSV), procs, Duration::from_secs(1)).ok();

    let load = &config.load;
    let planned = plan::trial_time(load);
    let deadline = Instant::now() + planned + LOADGEN_SLACK;
    let mut live = LiveLine::new(planned, cx.after_this.get(), plans.iter().filter_map(|p| results_dir(p).map(|d| d.join(layout::INTERVALS_CSV))).collect());
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; loadgens.len()];
    let mut forwarded = false;
    while statuses.iter().any(Option::is_none) {
        for ((child, _), st) in loadgens.iter_mut().zip(statuses.iter_mut()) {
            if st.is_none() {
                *st = child.try_wait().ok().flatten();
            }
        }
        let late = Instant::now() > deadline;
        if (cx.interrupted.load(Ordering::Relaxed) || late) && !forwarded {
            // Interrupt, don't kill: an interrupted load generator still writes its files.
            for ((child, _), st) in loadgens.iter().zip(&statuses) {
                if st.is_none() {
                    child.signal_group(libc::SIGINT);
                }
            }
            forwarded = true;
        }
        if late && Instant::now() > deadline + SERVER_STOP_TIMEOUT {
            for ((child, _), st) in loadgens.iter_mut().zip(statuses.iter_mut()) {
                if st.is_none() {
                    child.kill_group();
                    *st = child.wait().ok();
                }
            }
        }
        live.tick();
        std::thread::sleep(Duration::from_millis(20));
    }
    live.clear();
    let server_note = stop_server(&mut server);
    if let Some(s) = sampler {
        let _ = s.finish();
    }

    // Shards wrote into `shard-<i>/`; a trial's processes live in `loadgen-<i>/`.
    for (i, plan) in plans.iter().enumerate() {
        if let Some(from) = results_dir(plan).filter(|d| plan.shard.is_some() && d.exists()) {
            let to = layout::shard_dir(&dir, i);
            fs::rename(&from, &to).map_err(|e| TrialError::Failed(anyhow!("cannot move {} to {}: {e}", from.display(), to.display())))?;
        }
    }
    if plans.len() > 1 {
        let shards: Vec<PathBuf> = (0..plans.len()).map(|i| layout::shard_dir(&dir, i)).filter(|d| d.join(layout::SUMMARY).exists()).collect();
        if !shards.is_empty() {
            wsbench_analysis::merge_loadgen(&shards, &dir, false).map_err(|e| TrialError::Failed(anyhow!("cannot merge the load generators' results: {e}")))?;
        }
    }

    let failed: Vec<String> = loadgens
        .iter()
        .zip(&statuses)
        .filter(|(_, st)| !st.map(|s| s.success()).unwrap_or(false))
        .map(|((_, log), st)| format!("load generator exited with {}: {}", describe(*st), tail(log, 1).trim()))
        .collect();
    let summary = read_summary(&dir.join(layout::SUMMARY));
    if let Some(note) = server_note {
        if failed.is_empty() {
            return Err(TrialError::Failed(anyhow!("{note}; {}", tail(&server.log, 3).trim())));
        }
    }
    match (failed.is_empty(), summary) {
        (true, Ok(s)) => Ok(s),
        (true, Err(e)) => Err(TrialError::Failed(e)),
        (false, _) => Err(TrialError::Failed(anyhow!("{}", failed.join("; ")))),
    }
}


/// Finds the highest open-loop rate (or, `over = "connections"`, the most connections) that
/// meets the objective: doubling from the start until a probe fails (or halving until one
/// passes), then bisecting the bracket until it is narrower than the precision (or than one
/// connection). Every probe is a whole trial in `dir/probe-NN`; the files of the probe at
/// capacity are copied into `dir` so tables and plots show the configuration at its capacity.
fn run_search(cx: &RunContext, config: &ConfigSpec, dir: &Path, search: &CapacitySearch) -> Result<CapacityResult, TrialError> {
    let result = search_capacity(search, &cx.interrupted, |k, x| {
        let name = format!("probe-{k:02}");
        let mut probe_config = config.clone();
        let connections = match search.over {
            SearchOver::Rate => {
                probe_config.load.rate = Some(x);
                None
            }
            SearchOver::Connections => {
                let n = x as u32;
                probe_config.load.connections = n;
                probe_config.load.processes = probe_config.load.processes.min(n);
                if let Some(r) = search.rate_per_connection {
                    probe_config.load.rate = Some(r * x);
                }
                Some(n)
            }
        };
        let asked = probe_config.load.rate.unwrap_or(0.0);
        // A load generator that failed its checks (exit 1) still wrote what it measured: the
        // probe keeps its figures and warnings, and its verdict says why it failed.
        let (summary, failure) = match run_trial(cx, &probe_config, &dir.join(&name)) {
            Ok(s) => (Some(s), None),
            Err(TrialError::ServerStart(e)) => return Err(TrialError::ServerStart(e)),
            Err(TrialError::Failed(e)) => (read_summary(&dir.join(&name).join(layout::SUMMARY)).ok(), Some(format!("trial failed: {e:#}"))),
        };
        let (judged, achieved, latency, warnings) = match summary {
            Some(s) => match (judge(search, asked, &s), failure) {
                ((Judged::Meets { .. }, achieved, latency), Some(failure)) => (Judged::Broken(failure), achieved, latency, s.warnings),
                ((judged, achieved, latency), _) => (judged, achieved, latency, s.warnings),
            },
            None => (Judged::Broken(failure.unwrap_or_default()), 0.0, Default::default(), Vec::new()),
        };
        let (passed, repeatable, load_generator_behind, verdict) = match judged {
            Judged::Meets { verdict, behind } => (true, false, behind, verdict),
            Judged::Misses { verdict, behind } => (false, true, behind, verdict),
            Judged::Broken(v) => (false, false, false, v),
        };
        match connections {
            Some(n) if asked > 0.0 => eprintln!("    {name}: {} connections, {} msgs/s: {verdict}", thousands(f64::from(n)), thousands(asked)),
            Some(n) => eprintln!("    {name}: {} connections: {verdict}", thousands(f64::from(n))),
            None => eprintln!("    {name}: {asked:.0} msgs/s: {verdict}"),
        }
        let probe = CapacityProbe { dir: name, asked_msgs_per_s: asked, connections, achieved_msgs_per_s: achieved, latency_us: latency, passed, verdict, load_generator_behind, warnings };
        Ok(Probed { probe, repeatable })
    })?;
    let path = dir.join(layout::CAPACITY);
    fs::create_dir_all(dir)
        .and_then(|_| fs::write(&path, serde_json::to_vec_pretty(&result).unwrap_or_default()))
        .map_err(|e| TrialError::Failed(anyhow!("cannot write {}: {e}", path.display())))?;
    if let Some(best) = result.probes.iter().filter(|p| p.passed).max_by(|a, b| a.position(search.over).total_cmp(&b.position(search.over))) {
        copy_files(&dir.join(&best.dir), dir).map_err(|e| TrialError::Failed(anyhow!("cannot copy the probe at capacity: {e}")))?;
    }
    Ok(result)
}

/// One probe as the search sees it.
struct Probed {
    probe: CapacityProbe,
    /// A failure by latency or overload (not errors): repeated once at the same rate before it
    /// is believed.
    repeatable: bool,
}

/// The search itself, apart from how a probe runs: `probe(k, x)` runs the k-th probe (from 1)
/// at rate or connection count `x` (a whole number when it is connections).
fn search_capacity<E>(
    search: &CapacitySearch,
    interrupted: &AtomicBool,
    mut probe: impl FnMut(u32, f64) -> Result<Probed, E>,
) -> Result<CapacityResult, E> {
    let (start, max, whole) = match search.over {
        SearchOver::Rate => (search.start_rate, search.max_rate, false),
        SearchOver::Connections => (f64::from(search.start_connections), f64::from(search.max_connections), true),
    };
    let step = |x: f64| if whole { x.round() } else { x };
    let mut probes: Vec<CapacityProbe> = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut converged = false;
    let mut x = start;
    let mut k = 0;
    while k < search.max_probes {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        k += 1;
        let first = probe(k, x)?;
        let (mut p, mut repeatable) = (first.probe, first.repeatable);
        // One stall of a shared machine can fail a probe well below capacity, and a bisection
        // never looks back: a latency or overload failure is repeated, and the last repeat
        // decides. Once when the load generator kept its schedule; twice when it fell behind,
        // since a load generator starved by other work on the machine is a passing condition
        // that says nothing about the server.
        let mut tries = 1;
        while repeatable
            && tries < if p.load_generator_behind { 3 } else { 2 }
            && k < search.max_probes
            && !interrupted.load(Ordering::Relaxed)
        {
            p.verdict.push_str("; repeated at the same rate");
            probes.push(p);
            k += 1;
            tries += 1;
            let next = probe(k, x)?;
            (p, repeatable) = (next.probe, next.repeatable);
            p.verdict.push_str(" (the repeat decides)");
        }
        if p.passed {
            pass = Some(pass.map_or(x, |v: f64| v.max(x)));
        } else {
            fail = Some(fail.map_or(x, |v: f64| v.min(x)));
        }
        probes.push(p);
        x = match (pass, fail) {
            (_, None) if x >= max => break,
            (_, None) => step(x * 2.0).min(max),
            (None, Some(f)) if f / 2.0 < 1.0 => break,
            (None, Some(f)) => step(f / 2.0),
            (Some(p), Some(f)) if (f - p) / p <= search.precision || (whole && f - p <= 1.0) => {
                converged = true;
                break;
            }
            (Some(p), Some(f)) => step((p + f) / 2.0),
        };
    }
    // The last probe at the first failing point decided it: whose limit did it show?
    let last_at = |v: f64| probes.iter().rev().find(|p| p.position(search.over) == v);
    let limited_by = match fail {
        None => LimitedBy::SearchLimit,
        Some(f) => match last_at(f) {
            Some(p) if p.load_generator_behind => LimitedBy::LoadGenerator,
            _ => LimitedBy::Server,
        },
    };
    let (capacity_msgs_per_s, first_failing_msgs_per_s, capacity_connections, first_failing_connections) = match search.over {
        SearchOver::Rate => (pass.unwrap_or(0.0), fail, None, None),
        SearchOver::Connections => {
            // The rate at the capacity: the one asked (open loop) or the one answered (closed).
            let rate = |p: &CapacityProbe| if p.asked_msgs_per_s > 0.0 { p.asked_msgs_per_s } else { p.achieved_msgs_per_s };
            (
                pass.and_then(last_at).map_or(0.0, rate),
                fail.and_then(last_at).map(|p| p.asked_msgs_per_s).filter(|r| *r > 0.0),
                Some(pass.unwrap_or(0.0) as u32),
                fail.map(|f| f as u32),
            )
        }
    };
    Ok(CapacityResult {
        schema_version: wsbench_core::SCHEMA_VERSION,
        slo: search.objective(),
        precision: search.precision,
        capacity_msgs_per_s,
        first_failing_msgs_per_s,
        converged,
        limited_by: Some(limited_by),
        over: search.over,
        capacity_connections,
        first_failing_connections,
        probes,
    })
}

/// A probe's verdict: meets the objective, misses it by latency or overload (worth repeating:
/// noise can do that), or broken (incomplete or with errors: repeating would not help).
/// `behind`: the load generator may have set the figures ([`load_generator_limit`]).
enum Judged {
    Meets { verdict: String, behind: bool },
    Misses { verdict: String, behind: bool },
    Broken(String),
}

/// Some when the load generator, not only the server, may have set the probe's figures: it sent
/// less than [`ACHIEVED_SHARE`] of the asked rate, its own send lag alone took half the
/// objective's bound (latency counts from the intended send time, so that lag is in it), or its
/// busiest thread was saturated.
///
/// Not when the server answered less than [`ACHIEVED_SHARE`] of what was actually sent: then the
/// server could not keep up with the load it got, whatever the load generator's lag (an
/// overloaded server slows its clients too), and the limit is the server's.
///
/// Returns why, in words for the verdict; `None` when it kept up.
fn load_generator_limit(search: &CapacitySearch, asked: f64, s: &LoadgenSummary) -> Option<String> {
    let sent = s.rate.map(|r| r.sent_msgs_per_s).unwrap_or(asked);
    if s.throughput_msgs_per_s < ACHIEVED_SHARE * sent {
        return None;
    }
    let lag = search.slo.stat.of(&s.send_lag_us);
    if sent < ACHIEVED_SHARE * asked {
        Some(format!("sent only {} of the {} msgs/s asked", thousands(sent), thousands(asked)))
    } else if lag > search.slo.bound_us / 2.0 {
        Some(format!("fell behind its schedule (send lag {} {})", search.slo.stat.name(), latency_us(lag)))
    } else if s.cpu.busiest_thread_pct > LOADGEN_CPU_LIMIT_PCT {
        Some(format!("had a thread at {:.0} % of a core (send lag {} {})", s.cpu.busiest_thread_pct, search.slo.stat.name(), latency_us(lag)))
    } else {
        None
    }
}

/// Whether one probe meets the objective: complete, no errors, not overloaded, bound kept.
/// `asked` is 0 for a closed loop, which cannot be overloaded, only slow.
fn judge(search: &CapacitySearch, asked: f64, s: &LoadgenSummary) -> (Judged, f64, wsbench_core::hist::LatencySummary) {
    let achieved = s.throughput_msgs_per_s;
    let bad = s.messages.faults();
    let latency = match search.metric {
        SearchMetric::Latency => Some(s.latency_us),
        SearchMetric::Completion => s.fanout.as_ref().and_then(|f| f.completion_us),
    };
    let Some(latency) = latency else {
        return (Judged::Broken("no broadcast completion latency was recorded".into()), achieved, Default::default());
    };
    let objective = search.objective();
    let value = search.slo.stat.of(&latency);
    let limit = load_generator_limit(search, asked, s);
    let behind = limit.is_some();
    let note = |v: String| match &limit {
        Some(why) => format!("{v}; the load generator {why}, so this limit may be its own"),
        None => v,
    };
    let judged = if !s.complete {
        Judged::Broken(format!("incomplete: {}", s.reason.as_deref().unwrap_or("unknown reason")))
    } else if bad > 0 {
        Judged::Broken(format!("{bad} errors, corrupted, unanswered or unmatched messages"))
    } else if !s.failed_checks.is_empty() {
        Judged::Broken(s.failed_checks.join("; "))
    } else if achieved < ACHIEVED_SHARE * asked {
        Judged::Misses { verdict: note(format!("overloaded: only {} msgs/s answered", thousands(achieved))), behind }
    } else if !search.slo.holds(&latency) {
        Judged::Misses { verdict: note(format!("misses {objective} ({} {})", search.slo.stat.name(), latency_us(value))), behind }
    } else {
        Judged::Meets { verdict: note(format!("meets {objective} ({} {})", search.slo.stat.name(), latency_us(value))), behind }
    };
    (judged, achieved, latency)
}

/// The headline of one search: a bare number only when the server set the limit.
fn capacity_line(c: &CapacityResult) -> String {
    let probes = format!("{} probes{}", c.probes.len(), if c.converged { "" } else { ", not converged" });
    let behind = c.probes.iter().filter(|p| p.load_generator_behind).count();
    let behind = if behind > 0 { format!("; the load generator fell behind in {behind} of {} probes", c.probes.len()) } else { String::new() };
    // What was searched, in its unit: "4,000 msgs/s", or "1,200 connections (12,000 msgs/s)".
    let (capacity, failing, none) = match (c.over, c.capacity_connections) {
        (SearchOver::Connections, Some(n)) => {
            let with_rate = |n: u32, rate: Option<f64>| match rate.filter(|r| *r > 0.0) {
                Some(r) => format!("{} connections ({} msgs/s)", thousands(f64::from(n)), thousands(r)),
                None => format!("{} connections", thousands(f64::from(n))),
            };
            (with_rate(n, Some(c.capacity_msgs_per_s)), c.first_failing_connections.map(|f| with_rate(f, c.first_failing_msgs_per_s)), n == 0)
        }
        _ => (format!("{} msgs/s", thousands(c.capacity_msgs_per_s)), c.first_failing_msgs_per_s.map(|f| format!("{} msgs/s", thousands(f))), c.capacity_msgs_per_s <= 0.0),
    };
    match (c.limited_by, failing) {
        (Some(LimitedBy::LoadGenerator), Some(f)) if none => format!(
            "no capacity measured under {}: the load generator could not keep its schedule even at {f} ({probes}){behind}",
            c.slo
        ),
        (Some(LimitedBy::LoadGenerator), Some(f)) => format!(
            "capacity at least {capacity} under {}; the load generator could not offer more (it fell behind its schedule at {f}; {probes}){behind}",
            c.slo
        ),
        (_, Some(f)) => format!("capacity {capacity} under {}, limited by the server (first failing {f}, {probes}){behind}", c.slo),
        (_, None) => format!("capacity at least {capacity} under {}: no probe failed ({probes}){behind}", c.slo),
    }
}

/// Copies the files (not folders) of `from` into `to`.
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn read_summary(path: &Path) -> Result<LoadgenSummary> {
    let bytes = fs::read(path).with_context(|| format!("no load-generator summary at {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a wsbench summary", path.display()))
}

/// Splits a configuration's load over its processes: connections as evenly as possible (the
/// shards' rule, [`Shard::share`]), the rate in proportion to each process's connections, every
/// process writing into its own folder.
///
/// A ramp's processes are its shards instead (`--shard i/n`): each holds its places of every
/// open count and sends exactly their part of the one-process schedule, from a shared start,
/// so every process steps at the same instant (independent processes would each start their
/// stages when they happened to begin). So are a
/// broadcast's: a room's members in one process receive what its publishers in another send,
/// on one schedule, and `collect`'s merge adds deliveries up exactly. Shards write
/// into `<trial>/shard-<i>/` ([`results_dir`]) and share a start, which the trial sets
/// ([`shared_start`]) when it starts them.
pub fn split_load(load: &LoadSpec, url: &str, trial_dir: &Path) -> Vec<LoadPlan> {
    let p = load.processes.max(1);
    let whole = load.plan(url);
    if p > 1 && (!whole.stages.is_empty() || whole.workload == wsbench_core::plan::Workload::Broadcast) {
        return (0..p).map(|i| LoadPlan { shard: Some(Shard { index: i, count: p }), out: Some(trial_dir.to_owned()), ..whole.clone() }).collect();
    }
    (0..p)
        .map(|i| {
            let part = Shard { index: i, count: p };
            let connections = part.share(load.connections);
            let share = f64::from(connections) / f64::from(load.connections);
            LoadPlan {
                connections,
                connect_rate: load.connect_rate * share,
                rate: load.rate.map(|r| r * share),
                stages: load.stages.iter().map(|st| st.scaled(share)).collect(),
                // The budget is the whole configuration's, shared out like the connections.
                max_failed_connections: part.share(load.max_failed_connections),
                // `ca` is set by the trial when its server has TLS.
                out: Some(if p == 1 { trial_dir.to_owned() } else { layout::shard_dir(trial_dir, i as usize) }),
                // Ramped again below from this process's own count.
                start_connections: None,
                ..load.plan(url)
            }
            .with_connection_ramp()
        })
        .collect()
}

/// Where the load generator of `plan` writes its files: a shard into its own folder below `--out`.
pub fn results_dir(plan: &LoadPlan) -> Option<PathBuf> {
    let out = plan.out.as_ref()?;
    Some(plan.shard.map_or_else(|| out.clone(), |s| layout::shard_results_dir(out, s.index)))
}

/// The instant (RFC 3339 UTC) at which a trial's shards begin their warm-up together: once
/// every process has started (`SHARD_START_MARGIN`) and opened its first connections.
fn shared_start(plan: &LoadPlan) -> String {
    let connect = Duration::from_secs_f64(f64::from(plan.first_connections()) / plan.connect_rate);
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + SHARD_START_MARGIN + connect).to_string()
}

fn start_server(cx: &RunContext, spec: &ServerSpec, dir: &Path, tls: Option<&crate::tls::TrialTls>, token_secret: Option<&Path>) -> Result<ServerProcess> {
    let log = dir.join(layout::SERVER_LOG);
    match spec {
        ServerSpec::Builtin(b) => {
            let tls = tls.map(|t| TlsFiles { cert: t.cert.clone(), key: t.key.clone() });
            let plan = b.plan("127.0.0.1:0".parse().expect("literal address"), tls, Some(dir.to_owned()));
            let mut cmd = Command::new(&cx.exe);
            cmd.arg("server").args(plan.to_args()).args(b.gate_args());
            if let Some(secret) = token_secret {
                cmd.arg("--token-secret").arg(secret);
            }
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file(&log)?);
            let mut child = children::spawn(&mut cmd).with_context(|| format!("cannot start {}", cx.exe.display()))?;
            let stdout = child.stdout.take().expect("stdout was piped");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = tx.send(lines.next());
                // Keep draining so the server can never block on a full pipe.
                for _ in lines {}
            });
            let line = rx.recv_timeout(SERVER_READY_TIMEOUT);
            let ready = line.ok().flatten().and_then(Result::ok).and_then(|l| Listening::parse(&l));
            match ready.and_then(|ev| ev.addr.parse::<SocketAddr>().ok()) {
                Some(addr) => Ok(ServerProcess { child, addr, log }),
                None => {
                    let status = child.try_wait().ok().flatten();
                    child.kill_group();
                    let how = match status {
                        Some(st) => format!("exited with {}", describe(Some(st))),
                        None => format!("did not report listening within {}s", SERVER_READY_TIMEOUT.as_secs()),
                    };
                    bail!("the server {how}; its stderr ends: {}", tail(&log, 3).trim())
                }
            }
        }
        ServerSpec::Command(c) => {
            let port = free_port()?;
            let argv: Vec<String> = c.command.iter().map(|a| a.replace("{port}", &port.to_string()).replace("{host}", "127.0.0.1")).collect();
            // Relative paths in the command mean the scenario's folder, wherever wsbench runs from.
            let mut cmd = Command::new(&argv[0]);
            if let Some(folder) = cx.scenario_dir.as_deref() {
                if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
                    cmd = Command::new(folder.join(&argv[0]));
                }
                cmd.current_dir(folder);
            }
            cmd.args(&argv[1..]).env("PORT", port.to_string()).stdin(Stdio::null()).stdout(log_file(&log)?).stderr(log_file(&log)?);
            let mut child = children::spawn(&mut cmd).with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + c.ready_timeout;
            loop {
                if let Some(st) = child.try_wait().ok().flatten() {
                    bail!("`{}` exited with {} before accepting connections; its output ({}): {}", argv.join(" "), describe(Some(st)), log.display(), tail(&log, 3).trim());
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(ServerProcess { child, addr, log });
                }
                if Instant::now() > deadline {
                    child.kill_group();
                    bail!("`{}` did not accept connections on {addr} within {:?}; its output ({}): {}", argv.join(" "), c.ready_timeout, log.display(), tail(&log, 3).trim());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// SIGTERM to the server's process group, then SIGKILL if the server has not exited in time;
/// whatever is left of the group (an external server's own children) is killed in any case.
/// Returns a note when the server misbehaved.
fn stop_server(server: &mut ServerProcess) -> Option<String> {
    if let Ok(Some(st)) = server.child.try_wait() {
        server.child.kill_group();
        return Some(format!("the server died during the trial ({})", describe(Some(st))));
    }
    // The group, not the leader alone: `sh -c 'node app.js'` must pass it on to node.
    server.child.signal_group(libc::SIGTERM);
    let deadline = Instant::now() + SERVER_STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.child.try_wait() {
            server.child.kill_group();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill_group();
    Some(format!("the server did not exit within {}s of SIGTERM and was killed", SERVER_STOP_TIMEOUT.as_secs()))
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<GroupChild> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file(log)?);
    children::spawn(cmd).map_err(anyhow::Error::from)
}

fn log_file(path: &Path) -> Result<File> {
    File::options().create(true).append(true).open(path).with_context(|| format!("cannot create {}", path.display()))
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "an unknown status".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("code {c}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => s.to_string(),
        },
    }
}

/// The last `n` non-empty lines of a log file, for error messages.
/// The last `n` non-empty lines of a log, joined with ` | `. When the first line that reads like
/// the cause (`Error: Cannot find module …`, a Python `Traceback`) comes before them, it leads,
/// so a long stack trace does not hide why a program failed.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "(nothing)".into();
    }
    let start = lines.len().saturating_sub(n);
    let cause = lines[..start].iter().position(|l| {
        let l = l.to_ascii_lowercase();
        ["error", "cannot", "can't", "not found", "no such file", "permission denied", "traceback", "panicked"].iter().any(|w| l.contains(w))
    });
    match cause {
        Some(i) if i + 1 == start => lines[i..].join(" | "),
        Some(i) => format!("{} | … | {}", lines[i], lines[start..].join(" | ")),
        None => lines[start..].join(" | "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::plan::Mode;

    fn spec(connections: u32, processes: u32, rate: Option<f64>) -> LoadSpec {
        LoadSpec {
            connections,
            connect_rate: 1000.0,
            size: 32,
            mode: Mode::Binary,
            engine: wsbench_core::plan::Engine::ZeroAlloc,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            in_flight: 1,
            rate,
            processes,
            threads: 1,
            drain_timeout: Duration::from_secs(1),
            interval: Duration::from_millis(250),
            max_loss: 0.01,
            max_failed_connections: 4,
            realtime: false,
            spin: Duration::ZERO,
            coalesce: Default::default(),
            workload: wsbench_core::plan::Workload::Echo,
            fanout: Default::default(),
            foreign: None,
            churn: Default::default(),
            stages: Vec::new(),
            idle: Vec::new(),
            ping_interval: None,
            nodelay: true,
            deflate: None,
            rx_timestamps: Default::default(),
            origin: None,
            bulk: false,
        }
    }

    #[test]
    fn split_keeps_totals() {
        let plans = split_load(&spec(10, 3, Some(9000.0)), "ws://127.0.0.1:1/", Path::new("t"));
        assert_eq!(plans.iter().map(|p| p.connections).collect::<Vec<_>>(), [4, 3, 3]);
        let rate: f64 = plans.iter().map(|p| p.rate.unwrap()).sum();
        assert!((rate - 9000.0).abs() < 1e-6);
        assert_eq!(plans[1].out.as_deref(), Some(Path::new("t/loadgen-1")));
        assert!(plans.iter().all(|p| p.max_loss == 0.01));
        assert_eq!(plans.iter().map(|p| p.max_failed_connections).collect::<Vec<_>>(), [2, 1, 1], "the budget is shared out");
    }

    #[test]
    fn one_process_writes_into_the_trial_folder() {
        let plans = split_load(&spec(5, 1, None), "ws://127.0.0.1:1/", Path::new("t"));
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].out.as_deref(), Some(Path::new("t")));
        assert_eq!(plans[0].rate, None);
    }

    fn fake_probe(capacity: f64) -> impl FnMut(u32, f64) -> Result<Probed, ()> {
        move |k, rate| {
            let probe = CapacityProbe {
                dir: format!("probe-{k:02}"),
                asked_msgs_per_s: rate,
                connections: None,
                achieved_msgs_per_s: rate.min(capacity),
                latency_us: Default::default(),
                passed: rate <= capacity,
                verdict: String::new(),
                load_generator_behind: false,
                warnings: Vec::new(),
            };
            Ok(Probed { probe, repeatable: rate > capacity })
        }
    }

    #[test]
    fn one_failure_that_does_not_repeat_does_not_derail_the_search() {
        let never = AtomicBool::new(false);
        // The first probe at 1000 msgs/s hits a stall and fails; its repeat passes, as do the
        // other probes at or below capacity.
        let mut stalled = false;
        let mut honest = fake_probe(3_000.0);
        let r = search_capacity(&search(1000.0, 1e6, 30), &never, |k, rate| {
            let mut p = honest(k, rate)?;
            if !stalled {
                stalled = true;
                (p.probe.passed, p.repeatable) = (false, true);
            }
            Ok::<_, ()>(p)
        })
        .unwrap();
        assert!(r.converged && r.capacity_msgs_per_s <= 3_000.0 && r.capacity_msgs_per_s >= 3_000.0 / 1.05, "{r:?}");
        assert!(r.probes[0].verdict.contains("repeated") && !r.probes[0].passed);
        assert!(r.probes[1].passed && r.probes[1].asked_msgs_per_s == 1000.0);
        // A failure that repeats is believed: every failing rate above capacity was probed twice.
        let fails: Vec<f64> = r.probes.iter().filter(|p| !p.passed).map(|p| p.asked_msgs_per_s).collect();
        assert!(fails.iter().filter(|&&f| f > 3_000.0).all(|f| fails.iter().filter(|&&g| g == *f).count() == 2), "{fails:?}");
    }

    fn search(start: f64, max: f64, probes: u32) -> CapacitySearch {
        CapacitySearch {
            slo: wsbench_core::slo::Slo::parse("p99 <= 5ms").unwrap(),
            over: SearchOver::Rate,
            metric: SearchMetric::Latency,
            precision: 0.05,
            start_rate: start,
            max_rate: max,
            start_connections: 100,
            max_connections: 10_000,
            rate_per_connection: None,
            max_probes: probes,
        }
    }

    #[test]
    fn a_search_over_connections_finds_a_whole_number_of_them() {
        let never = AtomicBool::new(false);
        for (start, limit) in [(100, 137), (100, 1), (8, 9), (50, 3_000)] {
            let mut s = search(0.0, 0.0, 40);
            (s.over, s.start_connections, s.max_connections, s.rate_per_connection) = (SearchOver::Connections, start, 10_000, Some(10.0));
            let mut probed = Vec::new();
            let r = search_capacity(&s, &never, |k, n| {
                probed.push(n);
                assert_eq!(n, n.round(), "connections are whole");
                let probe = CapacityProbe {
                    dir: format!("probe-{k:02}"),
                    asked_msgs_per_s: n * 10.0,
                    connections: Some(n as u32),
                    achieved_msgs_per_s: n * 10.0,
                    latency_us: Default::default(),
                    passed: n <= f64::from(limit),
                    verdict: String::new(),
                    load_generator_behind: false,
                    warnings: Vec::new(),
                };
                Ok::<_, ()>(Probed { probe, repeatable: false })
            })
            .unwrap();
            let found = r.capacity_connections.unwrap();
            // Within the precision, and never above the limit; one connection apart at worst.
            assert!(r.converged && found <= limit && f64::from(found) >= f64::from(limit) / 1.05, "{limit}: {r:?} {probed:?}");
            let failing = r.first_failing_connections.unwrap();
            assert!(failing > limit, "{limit}: {r:?}");
            assert_eq!((r.capacity_msgs_per_s, r.first_failing_msgs_per_s), (f64::from(found) * 10.0, Some(f64::from(failing) * 10.0)));
            assert_eq!(r.over, SearchOver::Connections);
            let line = capacity_line(&r);
            assert!(line.contains(&format!("capacity {} connections", thousands(f64::from(found)))) && line.contains("limited by the server"), "{line}");
        }
    }

    #[test]
    fn search_finds_a_known_capacity_within_its_precision() {
        let never = AtomicBool::new(false);
        for capacity in [700.0, 5_000.0, 23_456.0, 250_000.0] {
            let r = search_capacity(&search(1000.0, 1e6, 30), &never, fake_probe(capacity)).unwrap();
            assert!(r.converged, "{capacity}: {r:?}");
            assert!(r.capacity_msgs_per_s <= capacity, "{capacity}: {r:?}");
            assert!(r.capacity_msgs_per_s >= capacity / 1.05, "{capacity}: {}", r.capacity_msgs_per_s);
            let f = r.first_failing_msgs_per_s.unwrap();
            assert!(f > capacity && (f - r.capacity_msgs_per_s) / r.capacity_msgs_per_s <= 0.05);
        }
    }

    #[test]
    fn a_load_generator_that_cannot_keep_up_is_named_as_the_limit() {
        let never = AtomicBool::new(false);
        // The server could take 50k msgs/s, but above 6k the load generator falls behind and
        // every probe there misses the objective.
        let mut honest = fake_probe(50_000.0);
        let mut calls: Vec<f64> = Vec::new();
        let r = search_capacity(&search(1000.0, 1e6, 40), &never, |k, rate| {
            calls.push(rate);
            let mut p = honest(k, rate)?;
            if rate > 6_000.0 {
                (p.probe.passed, p.probe.load_generator_behind, p.repeatable) = (false, true, true);
            }
            Ok::<_, ()>(p)
        })
        .unwrap();
        assert_eq!(r.limited_by, Some(LimitedBy::LoadGenerator), "{r:?}");
        assert!(r.capacity_msgs_per_s <= 6_000.0 && r.capacity_msgs_per_s >= 6_000.0 / 1.05, "{r:?}");
        // A failure with the load generator behind is tried three times before it is believed.
        assert_eq!(calls.iter().filter(|&&c| c == 8_000.0).count(), 3, "{calls:?}");
        assert!(capacity_line(&r).contains("at least") && capacity_line(&r).contains("the load generator could not offer more"), "{}", capacity_line(&r));

        // The same search against a server that is the limit names the server.
        let r = search_capacity(&search(1000.0, 1e6, 40), &never, fake_probe(5_000.0)).unwrap();
        assert_eq!(r.limited_by, Some(LimitedBy::Server));
        assert!(capacity_line(&r).contains("limited by the server") && !capacity_line(&r).contains("at least"), "{}", capacity_line(&r));
        // And one that never failed names the search's own limit.
        let r = search_capacity(&search(1000.0, 4000.0, 40), &never, fake_probe(1e9)).unwrap();
        assert_eq!(r.limited_by, Some(LimitedBy::SearchLimit));
    }

    #[test]
    fn a_probe_is_behind_when_the_load_generator_sent_late_little_or_flat_out() {
        let search = search(1000.0, 1e6, 10); // p99 <= 5 ms
        let answered = |sent: f64, achieved: f64, lag_p99_us: f64, thread_pct: f64| -> LoadgenSummary {
            let json = serde_json::json!({
                "schema_version": wsbench_core::SCHEMA_VERSION, "complete": true, "wsbench_version": "0", "command": [],
                "host": HostInfo::current(), "started_at": "2026-11-25T10:00:00Z", "duration_s": 1.0, "throughput_msgs_per_s": achieved,
                "rate": {"asked_msgs_per_s": 1000.0, "sent_msgs_per_s": sent},
                "messages": {"sent": 0, "received": 0, "errors": 0, "corrupted": 0, "lost": 0},
                "connections": {"target": 1, "established": 1, "failed": 0},
                "latency_us": wsbench_core::hist::LatencySummary::default(), "service_time_us": wsbench_core::hist::LatencySummary::default(),
                "send_lag_us": wsbench_core::hist::LatencySummary { p99: lag_p99_us, ..Default::default() },
                "cpu": {"process_pct": thread_pct, "busiest_thread_pct": thread_pct}, "warnings": [],
                "config": LoadPlan::default(),
            });
            serde_json::from_value(json).unwrap()
        };
        let summary = |sent: f64, lag_p99_us: f64, thread_pct: f64| answered(sent, sent, lag_p99_us, thread_pct);
        let load_generator_behind = |search: &CapacitySearch, asked: f64, s: &LoadgenSummary| load_generator_limit(search, asked, s).is_some();
        assert!(!load_generator_behind(&search, 1000.0, &summary(1000.0, 300.0, 40.0)));
        assert!(!load_generator_behind(&search, 1000.0, &summary(990.0, 2_400.0, 80.0)), "under half the bound");
        assert!(load_generator_behind(&search, 1000.0, &summary(1000.0, 2_600.0, 40.0)), "lag over half the bound");
        assert!(load_generator_behind(&search, 1000.0, &summary(900.0, 100.0, 40.0)), "sent too little");
        assert!(load_generator_behind(&search, 1000.0, &summary(1000.0, 100.0, 97.0)), "a saturated thread");
        // Sent on time or nearly, but the server answered far less than it got: its limit.
        assert!(!load_generator_behind(&search, 1000.0, &answered(1000.0, 790.0, 80_000.0, 40.0)), "an overloaded server slows its client");
        // The verdict names the reason that applies, not always the schedule.
        let why = |s: &LoadgenSummary| load_generator_limit(&search, 1000.0, s).unwrap();
        assert!(why(&summary(900.0, 100.0, 40.0)).starts_with("sent only 900 of the 1,000 msgs/s asked"));
        assert!(why(&summary(1000.0, 2_600.0, 40.0)).starts_with("fell behind its schedule"));
        assert!(why(&summary(1000.0, 100.0, 97.0)).starts_with("had a thread at 97 % of a core"));
    }

    #[test]
    fn search_stops_at_its_limits() {
        let never = AtomicBool::new(false);
        // Capacity beyond max_rate: no failing probe, not converged, capacity = max_rate.
        let r = search_capacity(&search(1000.0, 8000.0, 30), &never, fake_probe(1e9)).unwrap();
        assert_eq!((r.capacity_msgs_per_s, r.first_failing_msgs_per_s, r.converged), (8000.0, None, false));
        assert_eq!(r.probes.len(), 4); // 1000, 2000, 4000, 8000
        // The probe budget ends the search.
        let r = search_capacity(&search(1000.0, 1e6, 3), &never, fake_probe(5e5)).unwrap();
        assert_eq!(r.probes.len(), 3);
        assert!(!r.converged);
        // Nothing passes: capacity 0.
        let r = search_capacity(&search(1000.0, 1e6, 30), &never, fake_probe(0.5)).unwrap();
        assert_eq!(r.capacity_msgs_per_s, 0.0);
    }

    #[test]
    fn every_committed_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut seen = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.configs.is_empty(), "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 7, "found {seen} scenarios in {}", dir.display());
    }

    #[test]
    fn run_ids_never_overwrite() {
        let root = std::env::temp_dir().join(format!("wsbench-runid-{}", std::process::id()));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_065_700);
        let a = create_run_dir(&root, "s", None, t).unwrap();
        let b = create_run_dir(&root, "s", None, t).unwrap();
        assert_ne!(a, b);
        assert!(a.ends_with("20251125-101500"), "{}", a.display());
        assert!(create_run_dir(&root, "s", Some("x"), t).is_ok());
        assert!(create_run_dir(&root, "s", Some("x"), t).is_err());
        fs::remove_dir_all(&root).ok();
    }
}

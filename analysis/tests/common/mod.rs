//! A fabricated run directory, written through the core types exactly as `wsbench run` lays it out.
//!
//! Shared by the integration tests and by `examples/demo_report.rs`. Latencies are synthetic but
//! shaped like real ones: a log-normal body, a rare tail, and (for one configuration) emulated
//! stop-the-world pauses every few seconds, so the figures have something to show.
#![allow(dead_code)] // each test binary uses a different part

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use wsbench_core::hist::{self, new_histogram, record_ns, LatencySummary, LogInterval};
use wsbench_core::layout;
use wsbench_core::plan::{LoadPlan, Pause, Runtime, ServerPlan};
use wsbench_core::result::*;
use wsbench_core::warning::Warning;
use wsbench_core::{SCHEMA_VERSION, VERSION};

/// Small deterministic generator (xorshift64*), so fabricated runs are the same every time.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// How one fabricated configuration behaves.
#[derive(Debug, Clone)]
pub struct ConfigShape {
    pub name: &'static str,
    pub runtime: Runtime,
    /// Median latency in µs.
    pub median_us: f64,
    /// Messages per second.
    pub rate: u64,
    /// Emulated pause length and period, in seconds.
    pub pause: Option<(f64, u64)>,
    pub server_cpu_pct: f64,
    /// Resident memory at start; it grows a little every second.
    pub server_rss_mib: f64,
}

pub fn default_shapes() -> Vec<ConfigShape> {
    vec![
        ConfigShape {
            name: "current-thread",
            runtime: Runtime::CurrentThread,
            median_us: 42.0,
            rate: 24_000,
            pause: None,
            server_cpu_pct: 96.0,
            server_rss_mib: 7.5,
        },
        ConfigShape {
            name: "multi-thread",
            runtime: Runtime::MultiThread,
            median_us: 58.0,
            rate: 31_000,
            pause: Some((0.030, 3)),
            server_cpu_pct: 148.0,
            server_rss_mib: 11.0,
        },
    ]
}

/// What a fabricated trial contains, for tests to compare against.
#[derive(Debug, Clone)]
pub struct TrialTruth {
    pub summary: LoadgenSummary,
    pub latency: Vec<LogInterval>,
}

/// What was fabricated.
#[derive(Debug, Clone)]
pub struct DemoRun {
    pub dir: PathBuf,
    pub manifest: RunManifest,
    /// Per configuration (manifest order), per trial.
    pub truth: Vec<Vec<TrialTruth>>,
}

pub const SECONDS: u64 = 10;
pub const TRIALS: u32 = 2;

pub fn host() -> HostInfo {
    HostInfo { hostname: "demo-host".into(), os: "Linux".into(), kernel: "6.1.0".into(), arch: "x86_64".into(), cpus: 2 }
}

fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

/// One second of latencies in ns: log-normal body, a rare ×10–×60 tail, and during a pause a
/// share of the messages waiting out the rest of it.
fn second(rng: &mut Rng, shape: &ConfigShape, k: u64, scale: f64) -> Histogram<u64> {
    let mut h = new_histogram();
    let paused = shape.pause.is_some_and(|(_, every)| k % every == every - 1);
    // A paused server answers nothing while it is stopped.
    let stopped = if paused { shape.pause.unwrap().0 } else { 0.0 };
    let n = (shape.rate as f64 * (0.97 + 0.06 * rng.uniform()) * (1.0 - stopped)) as u64;
    for _ in 0..n {
        let mut us = shape.median_us * scale * (0.35 * rng.normal()).exp();
        if rng.uniform() < 0.0015 {
            us *= 10.0 + 50.0 * rng.uniform();
        }
        if paused && rng.uniform() < 0.03 {
            us += shape.pause.unwrap().0 * 1e6 * rng.uniform();
        }
        record_ns(&mut h, (us * 1_000.0) as u64);
    }
    h
}

fn log(hs: Vec<Histogram<u64>>) -> Vec<LogInterval> {
    hs.into_iter()
        .enumerate()
        .map(|(k, histogram)| LogInterval { start: Duration::from_secs(k as u64), duration: Duration::from_secs(1), tag: None, histogram })
        .collect()
}

/// Writes one load generator's files (`summary.json`, the three logs, `intervals.csv`) into
/// `dir` and returns what they hold. `share` scales the rate (shards of one trial).
pub fn write_loadgen(dir: &Path, shape: &ConfigShape, seed: u64, warnings: Vec<Warning>, errors: u64) -> TrialTruth {
    fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(seed);
    let scale = 0.95 + 0.1 * rng.uniform(); // trials differ a little, as real ones do
    let latency = log((0..SECONDS).map(|k| second(&mut rng, shape, k, scale)).collect());
    let service = log(latency.iter().map(|iv| scaled(&iv.histogram, 0.9)).collect());
    let lag = log((0..SECONDS)
        .map(|_| {
            (0..200).fold(new_histogram(), |mut h, _| {
                record_ns(&mut h, (2_000.0 + 8_000.0 * rng.uniform()) as u64);
                h
            })
        })
        .collect());
    let start = start_time();
    hist::write_interval_log(&dir.join(layout::LATENCY_LOG), start, "latency", &latency).unwrap();
    hist::write_interval_log(&dir.join(layout::SERVICE_TIME_LOG), start, "service time", &service).unwrap();
    hist::write_interval_log(&dir.join(layout::SEND_LAG_LOG), start, "send lag", &lag).unwrap();

    let mut csv = csv::Writer::from_path(dir.join(layout::INTERVALS_CSV)).unwrap();
    for (k, iv) in latency.iter().enumerate() {
        let s = LatencySummary::from_histogram_ns(&iv.histogram);
        let n = iv.histogram.len();
        csv.serialize(IntervalRow {
            elapsed_s: (k + 1) as f64,
            sent: n,
            received: n,
            errors: 0,
            throughput: n as f64,
            p50_us: Some(s.p50),
            p90_us: Some(s.p90),
            p99_us: Some(s.p99),
            p99_9_us: Some(s.p99_9),
            max_us: Some(s.max),
            ..Default::default()
        })
        .unwrap();
    }
    csv.flush().unwrap();

    let total = hist::total(&latency);
    let received = total.len();
    let summary = LoadgenSummary {
        schema_version: SCHEMA_VERSION,
        complete: true,
        reason: None,
        wsbench_version: VERSION.into(),
        config: LoadPlan { out: Some(dir.to_owned()), duration: Duration::from_secs(SECONDS), ..LoadPlan::default() },
        command: vec!["wsbench".into(), "loadgen".into()],
        host: host(),
        started_at: humantime::format_rfc3339_seconds(start).to_string(),
        duration_s: SECONDS as f64,
        throughput_msgs_per_s: received as f64 / SECONDS as f64,
        rate: None,
        messages: MessageCounts { sent: received + errors, received, late: 0, errors, corrupted: 0, lost: 0, ..Default::default() },
        connections: ConnectionCounts { target: 10, established: 10, failed: 0, ..Default::default() },
        latency_us: LatencySummary::from_histogram_ns(&total),
        service_time_us: LatencySummary::from_histogram_ns(&hist::total(&service)),
        send_lag_us: LatencySummary::from_histogram_ns(&hist::total(&lag)),
        cpu: CpuUse { process_pct: 60.0, busiest_thread_pct: 58.0 },
        allocations_per_message: None,
        worker_allocations_per_message: None,
        unanswered_min_age_us: None,
        failed_checks: Vec::new(),
        warnings,
        shard: None,
        start: None,
        setup: Default::default(),
        fanout: None,
        idle: Vec::new(),
        rx_timestamps: None,
    };
    fs::write(dir.join(layout::SUMMARY), serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    TrialTruth { summary, latency }
}

fn scaled(h: &Histogram<u64>, f: f64) -> Histogram<u64> {
    let mut out = new_histogram();
    for v in h.iter_recorded() {
        out.record_n(((v.value_iterated_to() as f64 * f) as u64).max(1), v.count_at_value()).unwrap();
    }
    out
}

/// Writes `processes.csv` (server and one load generator) and `server.json` for a trial.
fn write_server(dir: &Path, shape: &ConfigShape, seed: u64) {
    let mut rng = Rng::new(seed ^ 0xABCD);
    let mut csv = csv::Writer::from_path(dir.join(layout::PROCESSES_CSV)).unwrap();
    let seconds = SECONDS + 4; // connecting, warm-up and drain around the measured window
    for k in 1..=seconds {
        let busy = (2..=SECONDS + 2).contains(&k);
        let cpu = if busy { shape.server_cpu_pct * (0.95 + 0.08 * rng.uniform()) } else { 3.0 * rng.uniform() };
        let rss = (shape.server_rss_mib + 0.35 * k as f64 + 0.3 * rng.uniform()) * 1024.0 * 1024.0;
        csv.serialize(ProcessSample {
            elapsed_s: k as f64 + 0.003 * rng.uniform(),
            role: "server".into(),
            pid: 4242,
            cpu_pct: cpu,
            rss_bytes: rss as u64,
        })
        .unwrap();
        csv.serialize(ProcessSample {
            elapsed_s: k as f64 + 0.004,
            role: "loadgen-0".into(),
            pid: 4243,
            cpu_pct: if busy { 61.0 } else { 5.0 },
            rss_bytes: 6 << 20,
        })
        .unwrap();
    }
    csv.flush().unwrap();

    let server = ServerSummary {
        schema_version: SCHEMA_VERSION,
        complete: true,
        wsbench_version: VERSION.into(),
        config: ServerPlan {
            runtime: shape.runtime,
            pause: shape.pause.map(|(len, every)| Pause { every: Duration::from_secs(every), pause_for: Duration::from_secs_f64(len) }),
            ..ServerPlan::default()
        },
        command: vec!["wsbench".into(), "server".into()],
        host: host(),
        started_at: humantime::format_rfc3339_seconds(start_time()).to_string(),
        duration_s: seconds as f64,
        counts: ServerCounts::default(),
        pauses: shape.pause.map(|(_, every)| SECONDS / every).unwrap_or(0),
        one_way_latency_us: LatencySummary::default(),
        cpu_pct: shape.server_cpu_pct * 0.8,
        allocations_per_message: None,
        worker_allocations_per_message: None,
        fanout: None,
    };
    fs::write(dir.join(layout::SERVER_SUMMARY), serde_json::to_string_pretty(&server).unwrap()).unwrap();
}

/// Fabricates a run of `shapes` × [`TRIALS`] trials in `dir` (created; replaced if it exists).
/// Trial 2 of the second configuration carries two warnings and a few errors.
pub fn fabricate(dir: &Path, shapes: &[ConfigShape]) -> DemoRun {
    fabricate_trials(dir, shapes, TRIALS)
}

/// As [`fabricate`], with `trials` trials per configuration.
pub fn fabricate_trials(dir: &Path, shapes: &[ConfigShape], trials: u32) -> DemoRun {
    let planned: Vec<Planned> = shapes.iter().map(|s| Planned { entry: entry(s.name, s.runtime, None, None), shape: s.clone() }).collect();
    let run = fabricate_planned(dir, "demo", trials, &planned, |c, t| {
        if c == 1 && t == 2 {
            (vec![Warning::send_lag_high(1_450.0), Warning::errors_seen(3)], 3)
        } else {
            (Vec::new(), 0)
        }
    });
    DemoRun { dir: run.dir, manifest: run.manifest, truth: run.truth }
}

/// One configuration to fabricate: its manifest entry and how it behaves.
pub struct Planned {
    pub entry: ConfigEntry,
    pub shape: ConfigShape,
}

/// A manifest entry for a built-in server with `runtime`.
pub fn entry(name: &str, runtime: Runtime, group: Option<&str>, asked_rate: Option<f64>) -> ConfigEntry {
    ConfigEntry {
        name: name.into(),
        dir: layout::slug(name),
        group: group.map(str::to_owned),
        asked_rate,
        server: serde_json::json!({"kind": "builtin", "runtime": runtime.name()}),
        load: serde_json::json!({"connections": 10}),
    }
}

/// Writes every trial of every planned configuration (an open-loop one, with `asked_rate` in
/// its entry, gets the asked rate in its summary) and the manifest. `extras(config, trial)`
/// gives the warnings and error count of a trial.
fn fabricate_planned(dir: &Path, scenario: &str, trials: u32, planned: &[Planned], extras: impl Fn(usize, u32) -> (Vec<Warning>, u64)) -> DemoRun {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    let mut truth = Vec::new();
    for (c, p) in planned.iter().enumerate() {
        let mut config_truth = Vec::new();
        for t in 1..=trials {
            let tdir = layout::trial_dir(dir, &p.entry.name, t);
            let seed = (c as u64 + 1) * 1000 + t as u64;
            let (warnings, errors) = extras(c, t);
            let mut trial = write_loadgen(&tdir, &p.shape, seed, warnings, errors);
            if let Some(asked) = p.entry.asked_rate {
                set_asked_rate(&tdir, &mut trial, asked);
            }
            write_server(&tdir, &p.shape, seed);
            config_truth.push(trial);
        }
        truth.push(config_truth);
    }
    let manifest = RunManifest {
        schema_version: SCHEMA_VERSION,
        wsbench_version: VERSION.into(),
        scenario: scenario.into(),
        scenario_file: format!("scenarios/{scenario}.toml"),
        scenario_text: format!("name = \"{scenario}\"\ntrials = {trials}\n"),
        run_id: "20261125-101500".into(),
        started_at: "2026-11-25T10:15:00Z".into(),
        command: vec!["wsbench".into(), "run".into(), format!("scenarios/{scenario}.toml")],
        host: host(),
        trials,
        configs: planned.iter().map(|p| p.entry.clone()).collect(),
        order: (1..=trials).flat_map(|t| planned.iter().map(move |p| (p.entry.name.clone(), t))).collect(),
        failures: Vec::new(),
    };
    write_manifest(dir, &manifest);
    DemoRun { dir: dir.to_owned(), manifest, truth }
}

/// Makes a fabricated trial an open-loop one at `asked` msgs/s, as the load generator records it.
pub fn set_asked_rate(trial_dir: &Path, trial: &mut TrialTruth, asked: f64) {
    let s = &mut trial.summary;
    s.config.rate = Some(asked);
    s.rate = Some(RateReport { asked_msgs_per_s: asked, sent_msgs_per_s: s.messages.sent as f64 / s.duration_s });
    fs::write(trial_dir.join(layout::SUMMARY), serde_json::to_string_pretty(s).unwrap()).unwrap();
}

// ---------------------------------------------------------------- rate sweeps

/// Asked rates of the fabricated sweeps, msgs/s.
pub const SWEEP_RATES: [u64; 4] = [1_000, 2_000, 4_000, 8_000];
/// The rate from which the fabricated current-thread sweep falls behind: it achieves 75 % of
/// 4000 and the same 3000 msgs/s at 8000, so its knee is at 4000 asked.
pub const SWEEP_KNEE: u64 = 4_000;

/// A run of two rate sweeps over [`SWEEP_RATES`], two trials per point, as `rates = [...]`
/// expands them: configurations `<group>@<rate>` with `group` and `asked_rate` in the manifest.
/// `current-thread` saturates at 3000 msgs/s (its knee is [`SWEEP_KNEE`]); `multi-thread` keeps
/// up with every rate. Latency rises with the rate, steeply past saturation.
pub fn fabricate_sweep(dir: &Path) -> DemoRun {
    let mut planned = Vec::new();
    for (group, runtime, ceiling, base_us) in [("current-thread", Runtime::CurrentThread, 3_000.0, 40.0), ("multi-thread", Runtime::MultiThread, f64::INFINITY, 55.0)] {
        for asked in SWEEP_RATES {
            let achieved = (asked as f64).min(ceiling);
            // Queueing: latency grows as the asked rate nears and passes what the server can do.
            let load = asked as f64 / ceiling.min(20_000.0);
            let median_us = base_us / (1.0 - load.min(0.9)) * if asked as f64 > ceiling { 40.0 } else { 1.0 };
            let name = format!("{group}@{asked}");
            let shape = ConfigShape { name: group_name(group), runtime, median_us, rate: achieved as u64, pause: None, server_cpu_pct: 30.0 + 8.0 * load, server_rss_mib: 8.0 };
            planned.push(Planned { entry: entry(&name, runtime, Some(group), Some(asked as f64)), shape });
        }
    }
    fabricate_planned(dir, "rate-sweep", TRIALS, &planned, |_, _| (Vec::new(), 0))
}

/// The `'static` name of a fabricated group (shapes name their configuration with a literal).
fn group_name(group: &str) -> &'static str {
    match group {
        "current-thread" => "current-thread",
        _ => "multi-thread",
    }
}

// ---------------------------------------------------------------- capacity searches

/// Trials per configuration of the fabricated capacity search.
pub const SEARCH_TRIALS: u32 = 3;
/// The objective of the fabricated search.
pub const SEARCH_SLO: &str = "p99 <= 2 ms";

/// The true capacity of each fabricated configuration in each trial, msgs/s: the search finds
/// the highest probed rate at or below it.
pub const TRUE_CAPACITY: [(&str, [f64; 3]); 2] = [("current-thread", [9_000.0, 10_400.0, 9_700.0]), ("multi-thread", [12_300.0, 13_100.0, 12_800.0])];

/// The search `wsbench run` performs (see `search_capacity` in cli/src/run.rs), against a server
/// whose p99 stays within the objective up to `true_capacity` and which is overloaded (answers
/// at most 110 % of its capacity) from 1.3 × that on. Starts at 2500 msgs/s, doubles until a
/// probe fails, bisects to 10 %.
pub fn simulate_search(true_capacity: f64) -> CapacityResult {
    let slo = wsbench_core::slo::Slo::parse(SEARCH_SLO).unwrap();
    let (precision, max_rate, max_probes) = (0.1, 400_000.0, 12);
    let mut probes = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut converged = false;
    let mut rate: f64 = 2_500.0;
    for k in 1..=max_probes {
        let load = rate / true_capacity;
        let achieved = if load > 1.3 { true_capacity * 1.1 } else { rate };
        // p99 crosses the 2 ms bound exactly at the true capacity.
        let p99 = slo.bound_us * load.powi(3);
        let latency = LatencySummary { count: (achieved * 2.0) as u64, p50: p99 / 8.0, p90: p99 / 3.0, p95: Some(p99 / 2.0), p99, p99_9: p99 * 1.5, p99_99: p99 * 1.8, max: p99 * 2.0, min: 20.0, mean: p99 / 6.0 };
        let overloaded = achieved < 0.95 * rate;
        let passed = !overloaded && slo.holds(&latency);
        let verdict = if overloaded {
            format!("overloaded: only {} msgs/s answered", wsbench_core::units::thousands(achieved))
        } else if passed {
            format!("meets {slo}")
        } else {
            format!("misses {slo}")
        };
        probes.push(CapacityProbe {
            dir: format!("probe-{k:02}"),
            asked_msgs_per_s: rate,
            connections: None,
            achieved_msgs_per_s: achieved,
            latency_us: latency,
            passed,
            verdict,
            load_generator_behind: false,
            warnings: Vec::new(),
        });
        if passed {
            pass = Some(pass.map_or(rate, |p: f64| p.max(rate)));
        } else {
            fail = Some(fail.map_or(rate, |f: f64| f.min(rate)));
        }
        rate = match (pass, fail) {
            (_, None) if rate >= max_rate => break,
            (_, None) => (rate * 2.0).min(max_rate),
            (None, Some(f)) => f / 2.0,
            (Some(p), Some(f)) if (f - p) / p <= precision => {
                converged = true;
                break;
            }
            (Some(p), Some(f)) => (p + f) / 2.0,
        };
    }
    CapacityResult {
        schema_version: SCHEMA_VERSION,
        slo: slo.to_string(),
        precision,
        capacity_msgs_per_s: pass.unwrap_or(0.0),
        first_failing_msgs_per_s: fail,
        limited_by: Some(if fail.is_some() { LimitedBy::Server } else { LimitedBy::SearchLimit }),
        converged,
        over: Default::default(),
        capacity_connections: None,
        first_failing_connections: None,
        probes,
    }
}

/// What a fabricated search run holds, beside the run itself.
pub struct SearchRun {
    pub run: DemoRun,
    /// Per configuration (manifest order), per trial: the search written to `capacity.json`.
    pub searches: Vec<Vec<CapacityResult>>,
}

/// A capacity-search run: [`TRUE_CAPACITY`]'s two configurations × [`SEARCH_TRIALS`] trials,
/// each trial a `capacity.json` of [`simulate_search`] with the probe at capacity's files
/// copied into the trial folder, as `wsbench run` leaves them.
pub fn fabricate_search(dir: &Path) -> SearchRun {
    let shapes = default_shapes();
    let planned: Vec<Planned> = shapes.iter().map(|s| Planned { entry: entry(s.name, s.runtime, None, None), shape: ConfigShape { pause: None, ..s.clone() } }).collect();
    let mut run = fabricate_planned(dir, "capacity", SEARCH_TRIALS, &planned, |_, _| (Vec::new(), 0));
    let mut searches = Vec::new();
    for (c, (name, capacities)) in TRUE_CAPACITY.iter().enumerate() {
        assert_eq!(*name, planned[c].entry.name);
        let mut per_trial = Vec::new();
        for (t, truth) in capacities.iter().enumerate() {
            let search = simulate_search(*truth);
            let tdir = layout::trial_dir(&run.dir, name, t as u32 + 1);
            // The trial folder holds the probe at capacity: its files are measured at that rate.
            let shape = ConfigShape { rate: search.capacity_msgs_per_s as u64, ..planned[c].shape.clone() };
            let mut trial = write_loadgen(&tdir, &shape, (c as u64 + 1) * 1000 + t as u64, Vec::new(), 0);
            set_asked_rate(&tdir, &mut trial, search.capacity_msgs_per_s);
            run.truth[c][t] = trial;
            for p in &search.probes {
                fs::create_dir_all(tdir.join(&p.dir)).unwrap();
            }
            write_capacity(&tdir, &search);
            per_trial.push(search);
        }
        searches.push(per_trial);
    }
    run.manifest.scenario_text = format!("name = \"capacity\"\ntrials = {SEARCH_TRIALS}\n[search]\nslo = \"{SEARCH_SLO}\"\n");
    write_manifest(&run.dir, &run.manifest);
    SearchRun { run, searches }
}

pub fn write_capacity(trial_dir: &Path, c: &CapacityResult) {
    fs::write(trial_dir.join(layout::CAPACITY), serde_json::to_string_pretty(c).unwrap()).unwrap();
}

pub fn write_manifest(dir: &Path, manifest: &RunManifest) {
    fs::write(dir.join(layout::RUN_MANIFEST), serde_json::to_string_pretty(manifest).unwrap()).unwrap();
}

/// A fresh, empty directory under the system temp dir, unique per test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsbench-analysis-{name}-{}", std::process::id()));
    if d.exists() {
        fs::remove_dir_all(&d).unwrap();
    }
    fs::create_dir_all(&d).unwrap();
    d
}

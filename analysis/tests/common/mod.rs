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
            p50_us: s.p50,
            p90_us: s.p90,
            p99_us: s.p99,
            p99_9_us: s.p99_9,
            max_us: s.max,
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
        messages: MessageCounts { sent: received + errors, received, errors, corrupted: 0, lost: 0 },
        connections: ConnectionCounts { target: 10, established: 10, failed: 0 },
        latency_us: LatencySummary::from_histogram_ns(&total),
        service_time_us: LatencySummary::from_histogram_ns(&hist::total(&service)),
        send_lag_us: LatencySummary::from_histogram_ns(&hist::total(&lag)),
        cpu: CpuUse { process_pct: 60.0, busiest_thread_pct: 58.0 },
        warnings,
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
    };
    fs::write(dir.join(layout::SERVER_SUMMARY), serde_json::to_string_pretty(&server).unwrap()).unwrap();
}

/// Fabricates a run of `shapes` × [`TRIALS`] trials in `dir` (created; replaced if it exists).
/// Trial 2 of the second configuration carries two warnings and a few errors.
pub fn fabricate(dir: &Path, shapes: &[ConfigShape]) -> DemoRun {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    let mut truth = Vec::new();
    for (c, shape) in shapes.iter().enumerate() {
        let mut trials = Vec::new();
        for t in 1..=TRIALS {
            let tdir = layout::trial_dir(dir, shape.name, t);
            let seed = (c as u64 + 1) * 1000 + t as u64;
            let (warnings, errors) =
                if c == 1 && t == 2 { (vec![Warning::send_lag_high(1_450.0), Warning::errors_seen(3)], 3) } else { (Vec::new(), 0) };
            trials.push(write_loadgen(&tdir, shape, seed, warnings, errors));
            write_server(&tdir, shape, seed);
        }
        truth.push(trials);
    }
    let manifest = RunManifest {
        schema_version: SCHEMA_VERSION,
        wsbench_version: VERSION.into(),
        scenario: "demo".into(),
        scenario_file: "scenarios/demo.toml".into(),
        scenario_text: "name = \"demo\"\ntrials = 2\n".into(),
        run_id: "20261125-101500".into(),
        started_at: "2026-11-25T10:15:00Z".into(),
        command: vec!["wsbench".into(), "run".into(), "scenarios/demo.toml".into()],
        host: host(),
        trials: TRIALS,
        configs: shapes
            .iter()
            .map(|s| ConfigEntry {
                name: s.name.into(),
                dir: layout::slug(s.name),
                server: serde_json::json!({"kind": "builtin", "runtime": s.runtime.name()}),
                load: serde_json::json!({"connections": 10}),
            })
            .collect(),
        order: (1..=TRIALS).flat_map(|t| shapes.iter().map(move |s| (s.name.to_string(), t))).collect(),
        failures: Vec::new(),
    };
    write_manifest(dir, &manifest);
    DemoRun { dir: dir.to_owned(), manifest, truth }
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

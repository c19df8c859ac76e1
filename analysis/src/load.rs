//! The one input door: reads a run directory (or one trial's files) into memory.
//!
//! Every file the analysis reads goes through this module, so the rules live in one place: the
//! run manifest must be there (without it nothing says which configurations and trials exist),
//! while any file of a trial may be missing or damaged — a failed trial still belongs in the
//! report. Such gaps become [`TrialProblem`]s, never errors. This module only reads; it computes
//! nothing beyond picking the files apart.

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use wsbench_core::hist::{self, LogInterval};
use wsbench_core::layout;
use wsbench_core::result::{CapacityResult, IntervalRow, LoadgenSummary, ProcessSample, RunManifest, ServerDeflate, ServerSummary};
use wsbench_core::SCHEMA_VERSION;

use crate::error::AnalysisError;
use crate::merge;

/// Role of the server process in `processes.csv`.
pub const SERVER_ROLE: &str = "server";

/// A whole run: the manifest and every trial of every configuration it lists.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub manifest: RunManifest,
    /// In the manifest's order.
    pub configs: Vec<ConfigRun>,
}

/// One configuration and its trials.
#[derive(Debug, Clone)]
pub struct ConfigRun {
    pub name: String,
    pub dir: PathBuf,
    /// The server was an external command: it writes no `server.json`, so its absence is no gap.
    pub external_server: bool,
    /// Trials 1..=manifest.trials, whether they ran or not.
    pub trials: Vec<Trial>,
}

/// What was found of one trial.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    pub number: u32,
    pub dir: PathBuf,
    /// The orchestrator's reason, when it recorded this trial as failed.
    pub failure: Option<String>,
    pub summary: Option<LoadgenSummary>,
    pub server: Option<ServerSummary>,
    /// `server.json`'s `deflate` block, when the server ran with `--deflate`.
    pub server_deflate: Option<ServerDeflate>,
    /// `latency.hlog`, one histogram per second; empty when missing.
    pub latency: Vec<LogInterval>,
    /// `intervals.csv`; empty when missing.
    pub intervals: Vec<IntervalRow>,
    /// `processes.csv`, every role; empty when missing.
    pub processes: Vec<ProcessSample>,
    /// `capacity.json`: present only when the trial was a capacity search. The trial's other
    /// files are then those of the probe at capacity (copied from its `probe-NN/` folder).
    pub capacity: Option<CapacityResult>,
    /// Files that were missing or could not be read, and other notes on how the trial was read.
    pub problems: Vec<TrialProblem>,
}

impl Run {
    /// Every trial that has a load-generator summary, with its configuration, in order.
    pub fn trial_summaries(&self) -> impl Iterator<Item = (&ConfigRun, &Trial, &LoadgenSummary)> {
        self.configs.iter().flat_map(|c| c.trials.iter().filter_map(move |t| Some((c, t, t.summary.as_ref()?))))
    }
}

impl Trial {
    /// The `processes.csv` rows of the server process.
    pub fn server_samples(&self) -> impl Iterator<Item = &ProcessSample> {
        self.processes.iter().filter(|s| s.role == SERVER_ROLE)
    }
}

/// A gap in a trial's files.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialProblem {
    /// The file, relative to the run directory.
    pub file: PathBuf,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProblemKind {
    /// The trial directory does not exist: the trial never ran (or ran elsewhere).
    NotRun,
    Missing,
    Unreadable(String),
    /// Not a gap but worth saying: the load-generator shards were merged while reading.
    MergedOnRead {
        shards: usize,
    },
}

impl std::fmt::Display for TrialProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        match &self.kind {
            ProblemKind::NotRun => write!(f, "{file}: no such directory; the trial did not run"),
            ProblemKind::Missing => write!(f, "{file}: missing"),
            ProblemKind::Unreadable(why) => write!(f, "{why}"),
            ProblemKind::MergedOnRead { shards } => {
                write!(f, "{file}: the results of {shards} load-generator processes were not merged; merged them while reading (`wsbench merge` writes them)")
            }
        }
    }
}

/// Reads a run directory: `run.json` and every trial it lists.
pub fn run(dir: &Path) -> Result<Run, AnalysisError> {
    let manifest_path = dir.join(layout::RUN_MANIFEST);
    if !manifest_path.is_file() {
        return Err(AnalysisError::NotARun { dir: dir.to_owned() });
    }
    let manifest: RunManifest = read_json(&manifest_path, "run manifest")?;
    if manifest.schema_version != SCHEMA_VERSION {
        return Err(AnalysisError::SchemaVersion {
            path: manifest_path,
            found: manifest.schema_version,
            expected: SCHEMA_VERSION,
            written_by: manifest.wsbench_version.clone(),
        });
    }
    let configs = manifest
        .configs
        .iter()
        .map(|entry| {
            // `dir` is already a slug; slugging it again is a no-op and keeps the layout's rule in one place.
            let trials = (1..=manifest.trials.max(1))
                .map(|n| {
                    let failure = manifest.failures.iter().find(|(c, t, _)| c == &entry.name && *t == n).map(|(_, _, why)| why.clone());
                    trial(dir, &layout::trial_dir(dir, &entry.dir, n), n, failure, is_external(&entry.server))
                })
                .collect();
            ConfigRun { name: entry.name.clone(), dir: dir.join(&entry.dir), external_server: is_external(&entry.server), trials }
        })
        .collect();
    Ok(Run { dir: dir.to_owned(), manifest, configs })
}

/// What a path given on the command line holds: a whole run, or one configuration of a run.
#[derive(Debug, Clone)]
pub enum Results {
    Run(Box<Run>),
    Config(ConfigRun),
}

impl Results {
    /// The configurations it holds, in manifest order.
    pub fn configs(&self) -> Vec<&ConfigRun> {
        match self {
            Self::Run(r) => r.configs.iter().collect(),
            Self::Config(c) => vec![c],
        }
    }
}

/// Reads `dir` as a run directory (it holds `run.json`) or as one configuration's directory (it
/// holds `trial-<n>/` folders), whichever it is.
pub fn results(dir: &Path) -> Result<Results, AnalysisError> {
    if dir.join(layout::RUN_MANIFEST).is_file() {
        return run(dir).map(|r| Results::Run(Box::new(r)));
    }
    config_dir(dir).map(Results::Config)
}

/// Reads one configuration's directory: `results/<scenario>/<run-id>/<config>`, or any folder of
/// `trial-<n>/` folders copied out of a run. When the run's manifest is beside it, the
/// configuration is read through it (so the orchestrator's failed trials are known); otherwise
/// every `trial-<n>` folder found is a trial and the folder's name is the configuration's.
pub fn config_dir(dir: &Path) -> Result<ConfigRun, AnalysisError> {
    let numbers = trial_numbers(dir);
    if numbers.is_empty() {
        return Err(AnalysisError::NotAResult { dir: dir.to_owned() });
    }
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(parent) = dir.parent().filter(|p| p.join(layout::RUN_MANIFEST).is_file()) {
        if let Ok(r) = run(parent) {
            if let Some(c) = r.configs.into_iter().find(|c| c.dir.file_name() == dir.file_name()) {
                return Ok(c);
            }
        }
    }
    let base = dir.parent().unwrap_or(dir);
    let mut trials: Vec<Trial> = numbers.into_iter().map(|n| trial(base, &dir.join(format!("trial-{n}")), n, None, true)).collect();
    // Without a manifest nothing says whether the server was external; it was not when any trial
    // has a server.json, and then a trial without one has a gap.
    let external_server = !trials.iter().any(|t| t.server.is_some());
    if !external_server {
        for t in trials.iter_mut().filter(|t| t.server.is_none() && t.dir.is_dir()) {
            let file = t.dir.strip_prefix(base).unwrap_or(&t.dir).join(layout::SERVER_SUMMARY);
            t.problems.push(TrialProblem { file, kind: ProblemKind::Missing });
        }
    }
    Ok(ConfigRun { name: folder, dir: dir.to_owned(), external_server, trials })
}

/// The `n` of every `trial-<n>` folder in `dir`, ascending.
fn trial_numbers(dir: &Path) -> Vec<u32> {
    let mut numbers: Vec<u32> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("trial-")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers
}

/// `ServerSpec` is written into the manifest with `"kind": "command"` for external servers.
fn is_external(server: &serde_json::Value) -> bool {
    server.get("kind").and_then(|k| k.as_str()) == Some("command")
}

/// Reads what exists of one trial; gaps become problems.
fn trial(run_dir: &Path, dir: &Path, number: u32, failure: Option<String>, external_server: bool) -> Trial {
    let mut t = Trial { number, dir: dir.to_owned(), failure, ..Default::default() };
    let mut r = TrialReader { run_dir, dir, problems: Vec::new() };
    if !dir.is_dir() {
        t.problems.push(TrialProblem { file: r.rel(dir), kind: ProblemKind::NotRun });
        return t;
    }
    t.capacity = r.read(layout::CAPACITY, false, read_capacity);
    // A search in which no probe met the objective has no probe at capacity to copy into the
    // trial folder: its measurement files are absent by design, not missing.
    let nothing_passed = t.capacity.as_ref().is_some_and(|c| !c.probes.iter().any(|p| p.passed));
    if nothing_passed {
        t.problems = r.problems;
        return t;
    }
    let shards = shard_dirs(dir);
    if !dir.join(layout::SUMMARY).is_file() && !shards.is_empty() {
        // Several load generators whose merge did not happen (the orchestrator was interrupted):
        // merging is lossless, so do it here rather than show nothing.
        match merge::merge_shards(&shards) {
            Ok(m) => {
                r.problems.push(TrialProblem { file: r.rel(dir), kind: ProblemKind::MergedOnRead { shards: shards.len() } });
                t.summary = Some(m.summary);
                t.latency = m.latency;
                t.intervals = m.intervals;
            }
            Err(e) => r.unreadable(dir, &e),
        }
    } else {
        t.summary = r.read(layout::SUMMARY, true, read_summary);
        t.latency = r.read(layout::LATENCY_LOG, true, read_log).unwrap_or_default();
        t.intervals = r.read(layout::INTERVALS_CSV, true, |p| read_csv(p, "intervals.csv")).unwrap_or_default();
    }
    t.server = r.read(layout::SERVER_SUMMARY, !external_server, |p| read_json(p, "server summary"));
    if t.server.is_some() {
        // A block beside core's schema, read on its own; unreadable, it is merely absent.
        #[derive(serde::Deserialize)]
        struct Extras {
            deflate: Option<ServerDeflate>,
        }
        t.server_deflate = read_json::<Extras>(&dir.join(layout::SERVER_SUMMARY), "server summary").ok().and_then(|e| e.deflate);
    }
    t.processes = r.read(layout::PROCESSES_CSV, true, |p| read_csv(p, "processes.csv")).unwrap_or_default();
    t.problems = r.problems;
    t
}

/// Reads the files of one trial directory, collecting gaps instead of failing.
struct TrialReader<'a> {
    run_dir: &'a Path,
    dir: &'a Path,
    problems: Vec<TrialProblem>,
}

impl TrialReader<'_> {
    /// Paths in the report are relative to the run directory: shorter, and the same on any machine.
    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(self.run_dir).unwrap_or(p).to_owned()
    }

    /// Reads `name` with `read`. A missing file is a problem only when `expected` (an external
    /// server writes no `server.json`); a file that exists but cannot be read always is one.
    fn read<T>(&mut self, name: &str, expected: bool, read: impl FnOnce(&Path) -> Result<T, AnalysisError>) -> Option<T> {
        let path = self.dir.join(name);
        if !path.is_file() {
            if expected {
                self.problems.push(TrialProblem { file: self.rel(&path), kind: ProblemKind::Missing });
            }
            return None;
        }
        read(&path).map_err(|e| self.unreadable(&path, &e)).ok()
    }

    fn unreadable(&mut self, path: &Path, e: &AnalysisError) {
        let prefix = format!("{}/", self.run_dir.display());
        self.problems.push(TrialProblem { file: self.rel(path), kind: ProblemKind::Unreadable(e.to_string().replace(&prefix, "")) });
    }
}

/// `loadgen-0`, `loadgen-1`, ... of a trial, in index order, as long as they hold a summary.
pub fn shard_dirs(trial_dir: &Path) -> Vec<PathBuf> {
    (0..).map(|i| layout::shard_dir(trial_dir, i)).take_while(|d| d.join(layout::SUMMARY).is_file()).collect()
}

/// Reads a `summary.json`, refusing other schema versions with a clear message.
pub fn read_summary(path: &Path) -> Result<LoadgenSummary, AnalysisError> {
    let s: LoadgenSummary = read_json(path, "load-generator summary")?;
    if s.schema_version != SCHEMA_VERSION {
        return Err(AnalysisError::SchemaVersion {
            path: path.to_owned(),
            found: s.schema_version,
            expected: SCHEMA_VERSION,
            written_by: s.wsbench_version,
        });
    }
    Ok(s)
}

/// Reads a `capacity.json`, refusing other schema versions with a clear message.
pub fn read_capacity(path: &Path) -> Result<CapacityResult, AnalysisError> {
    let c: CapacityResult = read_json(path, "capacity search result")?;
    if c.schema_version != SCHEMA_VERSION {
        // The file names no wsbench version; the run manifest beside it does.
        return Err(AnalysisError::SchemaVersion {
            path: path.to_owned(),
            found: c.schema_version,
            expected: SCHEMA_VERSION,
            written_by: "see run.json".into(),
        });
    }
    Ok(c)
}

/// Reads any JSON result file; `what` names it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, AnalysisError> {
    let text = fs::read_to_string(path).map_err(|e| AnalysisError::read(path, e))?;
    serde_json::from_str(&text).map_err(|e| AnalysisError::parse(path, what, e))
}

/// Reads a CSV file with a header row into rows of `T`.
pub fn read_csv<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Vec<T>, AnalysisError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => AnalysisError::read(path, io),
        other => AnalysisError::parse(path, what, format!("{other:?}")),
    })?;
    reader.deserialize().collect::<Result<Vec<T>, _>>().map_err(|e| AnalysisError::parse(path, what, e))
}

/// Reads an HdrHistogram interval log.
pub fn read_log(path: &Path) -> Result<Vec<LogInterval>, AnalysisError> {
    Ok(hist::read_interval_log(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_servers_are_recognised_from_the_manifest() {
        assert!(is_external(&serde_json::json!({"kind": "command", "command": ["node"]})));
        assert!(!is_external(&serde_json::json!({"kind": "builtin", "runtime": "multi-thread"})));
        assert!(!is_external(&serde_json::Value::Null));
    }

    #[test]
    fn a_folder_of_trials_is_a_configuration() {
        let dir = std::env::temp_dir().join(format!("wsbench-load-config-{}", std::process::id()));
        let config = dir.join("my-config");
        for n in [2, 10, 1] {
            fs::create_dir_all(config.join(format!("trial-{n}"))).unwrap();
        }
        fs::create_dir_all(config.join("trial-x")).unwrap();
        let c = config_dir(&config).unwrap();
        assert_eq!(c.name, "my-config");
        assert_eq!(c.trials.iter().map(|t| t.number).collect::<Vec<_>>(), [1, 2, 10]);
        assert!(c.trials[0].problems.iter().any(|p| p.file == Path::new("my-config/trial-1/summary.json")), "{:?}", c.trials[0].problems);
        assert!(matches!(results(&dir), Err(AnalysisError::NotAResult { .. })));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_damaged_capacity_result_is_a_problem_of_its_trial() {
        let dir = std::env::temp_dir().join(format!("wsbench-load-capacity-{}", std::process::id()));
        let trial_dir = dir.join("searched").join("trial-1");
        fs::create_dir_all(&trial_dir).unwrap();
        fs::write(trial_dir.join(layout::CAPACITY), "{\"schema_version\": 1, \"slo\": ").unwrap();
        let c = config_dir(&dir.join("searched")).unwrap();
        let t = &c.trials[0];
        assert!(t.capacity.is_none());
        let unreadable = t.problems.iter().find(|p| p.file == Path::new("searched/trial-1/capacity.json")).expect("named");
        assert!(matches!(&unreadable.kind, ProblemKind::Unreadable(why) if why.contains("capacity search result")), "{unreadable:?}");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_directory_without_manifest_is_not_a_run() {
        let e = run(Path::new("/nonexistent/wsbench")).unwrap_err();
        assert!(matches!(e, AnalysisError::NotARun { .. }));
        assert!(e.to_string().contains("run.json"), "{e}");
    }
}

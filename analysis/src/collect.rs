//! Gathering the shards of one sharded load (`wsbench loadgen --shard i/n`, e.g. the pods of a
//! Kubernetes Indexed Job) into one run folder that `report`, `compare` and `export` read.
//!
//! Nothing is merged while a shard is missing: a sum of some shards would look like a
//! complete, lighter load. Missing shards are named with why (no folder, or a folder without
//! `summary.json`: the shard has not finished or died). Merging itself is [`crate::merge`].

use std::fs;
use std::path::{Path, PathBuf};

use wsbench_core::layout;
use wsbench_core::result::{ConfigEntry, HostInfo, LoadgenSummary, RunManifest};
use wsbench_core::SCHEMA_VERSION;

use crate::error::AnalysisError;
use crate::load;
use crate::merge::{self, AbsentShard, ShardEntry};

/// How the collected run is described in its `run.json`.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Scenario name (the run's first folder level in `results/`).
    pub scenario: String,
    /// The scenario file and its text, when the user gave it, so the run can be repeated.
    pub scenario_file: Option<(PathBuf, String)>,
    /// The configuration name: the folder the merged trial lands in.
    pub config: String,
    /// The command line, recorded in `run.json`.
    pub command: Vec<String>,
    /// Merge shards whose results differ in what they measured (see [`merge::merge_loadgen`]).
    pub force: bool,
}

/// Where the collected run went.
#[derive(Debug, Clone)]
pub struct Collected {
    pub run_dir: PathBuf,
    pub trial_dir: PathBuf,
    pub shards: usize,
    pub summary: LoadgenSummary,
}

/// The shard directories under `dirs`: each given directory is a shard itself (it holds
/// `summary.json`, or is named `shard-<i>`), or holds `shard-<i>/` folders. Returns those with
/// results, and the shard indices of folders without (`summary.json` missing).
pub fn find_shards(dirs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<AbsentShard>), AnalysisError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    let mut consider = |d: &Path, index: Option<u32>| {
        if d.join(layout::SUMMARY).is_file() {
            present.push(d.to_owned());
        } else if let Some(i) = index {
            absent.push(AbsentShard { index: i, why: format!("{} has no {}: the shard has not finished, or stopped before writing it", d.display(), layout::SUMMARY) });
        }
    };
    for d in dirs {
        if !d.is_dir() {
            return Err(AnalysisError::NotAResult { dir: d.clone() });
        }
        if d.join(layout::SUMMARY).is_file() || shard_index(d).is_some() {
            consider(d, shard_index(d));
            continue;
        }
        let mut children: Vec<(u32, PathBuf)> = fs::read_dir(d)
            .map_err(|e| AnalysisError::read(d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter_map(|p| shard_index(&p).map(|i| (i, p)))
            .collect();
        if children.is_empty() {
            return Err(AnalysisError::NotAResult { dir: d.clone() });
        }
        children.sort();
        for (i, p) in children {
            consider(&p, Some(i));
        }
    }
    Ok((present, absent))
}

/// `3` for a folder named `shard-3`.
fn shard_index(dir: &Path) -> Option<u32> {
    dir.file_name()?.to_str()?.strip_prefix("shard-")?.parse().ok()
}

/// Checks that every shard of the load is in `dirs` and merges them losslessly into
/// `run_dir/<config>/trial-1/`, with a `run.json` that makes `run_dir` an ordinary run.
pub fn collect(dirs: &[PathBuf], run_dir: &Path, opts: &CollectOptions) -> Result<Collected, AnalysisError> {
    let (present, absent) = find_shards(dirs)?;
    let reports = present
        .iter()
        .map(|d| load::read_summary(&d.join(layout::SUMMARY)).map(|s| ShardEntry::of(d, &s)))
        .collect::<Result<Vec<_>, _>>()?;
    merge::check_shard_set(&reports, &absent)?;
    if reports.is_empty() {
        return Err(AnalysisError::NoShards);
    }
    if reports.iter().all(|e| e.shard.is_none()) {
        return Err(AnalysisError::ShardConflict {
            detail: vec![format!("none of {} is a shard (written by `wsbench loadgen --shard`); use `wsbench merge` for the processes of one trial", present.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))],
        });
    }
    for (name, what) in [(&opts.config, "configuration"), (&opts.scenario, "scenario")] {
        layout::check_name(name).map_err(|e| AnalysisError::ShardConflict { detail: vec![format!("the {what} name `{name}` {e}")] })?;
    }
    // Collecting twice into one folder would replace a run's results: refuse rather than lose them.
    if run_dir.join(layout::RUN_MANIFEST).exists() {
        return Err(AnalysisError::ShardConflict { detail: vec![format!("{} already holds a run ({}); collect into a new folder", run_dir.display(), layout::RUN_MANIFEST)] });
    }
    let trial_dir = layout::trial_dir(run_dir, &opts.config, 1);
    let summary = merge::merge_loadgen(&present, &trial_dir, opts.force)?;
    let manifest = RunManifest {
        schema_version: SCHEMA_VERSION,
        wsbench_version: wsbench_core::VERSION.into(),
        scenario: opts.scenario.clone(),
        scenario_file: opts.scenario_file.as_ref().map(|(p, _)| p.display().to_string()).unwrap_or_default(),
        scenario_text: opts.scenario_file.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
        run_id: run_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        started_at: summary.started_at.clone(),
        command: opts.command.clone(),
        host: HostInfo::current(),
        trials: 1,
        configs: vec![ConfigEntry {
            name: opts.config.clone(),
            dir: layout::slug(&opts.config),
            group: None,
            asked_rate: summary.config.rate,
            // The shards' target is a server wsbench did not start: no server.json to expect.
            server: serde_json::json!({ "kind": "command", "url": summary.config.url }),
            load: serde_json::to_value(&summary.config).expect("plans serialize"),
        }],
        order: vec![(opts.config.clone(), 1)],
        failures: if summary.passed() { Vec::new() } else { vec![(opts.config.clone(), 1, failure_of(&summary))] },
    };
    let path = run_dir.join(layout::RUN_MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("manifests serialize");
    fs::write(&path, json + "\n").map_err(|e| AnalysisError::write(&path, e))?;
    Ok(Collected { run_dir: run_dir.to_owned(), trial_dir, shards: present.len(), summary })
}

/// Why the merged trial failed, as `run.json` records a failed trial.
fn failure_of(s: &LoadgenSummary) -> String {
    s.reason.iter().cloned().chain(s.failed_checks.iter().cloned()).collect::<Vec<_>>().join("; ")
}

//! The one error type of the analysis crate.
//!
//! Every variant names the file it is about and, where the user can do something, what to do.
//! Only problems that stop a whole command are errors: a trial with missing or damaged files is
//! reported inside the report (see [`crate::load::TrialProblem`]), never turned into an error.

use std::path::PathBuf;

use wsbench_core::hist::LogError;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(
        "{}: no {} here; pass a run directory written by `wsbench run` (results/<scenario>/<run-id>)",
        dir.display(),
        wsbench_core::layout::RUN_MANIFEST
    )]
    NotARun { dir: PathBuf },

    #[error(
        "{}: neither a run directory (with {}) nor a configuration directory (with trial-<n>/ folders); pass results/<scenario>/<run-id> or one of its configuration folders",
        dir.display(),
        wsbench_core::layout::RUN_MANIFEST
    )]
    NotAResult { dir: PathBuf },

    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{}: cannot write: {source}; check that the directory is writable and the disk is not full", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    #[error("{}: not a valid {what}: {message}; the file is damaged or was not written by wsbench", path.display())]
    Parse { path: PathBuf, what: &'static str, message: String },

    #[error(
        "{}: schema version {found}, but this wsbench reads version {expected}; use the wsbench version that wrote it ({written_by})",
        path.display()
    )]
    SchemaVersion { path: PathBuf, found: u32, expected: u32, written_by: String },

    /// Reading or writing an HdrHistogram interval log failed; `detail` names the file.
    #[error("{detail}")]
    Log { detail: String },

    #[error("{}: cannot draw the figure: {message}", path.display())]
    Plot { path: PathBuf, message: String },

    #[error("the bundled font could not be loaded; this build of wsbench is broken")]
    Font,

    #[error("nothing to merge: give the directories of at least one load-generator process (each holding summary.json)")]
    NoShards,

    #[error(
        "{}: missing; every load-generator directory needs summary.json, latency.hlog, service_time.hlog, send_lag.hlog and intervals.csv (did that process stop before writing its results?)",
        path.display()
    )]
    MissingShardFile { path: PathBuf },

    #[error(
        "these results did not measure the same thing, so their sum would describe neither; differing: {}. Merge only the load-generator processes of one trial, or pass --force to merge anyway (the merged summary lists every differing value under config.differing)",
        differing.join("; ")
    )]
    Mismatch { differing: Vec<String> },

    /// Shards of one load are missing: nothing is merged until every one is there.
    #[error(
        "{count} shards make up this load, but {} missing: {}. Nothing was merged; collect again once every shard has finished, or rerun the missing ones",
        if missing.len() == 1 { "this one is" } else { "these are" },
        missing.join("; ")
    )]
    MissingShards { count: u32, missing: Vec<String> },

    /// The directories are not the shards of one load (different shard counts or totals,
    /// one index twice, shards mixed with whole loads).
    #[error("these are not the shards of one load: {}", detail.join("; "))]
    ShardConflict { detail: Vec<String> },
}

impl From<LogError> for AnalysisError {
    fn from(e: LogError) -> Self {
        let detail = match &e {
            LogError::Io { .. } => e.to_string(),
            LogError::Corrupt { .. } => format!("{e}; the HdrHistogram interval log is damaged or truncated"),
        };
        Self::Log { detail }
    }
}

impl AnalysisError {
    /// True when the error is the user's input (a wrong directory, files that do not belong
    /// together), not a failure to write.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Write { .. } | Self::Plot { .. } | Self::Font | Self::MissingShards { .. })
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read { path: path.into(), source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Write { path: path.into(), source }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, what: &'static str, message: impl ToString) -> Self {
        Self::Parse { path: path.into(), what, message: message.to_string() }
    }
}

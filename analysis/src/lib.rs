//! wsbench-analysis: turns recorded wsbench runs into figures, reports, comparisons and merged
//! results.
//!
//! - [`report()`] reads a run directory and writes `report/`: the figures (PNG and SVG),
//!   `report.md` with medians over trials, warnings and failed trials, and a self-contained
//!   `report.html` with every figure inline.
//! - [`compare()`] sets two runs or configurations side by side, metric by metric, with a
//!   bootstrap confidence interval of every ratio and a verdict; `--fail-if` thresholds turn it
//!   into an exit code for CI.
//! - [`export`] writes comparisons (terminal, Markdown, JSON) and a run's trials (CSV).
//! - [`merge_loadgen`] merges the files of several load-generator processes of one trial,
//!   losslessly (histograms are added, percentiles recomputed, never averaged);
//!   [`collect::collect`] does so for the shards of one load (`--shard i/n`) once every one is
//!   there, into a run folder the other commands read.
//!
//! Inside, reading is [`load`] (the only module that reads result files), numbers over trials are
//! [`stats`] (with the bootstrap in [`stats::bootstrap`]), the metrics a comparison knows are
//! [`metric`], figure data is [`series`], drawing is [`plot`], and report and comparison text is
//! built once as a [`doc::Document`] and rendered per format.
//! This crate depends on `wsbench-core` only; it never talks to the server or load generator.

pub mod collect;
pub mod compare;
pub mod compression;
pub mod doc;
pub mod error;
pub mod export;
pub mod fanout;
pub mod format;
pub mod load;
pub mod merge;
pub mod metric;
pub mod plot;
pub mod report;
pub mod series;
pub mod stats;

pub use compare::{compare, Comparison, CompareError, Selection, Threshold};
pub use error::AnalysisError;
pub use merge::merge_loadgen;
pub use plot::FigureFiles;
pub use report::{report, ReportPaths};

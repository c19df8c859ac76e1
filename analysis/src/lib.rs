//! wsbench-analysis: turns recorded wsbench runs into figures, reports and merged results.
//!
//! - [`report()`] reads a run directory and writes `report/`: four figures (PNG and SVG) and
//!   `report.md` with medians over trials, warnings and failed trials.
//! - [`merge_loadgen`] merges the files of several load-generator processes of one trial,
//!   losslessly (histograms are added, percentiles recomputed, never averaged).
//!
//! Inside, reading is [`load`] (the only module that reads result files), numbers over trials are
//! [`stats`], figure data is [`series`], drawing is [`plot`] and writing Markdown is [`mod@report`].
//! This crate depends on `wsbench-core` only; it never talks to the server or load generator.

pub mod error;
pub mod format;
pub mod load;
pub mod merge;
pub mod plot;
pub mod report;
pub mod series;
pub mod stats;

pub use error::AnalysisError;
pub use merge::merge_loadgen;
pub use plot::FigureFiles;
pub use report::{report, ReportPaths};

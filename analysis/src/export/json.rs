//! The comparison as JSON (`wsbench compare --format json`), schema version
//! [`crate::compare::SCHEMA_VERSION`].
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "wsbench_version": "0.1.0",
//!   "base": "results/quick/base",          // paths as given; equal when comparing inside a run
//!   "candidate": "results/quick/head",
//!   "baseline": null,                       // the --baseline configuration, or null
//!   "confidence": 0.95, "resamples": 10000, "seed": 6292445969799923745,
//!   "failed": false,                        // a --fail-if threshold was breached (exit code 1)
//!   "pairs": [{
//!     "base":      {"name": "no-pause", "dir": "...", "trials_used": 5, "trials_total": 5},
//!     "candidate": {"name": "no-pause", "dir": "...", "trials_used": 5, "trials_total": 5},
//!     "metrics": [{
//!       "metric": "p99", "label": "p99 latency", "unit": "us", "better": "lower",
//!       "base":      {"median": 812.0, "values": [790.0, 812.0, 830.5, 801.0, 845.0]},
//!       "candidate": {"median": 850.0, "values": [845.0, 850.0, 861.0, 839.0, 870.0]},
//!       "ratio": 1.0468,                    // candidate median / base median
//!       "ci": {"low": 1.018, "high": 1.09}, // null with fewer than 5 trials on a side
//!       "candidate_ci": {"low": 839.0, "high": 870.0}, // the candidate's median, in the unit
//!       "verdict": "worse"                  // better | worse | no_significant_change | inconclusive
//!     }],
//!     "notes": ["..."]                      // metrics measured on one side only, trials left out
//!   }],
//!   "unmatched": ["..."],                   // configurations not compared, and why
//!   "thresholds": [{
//!     "spec": "p99 > +10%", "metric": "p99", "direction": "above", "kind": "change", "limit": 1.1, "breached": false,
//!     "outcomes": [{"base": "no-pause", "candidate": "no-pause", "status": "held"}]  // breached | held | inconclusive
//!   }]
//! }
//! ```
//!
//! Values are in the metric's `unit` (`us` for latencies, `msgs/s`, `count`, `% of one core`,
//! `bytes`, `per message`). A ratio or bound that is infinite (the base median is 0 and the
//! candidate's is not) is written as `null`, since JSON has no infinity. Fields are only ever
//! added within a schema version; a removal or a change of meaning bumps it.

use std::io;

use serde::Serialize;

use super::Exporter;
use crate::compare::{self, Comparison, ConfigSide, Direction, GateStatus};

pub struct Json;

impl Exporter<Comparison> for Json {
    fn export(&self, c: &Comparison, out: &mut dyn io::Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, &document(c)).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }
}

#[derive(Serialize)]
struct Doc<'a> {
    schema_version: u32,
    wsbench_version: &'static str,
    base: String,
    candidate: String,
    baseline: Option<&'a str>,
    confidence: f64,
    resamples: usize,
    seed: u64,
    failed: bool,
    pairs: Vec<Pair<'a>>,
    unmatched: &'a [String],
    thresholds: Vec<Threshold<'a>>,
}

#[derive(Serialize)]
struct Side<'a> {
    name: &'a str,
    dir: String,
    trials_used: usize,
    trials_total: usize,
}

#[derive(Serialize)]
struct Pair<'a> {
    base: Side<'a>,
    candidate: Side<'a>,
    metrics: Vec<Metric<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct Values<'a> {
    median: f64,
    values: &'a [f64],
}

#[derive(Serialize)]
struct Interval {
    low: f64,
    high: f64,
}

#[derive(Serialize)]
struct Metric<'a> {
    metric: &'static str,
    label: &'static str,
    unit: &'static str,
    better: &'static str,
    base: Values<'a>,
    candidate: Values<'a>,
    ratio: f64,
    ci: Option<Interval>,
    /// The candidate's median interval in the metric's unit (absolute thresholds).
    candidate_ci: Option<Interval>,
    verdict: &'static str,
}

#[derive(Serialize)]
struct Threshold<'a> {
    spec: &'a str,
    metric: &'static str,
    direction: &'static str,
    /// `change` (limit is a ratio, 1.1 for +10 %) or `absolute` (limit in the metric's unit).
    kind: &'static str,
    limit: f64,
    breached: bool,
    outcomes: Vec<Outcome<'a>>,
}

#[derive(Serialize)]
struct Outcome<'a> {
    base: &'a str,
    candidate: &'a str,
    status: &'static str,
}

fn side(s: &ConfigSide) -> Side<'_> {
    Side { name: &s.name, dir: s.dir.display().to_string(), trials_used: s.trials_used, trials_total: s.trials_total }
}

fn document(c: &Comparison) -> Doc<'_> {
    Doc {
        schema_version: compare::SCHEMA_VERSION,
        wsbench_version: wsbench_core::VERSION,
        base: c.base.display().to_string(),
        candidate: c.candidate.display().to_string(),
        baseline: c.baseline.as_deref(),
        confidence: c.settings.confidence,
        resamples: c.settings.resamples,
        seed: c.settings.seed,
        failed: c.failed(),
        pairs: c
            .pairs
            .iter()
            .map(|p| Pair {
                base: side(&p.base),
                candidate: side(&p.candidate),
                metrics: p
                    .metrics
                    .iter()
                    .map(|m| Metric {
                        metric: m.metric.key,
                        label: m.metric.label,
                        unit: m.metric.unit.name(),
                        better: m.metric.better.name(),
                        base: Values { median: m.base_median, values: &m.base },
                        candidate: Values { median: m.candidate_median, values: &m.candidate },
                        ratio: m.ratio,
                        ci: m.ci.map(|ci| Interval { low: ci.low, high: ci.high }),
                        candidate_ci: m.candidate_ci.map(|ci| Interval { low: ci.low, high: ci.high }),
                        verdict: m.verdict.key(),
                    })
                    .collect(),
                notes: &p.notes,
            })
            .collect(),
        unmatched: &c.unmatched,
        thresholds: c
            .gates
            .iter()
            .map(|g| Threshold {
                spec: &g.threshold.spec,
                metric: g.threshold.metric.key,
                direction: match g.threshold.direction {
                    Direction::Above => "above",
                    Direction::Below => "below",
                },
                kind: if g.threshold.is_absolute() { "absolute" } else { "change" },
                limit: g.threshold.limit(),
                breached: g.breached(),
                outcomes: g
                    .outcomes
                    .iter()
                    .map(|o| Outcome {
                        base: &c.pairs[o.pair].base.name,
                        candidate: &c.pairs[o.pair].candidate.name,
                        status: match o.status {
                            GateStatus::Breached => "breached",
                            GateStatus::Held => "held",
                            GateStatus::Inconclusive => "inconclusive",
                        },
                    })
                    .collect(),
            })
            .collect(),
    }
}

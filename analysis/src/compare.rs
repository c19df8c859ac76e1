//! `wsbench compare`: how a candidate's trials differ from a base's, metric by metric, with a
//! confidence interval, a verdict, and the exit code a CI job acts on.
//!
//! For every metric of [`METRICS`] that both sides measured: the median over each side's usable
//! trials, the ratio candidate / base, and the 95 % bootstrap interval of that ratio
//! ([`crate::stats::bootstrap`]). The verdict is *better* or *worse* only when the interval
//! excludes 1 (no change), in the direction the metric improves. With fewer than
//! [`MIN_TRIALS`] trials on a side a percentile bootstrap cannot carry a 95 % interval (with two
//! trials it can only combine the two values), so no interval is given and the verdict is
//! *inconclusive*: too few trials for a confident verdict.
//!
//! `--fail-if` thresholds ([`Threshold`]) gate on the same intervals: `p99 > +10%` is breached
//! only when the *whole* interval lies above 1.10, i.e. when the candidate is significantly more
//! than 10 % slower; with too few trials it is not judged and does not fail. A difference that
//! may be noise never fails a job, so comparing a build with itself (A/A) does not fail, however
//! noisy the machine; the price is that a real regression near the threshold needs enough trials
//! to be caught. Absolute thresholds (`p99 > 5ms`, `throughput < 50000`) hold the candidate's own
//! median against a limit: with enough trials its whole interval must lie past the limit, with
//! fewer every trial must (see [`Threshold`]).
//!
//! Reading goes through [`crate::load`]; presenting is [`crate::export`]. Exit codes: 0 all
//! thresholds held, 1 one was breached ([`Comparison::exit_code`]), 2 bad input
//! ([`CompareError`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::AnalysisError;
use crate::load::{self, ConfigRun, Results};
use crate::metric::{self, Better, Metric, Unit, METRICS};
use crate::stats::bootstrap::{self, ratio};
use crate::stats::usable;

pub use crate::stats::bootstrap::{Interval, Settings};

/// Version of the JSON document `--format json` writes (see [`crate::export::json`]).
/// 2: verdict `inconclusive` (was `not_enough_trials`), threshold status `inconclusive` (was
/// `unchecked`), absolute thresholds.
pub const SCHEMA_VERSION: u32 = 2;

/// Fewer trials than this on a side give no interval and no verdict: the 2.5 % and 97.5 %
/// quantiles of a bootstrap over fewer values are just the extreme values recombined.
pub const MIN_TRIALS: usize = 5;

/// What a comparison with too few trials says, on stderr and beside the table.
pub fn too_few_trials(n: usize) -> String {
    format!("too few trials for a confident verdict (n = {n}; at least {MIN_TRIALS} recommended)")
}

/// Every threshold held (or none was given).
pub const EXIT_OK: u8 = 0;
/// A threshold was breached: the candidate is significantly past it.
pub const EXIT_BREACHED: u8 = 1;
/// The comparison could not be made: bad arguments or unreadable results.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Why a comparison could not be made. Every one is the user's to fix, so every one maps to
/// [`EXIT_BAD_INPUT`] and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Read(#[from] AnalysisError),

    #[error("--fail-if '{spec}': {why}")]
    BadThreshold { spec: String, why: String },

    #[error("{}: no configuration named {name:?}; it has: {}", path.display(), available.join(", "))]
    NoSuchConfig { path: PathBuf, name: String, available: Vec<String> },

    #[error(
        "no configuration names in common ({} has {}; {} has {}); pick one with --config NAME, or compare configuration directories",
        base.display(), base_names.join(", "), candidate.display(), candidate_names.join(", ")
    )]
    NoCommonConfigs { base: PathBuf, base_names: Vec<String>, candidate: PathBuf, candidate_names: Vec<String> },

    #[error("{}: --baseline needs a run directory (with run.json), not a single configuration", path.display())]
    BaselineNeedsRun { path: PathBuf },

    #[error("{}: the run has no configuration besides the baseline {name:?}; nothing to compare it with", path.display())]
    NothingToCompare { path: PathBuf, name: String },

    #[error("--fail-if '{spec}': {what} has no {metric} values, so the threshold cannot be checked; remove it or measure {metric}")]
    NotMeasured { spec: String, metric: &'static str, what: String },
}

impl CompareError {
    pub fn exit_code(&self) -> u8 {
        EXIT_BAD_INPUT
    }
}

// ---------------------------------------------------------------- thresholds

/// Which side of its limit a threshold fails on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `>`: fails when the ratio is significantly above the limit.
    Above,
    /// `<`: fails when the ratio is significantly below the limit.
    Below,
}

/// What a threshold's number is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// `+10%`: a change of the candidate against the base, in percent.
    Change { percent: f64 },
    /// `5ms`, `50000`: a value of the candidate itself, in the metric's unit (µs for latencies).
    Absolute { value: f64 },
}

/// One `--fail-if` condition: `p99 > +10%`, `throughput < -5%` (changes against the base), or
/// `p99 > 5ms`, `throughput < 50000` (limits on the candidate's own value, as SLOs are stated).
///
/// A change is breached when the whole interval of candidate / base lies past `1 ± N/100`. An
/// absolute limit is breached, with at least [`MIN_TRIALS`] candidate trials, when the whole
/// interval of the candidate's median lies past it; with fewer trials there is no interval, and
/// it is breached only when *every* trial is past the limit (what was measured, with no claim
/// beyond it), inconclusive when the trials disagree, and held when none is past it.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As the user wrote it.
    pub spec: String,
    pub metric: &'static Metric,
    pub direction: Direction,
    pub limit: Limit,
}

impl Threshold {
    /// The number the interval is held against: the ratio 1.10 for `+10%`, 0.95 for `-5%`; the
    /// value in the metric's unit for an absolute limit.
    pub fn limit(&self) -> f64 {
        match self.limit {
            Limit::Change { percent } => 1.0 + percent / 100.0,
            Limit::Absolute { value } => value,
        }
    }

    pub fn is_absolute(&self) -> bool {
        matches!(self.limit, Limit::Absolute { .. })
    }

    /// Breached only when the whole interval lies past the limit.
    pub fn breached_by(&self, ci: &Interval) -> bool {
        match self.direction {
            Direction::Above => ci.above(self.limit()),
            Direction::Below => ci.below(self.limit()),
        }
    }

    /// True when one value lies past the limit (absolute thresholds).
    fn past(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v > self.limit(),
            Direction::Below => v < self.limit(),
        }
    }

    /// The limit for people: `+10.0 %` or `5.00 ms`.
    pub fn limit_text(&self) -> String {
        match self.limit {
            Limit::Change { .. } => change(self.limit()),
            Limit::Absolute { value } => self.metric.unit.format(value),
        }
    }
}

impl FromStr for Threshold {
    type Err = CompareError;

    /// `METRIC > +N%` / `METRIC < -N%` (a change), or `METRIC > VALUE` / `METRIC < VALUE` (an
    /// absolute limit: a duration such as `5ms` for latencies, a size such as `512MiB` for
    /// memory, a plain number in the metric's unit otherwise). Spaces and the sign of N optional.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| CompareError::BadThreshold { spec: spec.to_owned(), why };
        let form = "write METRIC > +N% or METRIC < -N% for a change, or METRIC > VALUE for a limit, e.g. 'p99 > +10%', 'throughput < -5%', 'p99 > 5ms', 'throughput < 50000'";
        let Some(at) = spec.find(['>', '<']) else {
            return Err(bad(format!("no > or <; {form}")));
        };
        let direction = if spec[at..].starts_with('>') { Direction::Above } else { Direction::Below };
        let (name, rest) = (spec[..at].trim(), spec[at + 1..].trim());
        if rest.starts_with(['=', '>', '<']) {
            return Err(bad(format!("use a single > or < (there is no >=, <= or >>: an interval is past a limit or not); {form}")));
        }
        if name.is_empty() {
            return Err(bad(format!("no metric before the comparison; {form}")));
        }
        let metric = metric::find(name).ok_or_else(|| bad(format!("unknown metric '{name}'; known metrics: {}", metric::keys())))?;
        let limit = match rest.strip_suffix('%') {
            Some(number) => {
                let percent: f64 = number.trim().parse().map_err(|_| bad(format!("'{number}' is not a number; {form}")))?;
                if !percent.is_finite() || percent <= -100.0 {
                    return Err(bad("the change must be a finite percentage above -100%".into()));
                }
                Limit::Change { percent }
            }
            None => Limit::Absolute { value: absolute(metric, rest).map_err(|why| bad(format!("{why}; {form}")))? },
        };
        Ok(Self { spec: spec.trim().to_owned(), metric, direction, limit })
    }
}

/// An absolute limit in the metric's unit: latencies need a time unit (a bare `5` could be µs or
/// ms), memory takes a size, rates may end in `msgs/s`, the rest are plain numbers.
fn absolute(metric: &Metric, text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match metric.unit {
        Unit::Latency => {
            if text.parse::<f64>().is_ok() {
                return Err(format!("'{text}' needs a time unit, e.g. {text}ms or {text}us (a change needs a % sign)"));
            }
            let us = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")).and_then(|n| n.trim().parse::<f64>().ok());
            let ms = text.strip_suffix("ms").and_then(|n| n.trim().parse::<f64>().ok()).map(|v| v * 1e3);
            match us.or(ms) {
                Some(v) => v,
                None => wsbench_core::units::parse_duration(text)?.as_secs_f64() * 1e6,
            }
        }
        Unit::Bytes => wsbench_core::units::parse_size(text)? as f64,
        Unit::Rate => {
            let n = text.strip_suffix("msgs/s").unwrap_or(text).trim();
            n.parse().map_err(|_| format!("'{text}' is not a rate in msgs/s (a change needs a % sign)"))?
        }
        _ => text.parse().map_err(|_| format!("'{text}' is not a number in {} (a change needs a % sign)", metric.unit.name()))?,
    };
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("'{text}' is not a finite, non-negative value"))
    }
}

// ---------------------------------------------------------------- the comparison

/// What to compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// `wsbench compare BASE CANDIDATE [--config NAME]`: run or configuration directories.
    Pair { base: PathBuf, candidate: PathBuf, config: Option<String> },
    /// `wsbench compare RUN --baseline CONFIG`: every other configuration of one run against one.
    Baseline { run: PathBuf, baseline: String },
}

/// Whether a metric changed, judged by its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    /// The interval contains 1: any difference may be noise.
    NoSignificantChange,
    /// A side has fewer than [`MIN_TRIALS`] trials: no interval to judge by.
    Inconclusive,
}

impl Verdict {
    /// The verdict from the interval of candidate / base: significant only when the interval
    /// excludes 1, better or worse by the metric's direction.
    pub fn of(better: Better, ci: Option<&Interval>) -> Self {
        let Some(ci) = ci else { return Self::Inconclusive };
        let higher = if ci.above(1.0) {
            true
        } else if ci.below(1.0) {
            false
        } else {
            return Self::NoSignificantChange;
        };
        if higher == (better == Better::Higher) {
            Self::Better
        } else {
            Self::Worse
        }
    }

    /// For people.
    pub fn name(self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Worse => "worse",
            Self::NoSignificantChange => "no significant change",
            Self::Inconclusive => "inconclusive",
        }
    }

    /// For JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Worse => "worse",
            Self::NoSignificantChange => "no_significant_change",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// One configuration as a side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSide {
    pub name: String,
    pub dir: PathBuf,
    /// Trials whose figures count (completed, not marked failed).
    pub trials_used: usize,
    pub trials_total: usize,
}

/// One metric compared between two configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricComparison {
    pub metric: &'static Metric,
    /// The value of every usable trial, in trial order.
    pub base: Vec<f64>,
    pub candidate: Vec<f64>,
    pub base_median: f64,
    pub candidate_median: f64,
    /// `candidate_median / base_median` (`+∞` when only the base is zero).
    pub ratio: f64,
    /// `None` with fewer than [`MIN_TRIALS`] trials on a side.
    pub ci: Option<Interval>,
    /// The interval of the candidate's median in the metric's unit, for absolute thresholds;
    /// `None` with fewer than [`MIN_TRIALS`] candidate trials.
    pub candidate_ci: Option<Interval>,
    pub verdict: Verdict,
}

impl MetricComparison {
    /// Trials behind the weaker side.
    pub fn n(&self) -> usize {
        self.base.len().min(self.candidate.len())
    }
}

/// Two configurations compared on every metric both measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PairComparison {
    pub base: ConfigSide,
    pub candidate: ConfigSide,
    pub metrics: Vec<MetricComparison>,
    /// What is not in the table and why: metrics measured on one side only, trials left out.
    pub notes: Vec<String>,
}

impl PairComparison {
    pub fn metric(&self, key: &str) -> Option<&MetricComparison> {
        self.metrics.iter().find(|m| m.metric.key == key)
    }
}

/// How one threshold fared on one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateStatus {
    /// The whole interval lies past the limit.
    Breached,
    /// The interval reaches the limit or stays short of it.
    Held,
    /// Too few trials to judge: the threshold does not fail.
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateOutcome {
    /// Index into [`Comparison::pairs`].
    pub pair: usize,
    pub status: GateStatus,
}

/// One threshold checked against every pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub threshold: Threshold,
    pub outcomes: Vec<GateOutcome>,
}

impl Gate {
    pub fn breached(&self) -> bool {
        self.outcomes.iter().any(|o| o.status == GateStatus::Breached)
    }
}

/// A whole `wsbench compare`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub base: PathBuf,
    /// The same as `base` when comparing inside one run.
    pub candidate: PathBuf,
    /// Set when comparing inside one run.
    pub baseline: Option<String>,
    pub settings: Settings,
    pub pairs: Vec<PairComparison>,
    /// Configurations that were not compared, and why.
    pub unmatched: Vec<String>,
    pub gates: Vec<Gate>,
}

impl Comparison {
    /// True when a `--fail-if` threshold was breached.
    pub fn failed(&self) -> bool {
        self.gates.iter().any(Gate::breached)
    }

    /// One line per threshold for a log: whether it held, and for which pairs it broke or could
    /// not be checked.
    pub fn gate_lines(&self) -> Vec<String> {
        self.gates
            .iter()
            .map(|g| {
                let th = &g.threshold;
                let pairs = |status: GateStatus| -> Vec<String> {
                    g.outcomes
                        .iter()
                        .filter(|o| o.status == status)
                        .map(|o| {
                            let p = &self.pairs[o.pair];
                            let m = p.metric(th.metric.key).expect("gates are only built for metrics both sides measured");
                            if th.is_absolute() {
                                let ci = m.candidate_ci.map(|ci| format!(" [{}, {}]", th.metric.unit.format(ci.low), th.metric.unit.format(ci.high))).unwrap_or_default();
                                format!("{} ({}{ci}, n = {})", p.candidate.name, th.metric.unit.format(m.candidate_median), m.candidate.len())
                            } else {
                                let ci = m.ci.as_ref().map(|ci| format!(" {}", change_interval(ci))).unwrap_or_default();
                                format!("{} → {} ({}{ci}, n = {})", p.base.name, p.candidate.name, change(m.ratio), m.n())
                            }
                        })
                        .collect()
                };
                let (breached, inconclusive) = (pairs(GateStatus::Breached), pairs(GateStatus::Inconclusive));
                let mut line = if breached.is_empty() {
                    format!("--fail-if '{}' held", th.spec)
                } else {
                    format!("--fail-if '{}' breached: {}", th.spec, breached.join(", "))
                };
                if !inconclusive.is_empty() {
                    line += &format!("; inconclusive, not failed (too few trials to judge): {}", inconclusive.join(", "));
                }
                line
            })
            .collect()
    }

    /// Warnings for stderr: one line when some verdicts rest on too few trials.
    pub fn warnings(&self) -> Vec<String> {
        let n = self.pairs.iter().flat_map(|p| &p.metrics).filter(|m| m.verdict == Verdict::Inconclusive).map(MetricComparison::n).min();
        match n {
            Some(n) => vec![format!(
                "warning: {}: verdicts are inconclusive and --fail-if thresholds on changes are not judged; run more trials (--trials {MIN_TRIALS})",
                too_few_trials(n)
            )],
            None => Vec::new(),
        }
    }

    /// [`EXIT_BREACHED`] when a threshold was breached, else [`EXIT_OK`].
    pub fn exit_code(&self) -> u8 {
        if self.failed() {
            EXIT_BREACHED
        } else {
            EXIT_OK
        }
    }
}

/// Reads the results `selection` names, compares them and checks `thresholds`.
pub fn compare(selection: &Selection, thresholds: &[Threshold], settings: &Settings) -> Result<Comparison, CompareError> {
    let (base_path, candidate_path, baseline, pairs, unmatched) = match selection {
        Selection::Pair { base, candidate, config } => {
            let b = load::results(base)?;
            let c = load::results(candidate)?;
            let (pairs, unmatched) = pair_up(&b, base, &c, candidate, config.as_deref())?;
            let pairs: Vec<PairComparison> = pairs.into_iter().map(|(b, c)| compare_configs(b, c, settings)).collect();
            (base.clone(), candidate.clone(), None, pairs, unmatched)
        }
        Selection::Baseline { run, baseline } => {
            let Results::Run(r) = load::results(run)? else {
                return Err(CompareError::BaselineNeedsRun { path: run.clone() });
            };
            let base = find_config(&r.configs.iter().collect::<Vec<_>>(), run, baseline)?;
            let others: Vec<&ConfigRun> = r.configs.iter().filter(|c| c.name != base.name).collect();
            if others.is_empty() {
                return Err(CompareError::NothingToCompare { path: run.clone(), name: base.name.clone() });
            }
            let pairs: Vec<PairComparison> = others.into_iter().map(|c| compare_configs(base, c, settings)).collect();
            (run.clone(), run.clone(), Some(base.name.clone()), pairs, Vec::new())
        }
    };
    let gates = thresholds.iter().map(|t| gate(t, &pairs)).collect::<Result<Vec<_>, _>>()?;
    Ok(Comparison { base: base_path, candidate: candidate_path, baseline, settings: *settings, pairs, unmatched, gates })
}

/// Which configurations of two result sets are compared with which.
///
/// With `--config NAME` a run side contributes its configuration of that name (a configuration
/// directory is taken as it is: the user pointed at it). Without, two single configurations
/// pair up whatever their names, and otherwise configurations of equal names pair up; names on
/// one side only are reported, not compared.
#[allow(clippy::type_complexity)]
fn pair_up<'a>(
    base: &'a Results,
    base_path: &Path,
    candidate: &'a Results,
    candidate_path: &Path,
    config: Option<&str>,
) -> Result<(Vec<(&'a ConfigRun, &'a ConfigRun)>, Vec<String>), CompareError> {
    let (bs, cs) = (base.configs(), candidate.configs());
    if let Some(name) = config {
        let pick = |side: &'a Results, configs: &[&'a ConfigRun], path: &Path| match side {
            Results::Config(c) => Ok(c),
            Results::Run(_) => find_config(configs, path, name),
        };
        return Ok((vec![(pick(base, &bs, base_path)?, pick(candidate, &cs, candidate_path)?)], Vec::new()));
    }
    if bs.len() == 1 && cs.len() == 1 {
        return Ok((vec![(bs[0], cs[0])], Vec::new()));
    }
    let pairs: Vec<_> = bs.iter().filter_map(|b| cs.iter().find(|c| c.name == b.name).map(|c| (*b, *c))).collect();
    if pairs.is_empty() {
        return Err(CompareError::NoCommonConfigs {
            base: base_path.to_owned(),
            base_names: bs.iter().map(|c| c.name.clone()).collect(),
            candidate: candidate_path.to_owned(),
            candidate_names: cs.iter().map(|c| c.name.clone()).collect(),
        });
    }
    let only = |side: &[&ConfigRun], other: &[&ConfigRun], path: &Path| -> Vec<String> {
        side.iter()
            .filter(|c| !other.iter().any(|o| o.name == c.name))
            .map(|c| format!("{:?} is only in {}, so it was not compared", c.name, path.display()))
            .collect()
    };
    let mut unmatched = only(&bs, &cs, base_path);
    unmatched.extend(only(&cs, &bs, candidate_path));
    Ok((pairs, unmatched))
}

/// The configuration called `name` (or stored in the folder `name`).
fn find_config<'a>(configs: &[&'a ConfigRun], path: &Path, name: &str) -> Result<&'a ConfigRun, CompareError> {
    configs
        .iter()
        .find(|c| c.name == name)
        .or_else(|| configs.iter().find(|c| c.dir.file_name().is_some_and(|d| d == name)))
        .copied()
        .ok_or_else(|| CompareError::NoSuchConfig { path: path.to_owned(), name: name.to_owned(), available: configs.iter().map(|c| c.name.clone()).collect() })
}

/// Compares two configurations on every metric both measured. Pure apart from reading the
/// trials already in memory.
pub fn compare_configs(base: &ConfigRun, candidate: &ConfigRun, settings: &Settings) -> PairComparison {
    let side = |c: &ConfigRun| ConfigSide {
        name: c.name.clone(),
        dir: c.dir.clone(),
        trials_used: c.trials.iter().filter(|t| usable(t)).count(),
        trials_total: c.trials.len(),
    };
    let values = |c: &ConfigRun, m: &Metric| -> Vec<f64> {
        c.trials.iter().filter(|t| usable(t)).filter_map(|t| (m.value)(t)).filter(|v| v.is_finite()).collect()
    };
    let mut notes = Vec::new();
    for (which, s) in [("base", side(base)), ("candidate", side(candidate))] {
        if s.trials_used < s.trials_total {
            notes.push(format!(
                "{which} {:?}: {} of {} trials left out (failed or without a summary)",
                s.name,
                s.trials_total - s.trials_used,
                s.trials_total
            ));
        }
    }
    let mut metrics = Vec::new();
    for m in METRICS {
        let (b, c) = (values(base, m), values(candidate, m));
        match (b.is_empty(), c.is_empty()) {
            (true, true) => {}
            (false, true) | (true, false) => {
                let only = if c.is_empty() { "base" } else { "candidate" };
                notes.push(format!("{}: measured in the {only} only, so not compared", m.label));
            }
            (false, false) => metrics.push(compare_values(m, b, c, settings)),
        }
    }
    PairComparison { base: side(base), candidate: side(candidate), metrics, notes }
}

/// Compares one metric's trial values; both sides must have at least one value.
pub fn compare_values(metric: &'static Metric, base: Vec<f64>, candidate: Vec<f64>, settings: &Settings) -> MetricComparison {
    let base_median = bootstrap::median(&base).unwrap_or(f64::NAN);
    let candidate_median = bootstrap::median(&candidate).unwrap_or(f64::NAN);
    let enough = base.len().min(candidate.len()) >= MIN_TRIALS;
    let ci = if enough { bootstrap::ratio_of_medians(&base, &candidate, settings) } else { None };
    let candidate_ci = if candidate.len() >= MIN_TRIALS { bootstrap::median_interval(&candidate, settings) } else { None };
    MetricComparison {
        metric,
        ratio: ratio(candidate_median, base_median),
        verdict: Verdict::of(metric.better, ci.as_ref()),
        base,
        candidate,
        base_median,
        candidate_median,
        ci,
        candidate_ci,
    }
}

/// Checks one threshold against every pair. A metric the threshold names must have been
/// measured on both sides of every pair: a gate on something that is not measured would pass
/// silently, which is worse than stopping.
fn gate(threshold: &Threshold, pairs: &[PairComparison]) -> Result<Gate, CompareError> {
    let mut outcomes = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let Some(m) = p.metric(threshold.metric.key) else {
            return Err(CompareError::NotMeasured {
                spec: threshold.spec.clone(),
                metric: threshold.metric.key,
                what: format!("the comparison of {:?} with {:?}", p.base.name, p.candidate.name),
            });
        };
        let status = match (threshold.limit, &m.ci, &m.candidate_ci) {
            (Limit::Change { .. }, None, _) => GateStatus::Inconclusive,
            (Limit::Change { .. }, Some(ci), _) | (Limit::Absolute { .. }, _, Some(ci)) => {
                if threshold.breached_by(ci) {
                    GateStatus::Breached
                } else {
                    GateStatus::Held
                }
            }
            // Too few trials for an interval: say what every trial says, or that they disagree.
            (Limit::Absolute { .. }, _, None) => match m.candidate.iter().filter(|&&v| threshold.past(v)).count() {
                k if k == m.candidate.len() => GateStatus::Breached,
                0 => GateStatus::Held,
                _ => GateStatus::Inconclusive,
            },
        };
        outcomes.push(GateOutcome { pair: i, status });
    }
    Ok(Gate { threshold: threshold.clone(), outcomes })
}

/// A ratio as a change for people: `+12.3 %`, `-4.0 %`, `×18.2` past ten-fold, `×∞` from zero.
pub fn change(ratio: f64) -> String {
    if ratio.is_nan() {
        "—".into()
    } else if ratio.is_infinite() {
        "×∞".into()
    } else if ratio >= 10.0 {
        format!("×{}", crate::format::sig3(ratio))
    } else {
        // Below the last printed digit the sign is noise: `-0.0 %` would claim a direction.
        let pct = Some((ratio - 1.0) * 100.0).filter(|p| p.abs() >= 0.05).unwrap_or(0.0);
        // Small changes keep a decimal; `+0.0 %` says "measured, and no change" better than `0 %`.
        if pct.abs() < 100.0 {
            format!("{pct:+.1} %")
        } else {
            format!("{pct:+.0} %")
        }
    }
}

/// An interval as changes: `[+1.2 %, +8.9 %]`.
pub fn change_interval(ci: &Interval) -> String {
    format!("[{}, {}]", change(ci.low), change(ci.high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        s.parse::<Threshold>().unwrap_err().to_string()
    }

    #[test]
    fn thresholds_parse_in_every_spelling() {
        let t = threshold("p99 > +10%");
        assert_eq!((t.metric.key, t.direction, t.limit), ("p99", Direction::Above, Limit::Change { percent: 10.0 }));
        assert!((t.limit() - 1.10).abs() < 1e-12);
        let t = threshold("throughput<-5%");
        assert_eq!((t.metric.key, t.direction, t.limit), ("throughput", Direction::Below, Limit::Change { percent: -5.0 }));
        assert!((t.limit() - 0.95).abs() < 1e-12);
        assert_eq!(threshold("  P99.9 >  2.5 % ").limit, Limit::Change { percent: 2.5 });
        assert_eq!(threshold("p999 > 0%").metric.key, "p99.9");
        assert_eq!(threshold("allocations > +0%").metric.key, "allocations");
        assert_eq!(threshold("p95 > +5%").metric.key, "p95");
    }

    #[test]
    fn absolute_thresholds_parse_in_the_metrics_unit() {
        assert_eq!(threshold("p99 > 5ms").limit, Limit::Absolute { value: 5_000.0 });
        assert_eq!(threshold("p99>250us").limit, Limit::Absolute { value: 250.0 });
        assert_eq!(threshold("p95 > 1.5ms").limit, Limit::Absolute { value: 1_500.0 });
        assert_eq!(threshold("max > 1s").limit, Limit::Absolute { value: 1e6 });
        assert_eq!(threshold("throughput < 50000").limit, Limit::Absolute { value: 50_000.0 });
        assert_eq!(threshold("throughput < 50000 msgs/s").limit, Limit::Absolute { value: 50_000.0 });
        assert_eq!(threshold("rss > 64MiB").limit, Limit::Absolute { value: 64.0 * 1024.0 * 1024.0 });
        assert_eq!(threshold("errors > 0").limit, Limit::Absolute { value: 0.0 });
        assert_eq!(threshold("p99 > 5ms").limit_text(), "5.00 ms");
        assert!(threshold("p99 > 5ms").is_absolute() && !threshold("p99 > 5%").is_absolute());
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        assert!(err("p99 10%").contains("no > or <"), "{}", err("p99 10%"));
        assert!(err("p98 > 10%").contains("unknown metric 'p98'") && err("p98 > 10%").contains("p99.9"));
        assert!(err("p99 >= 10%").contains("a single > or <"));
        assert!(err("p99 > 10").contains("needs a time unit"), "{}", err("p99 > 10"));
        assert!(err("throughput < fast").contains("not a rate"));
        assert!(err("p99 > -5ms").contains("not a duration") || err("p99 > -5ms").contains("non-negative"), "{}", err("p99 > -5ms"));
        assert!(err("p99 > ten%").contains("not a number"));
        assert!(err("> 10%").contains("no metric"));
        assert!(err("throughput < -100%").contains("above -100%"));
        assert!(err("p99 > 10").starts_with("--fail-if 'p99 > 10': "));
    }

    #[test]
    fn thresholds_need_the_whole_interval_past_the_limit() {
        let up = threshold("p99 > +10%");
        assert!(up.breached_by(&Interval { low: 1.11, high: 1.5 }));
        assert!(!up.breached_by(&Interval { low: 1.10, high: 1.5 }), "touching the limit is not past it");
        assert!(!up.breached_by(&Interval { low: 0.9, high: 1.5 }), "may be noise");
        assert!(up.breached_by(&Interval { low: f64::INFINITY, high: f64::INFINITY }));
        let down = threshold("throughput < -5%");
        assert!(down.breached_by(&Interval { low: 0.5, high: 0.94 }));
        assert!(!down.breached_by(&Interval { low: 0.5, high: 0.96 }));
        assert!(!down.breached_by(&Interval { low: 1.2, high: 1.3 }), "faster is not a breach of < -5%");
    }

    #[test]
    fn verdicts_follow_the_metric_direction() {
        let above = Interval { low: 1.02, high: 1.2 };
        let below = Interval { low: 0.8, high: 0.97 };
        let across = Interval { low: 0.9, high: 1.1 };
        assert_eq!(Verdict::of(Better::Lower, Some(&above)), Verdict::Worse);
        assert_eq!(Verdict::of(Better::Lower, Some(&below)), Verdict::Better);
        assert_eq!(Verdict::of(Better::Higher, Some(&above)), Verdict::Better);
        assert_eq!(Verdict::of(Better::Higher, Some(&below)), Verdict::Worse);
        assert_eq!(Verdict::of(Better::Higher, Some(&across)), Verdict::NoSignificantChange);
        assert_eq!(Verdict::of(Better::Lower, Some(&Interval { low: 1.0, high: 1.0 })), Verdict::NoSignificantChange);
        assert_eq!(Verdict::of(Better::Lower, None), Verdict::Inconclusive);
    }

    #[test]
    fn one_metric_compared() {
        let p99 = metric::find("p99").unwrap();
        let m = compare_values(p99, vec![100.0, 110.0, 105.0, 102.0, 108.0], vec![200.0, 190.0, 210.0, 205.0, 195.0], &Settings::default());
        assert_eq!((m.base_median, m.candidate_median, m.ratio), (105.0, 200.0, 200.0 / 105.0));
        assert_eq!(m.verdict, Verdict::Worse);
        let ci = m.ci.unwrap();
        assert!(ci.contains(m.ratio) && ci.low > 1.7 && ci.high < 2.2, "{ci:?}");
        let same = compare_values(p99, vec![100.0, 110.0, 105.0, 102.0, 108.0], vec![100.0, 110.0, 105.0, 102.0, 108.0], &Settings::default());
        assert_eq!(same.verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn too_few_trials_give_no_interval_and_an_inconclusive_verdict() {
        // The case: two trials a side, p99 doubled by noise. No interval, no verdict.
        let p99 = metric::find("p99").unwrap();
        for (b, c) in [(vec![100.0], vec![200.0, 190.0]), (vec![100.0, 104.0], vec![209.0, 230.0]), (vec![100.0; 4], vec![300.0; 5])] {
            let m = compare_values(p99, b, c, &Settings::default());
            assert_eq!((m.ci, m.verdict), (None, Verdict::Inconclusive), "{m:?}");
        }
        assert_eq!(too_few_trials(2), "too few trials for a confident verdict (n = 2; at least 5 recommended)");
    }

    #[test]
    fn gates_break_only_on_a_judged_breach_and_refuse_unmeasured_metrics() {
        let p99 = metric::find("p99").unwrap();
        let side = |name: &str| ConfigSide { name: name.into(), dir: PathBuf::from(name), trials_used: 5, trials_total: 5 };
        let pair = |b: Vec<f64>, c: Vec<f64>| PairComparison {
            base: side("a"),
            candidate: side("b"),
            metrics: vec![compare_values(p99, b, c, &Settings::default())],
            notes: Vec::new(),
        };
        let five = |v: f64| vec![v, v * 1.01, v * 0.99, v * 1.02, v * 0.98];
        let pairs = vec![pair(five(100.0), five(100.5)), pair(five(100.0), five(155.0)), pair(vec![100.0, 101.0], vec![500.0, 510.0])];
        let g = gate(&threshold("p99 > +10%"), &pairs).unwrap();
        assert_eq!(g.outcomes.iter().map(|o| o.status).collect::<Vec<_>>(), [GateStatus::Held, GateStatus::Breached, GateStatus::Inconclusive]);
        assert!(g.breached());
        let g = gate(&threshold("p99 > +60%"), &pairs).unwrap();
        assert!(!g.breached(), "+50 % is not significantly past +60 %");
        let e = gate(&threshold("allocations > +0%"), &pairs).unwrap_err();
        assert!(e.to_string().contains("no allocations values"), "{e}");
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
    }

    #[test]
    fn absolute_gates_judge_the_candidate_alone() {
        let p99 = metric::find("p99").unwrap();
        let side = |name: &str| ConfigSide { name: name.into(), dir: PathBuf::from(name), trials_used: 5, trials_total: 5 };
        let pair = |c: Vec<f64>| PairComparison {
            base: side("a"),
            candidate: side("b"),
            metrics: vec![compare_values(p99, vec![1.0, 1.0], c, &Settings::default())],
            notes: Vec::new(),
        };
        let status = |spec: &str, c: Vec<f64>| gate(&threshold(spec), &[pair(c)]).unwrap().outcomes[0].status;
        // Five trials: the interval of the median decides.
        assert_eq!(status("p99 > 5ms", vec![6_000.0, 6_100.0, 5_900.0, 6_050.0, 6_200.0]), GateStatus::Breached);
        assert_eq!(status("p99 > 5ms", vec![4_000.0, 6_100.0, 5_900.0, 4_500.0, 6_200.0]), GateStatus::Held);
        // Fewer: every trial past the limit breaches, disagreeing trials are inconclusive.
        assert_eq!(status("p99 > 5ms", vec![6_000.0, 7_000.0]), GateStatus::Breached);
        assert_eq!(status("p99 > 5ms", vec![4_000.0, 7_000.0]), GateStatus::Inconclusive);
        assert_eq!(status("p99 > 5ms", vec![4_000.0, 4_100.0]), GateStatus::Held);
        assert_eq!(status("p99 < 5ms", vec![4_000.0, 4_100.0]), GateStatus::Breached);
    }

    /// `n` trial values around `median` with log-normal noise of `sigma` (0.1: about ±10 %).
    fn trials(seed: &mut u64, median: f64, sigma: f64, n: usize) -> Vec<f64> {
        let mut uniform = || {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 / (1u64 << 53) as f64).max(1e-12)
        };
        (0..n).map(|_| median * (sigma * (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()).exp()).collect()
    }

    #[test]
    fn the_gate_ignores_noise_and_catches_a_real_slowdown() {
        // The acceptance check in miniature: with 5 trials a side and ±10 % noise between
        // trials, A/A comparisons must not fail `p99 > +10%`, and a clear slowdown must fail it at
        // least 19 times in 20 (here counted over 100 of each). The power depends on the size of
        // the change against the noise: at these settings +50 % is caught about 95 times in 100,
        // +20 % about 15 times; more trials narrow the interval.
        let p99 = metric::find("p99").unwrap();
        let gate = threshold("p99 > +10%");
        let settings = Settings { resamples: 2_000, ..Settings::default() };
        let mut seed = 42;
        let mut breaches = |factor: f64| {
            (0..100)
                .filter(|_| {
                    let base = trials(&mut seed, 1_000.0, 0.1, 5);
                    let candidate = trials(&mut seed, 1_000.0 * factor, 0.1, 5);
                    gate.breached_by(&compare_values(p99, base, candidate, &settings).ci.unwrap())
                })
                .count()
        };
        let aa = breaches(1.0);
        assert!(aa <= 1, "A/A failed {aa} times in 100");
        let slowed = breaches(1.6);
        assert!(slowed >= 95, "a 60 % slowdown failed only {slowed} times in 100");
    }

    #[test]
    fn changes_read_as_percentages_and_factors() {
        assert_eq!(change(1.123), "+12.3 %");
        assert_eq!(change(0.96), "-4.0 %");
        assert_eq!(change(1.0), "+0.0 %");
        assert_eq!(change(0.99999), "+0.0 %");
        assert_eq!(change(3.5), "+250 %");
        assert_eq!(change(18.24), "×18.2");
        assert_eq!(change(f64::INFINITY), "×∞");
        assert_eq!(change(0.0), "-100 %");
        assert_eq!(change_interval(&Interval { low: 0.99, high: 1.05 }), "[-1.0 %, +5.0 %]");
    }
}

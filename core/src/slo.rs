//! Service-level objectives: "p99 <= 5ms", the question a capacity search answers.
//!
//! An objective bounds one latency statistic of a run (a percentile or the maximum), measured
//! from each message's intended send time, so a stalled server cannot meet it by stalling the
//! load generator too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hist::LatencySummary;
use crate::units::{latency_us, parse_duration};

/// Share of the asked open-loop rate that must be answered for a run not to count as
/// overloaded: below it, the server (or the load generator) could not keep up.
pub const ACHIEVED_SHARE: f64 = 0.95;

/// The statistic an objective bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloStat {
    P50,
    P90,
    P95,
    P99,
    P99_9,
    P99_99,
    Max,
}

impl SloStat {
    const ALL: [(SloStat, &'static str); 7] =
        [(Self::P50, "p50"), (Self::P90, "p90"), (Self::P95, "p95"), (Self::P99, "p99"), (Self::P99_9, "p99.9"), (Self::P99_99, "p99.99"), (Self::Max, "max")];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(s, _)| *s == self).map(|(_, n)| *n).unwrap_or("?")
    }

    /// The statistic's value in a summary, in microseconds.
    pub fn of(self, s: &LatencySummary) -> f64 {
        match self {
            Self::P50 => s.p50,
            Self::P90 => s.p90,
            // Results written before p95 was recorded meet no objective on it.
            Self::P95 => s.p95.unwrap_or(f64::NAN),
            Self::P99 => s.p99,
            Self::P99_9 => s.p99_9,
            Self::P99_99 => s.p99_99,
            Self::Max => s.max,
        }
    }
}

/// `<stat> <= <duration>` or `<stat> < <duration>`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub stat: SloStat,
    /// The bound in microseconds.
    pub bound_us: f64,
    /// `<` rather than `<=`.
    pub strict: bool,
}

impl Slo {
    /// Parses `p99 <= 5ms`, `p99.9<20ms`, `max <= 1s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an objective; write e.g. \"p99 <= 5ms\" (p50, p90, p95, p99, p99.9, p99.99 or max; <= or <)");
        let (lhs, rhs, strict) = if let Some((l, r)) = s.split_once("<=") {
            (l, r, false)
        } else if let Some((l, r)) = s.split_once('<') {
            (l, r, true)
        } else {
            return Err(bad());
        };
        let stat = SloStat::ALL.iter().find(|(_, n)| *n == lhs.trim()).map(|(s, _)| *s).ok_or_else(bad)?;
        let bound = parse_duration(rhs.trim()).map_err(|e| format!("{}: {e}", bad()))?;
        if bound.is_zero() {
            return Err(format!("`{s}`: the bound must be above zero"));
        }
        Ok(Self { stat, bound_us: bound.as_secs_f64() * 1e6, strict })
    }

    /// True when a run's latency meets the objective.
    pub fn holds(&self, latency: &LatencySummary) -> bool {
        let v = self.stat.of(latency);
        if self.strict { v < self.bound_us } else { v <= self.bound_us }
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.stat.name(), if self.strict { "<" } else { "<=" }, latency_us(self.bound_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let s = Slo::parse("p99 <= 5ms").unwrap();
        assert_eq!((s.stat, s.bound_us, s.strict), (SloStat::P99, 5_000.0, false));
        let s = Slo::parse("p99.9<20ms").unwrap();
        assert_eq!((s.stat, s.bound_us, s.strict), (SloStat::P99_9, 20_000.0, true));
        assert_eq!(Slo::parse("max <= 1s").unwrap().stat, SloStat::Max);
        assert_eq!(Slo::parse("p95 <= 250ms").unwrap().stat, SloStat::P95);
        assert_eq!(Slo::parse("p99 <= 5ms").unwrap().to_string(), "p99 <= 5 ms");
        for bad in ["p98 <= 5ms", "p99 = 5ms", "p99 <= soon", "p99 <= 0s"] {
            assert!(Slo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn holds_compares_the_right_statistic() {
        let l = LatencySummary { p99: 4_000.0, max: 9_000.0, ..Default::default() };
        assert!(Slo::parse("p99 <= 4ms").unwrap().holds(&l));
        assert!(!Slo::parse("p99 < 4ms").unwrap().holds(&l));
        assert!(!Slo::parse("max <= 5ms").unwrap().holds(&l));
        // A summary without p95 (written before it was recorded) cannot meet a p95 objective.
        assert!(!Slo::parse("p95 <= 1h").unwrap().holds(&l));
        assert!(Slo::parse("p95 <= 4ms").unwrap().holds(&LatencySummary { p95: Some(4_000.0), ..l }));
    }
}

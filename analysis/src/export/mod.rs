//! Outputs of `compare` and `export`: one file per format behind one small trait, as hyperfine's
//! `export/` does.
//!
//! - [`terminal`]: the comparison as aligned plain-text tables (the default of `wsbench compare`),
//! - [`markdown`]: the same tables as GitHub Markdown, for a CI job summary or a PR comment,
//! - [`json`]: the comparison as a versioned JSON document for programs,
//! - [`csv`]: one row per configuration and trial of a run, every metric, for pandas or a
//!   spreadsheet.
//!
//! Exporters only present: every number arrives computed by [`mod@crate::compare`] or
//! [`crate::load`]. The terminal and Markdown tables share one [`crate::doc::Document`]
//! built by [`comparison_document`], so they always say the same thing.

pub mod csv;
pub mod json;
pub mod markdown;
pub mod terminal;

use std::io;

use crate::compare::{self, Comparison, GateStatus, Verdict};
use crate::doc::{code, plain, strong, t, Block, Document, Inline, Item, Table};

/// Writes `T` in one format.
pub trait Exporter<T: ?Sized> {
    fn export(&self, what: &T, out: &mut dyn io::Write) -> io::Result<()>;
}

/// The formats of `wsbench compare --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComparisonFormat {
    #[default]
    Terminal,
    Markdown,
    Json,
}

impl ComparisonFormat {
    pub fn exporter(self) -> Box<dyn Exporter<Comparison>> {
        match self {
            Self::Terminal => Box::new(terminal::Terminal),
            Self::Markdown => Box::new(markdown::Markdown),
            Self::Json => Box::new(json::Json),
        }
    }
}

/// The comparison as headings, tables and lists. Worse verdicts and failed thresholds are strong
/// text: bold in Markdown, plain in the terminal.
pub fn comparison_document(c: &Comparison) -> Document {
    let mut d = Document::new("wsbench compare");
    d.heading(2, "wsbench compare");
    match &c.baseline {
        Some(b) => d.paragraph(vec![strong("Run:"), t(" "), code(c.base.display().to_string()), t(" · "), strong("baseline:"), t(" "), code(b.clone())]),
        None => d.paragraph(vec![
            strong("Base:"),
            t(" "),
            code(c.base.display().to_string()),
            t(" · "),
            strong("candidate:"),
            t(" "),
            code(c.candidate.display().to_string()),
        ]),
    };
    let pct = format!("{:.0} %", c.settings.confidence * 100.0);
    d.paragraph(plain(format!(
        "Each value is the median over a configuration's trials; change is candidate / base − 1 with its {pct} confidence interval \
         (percentile bootstrap over trials, {} resamples). A verdict is better or worse only when the whole interval lies on one side of no change; \
         with fewer than {} trials on a side there is no interval and the verdict is inconclusive.",
        c.settings.resamples,
        compare::MIN_TRIALS
    )));

    for p in &c.pairs {
        d.heading(3, format!("{} → {}", p.base.name, p.candidate.name));
        let trials = |s: &compare::ConfigSide| {
            if s.trials_used == s.trials_total {
                format!("{}", s.trials_used)
            } else {
                format!("{} of {}", s.trials_used, s.trials_total)
            }
        };
        d.paragraph(plain(format!("Trials: {} base, {} candidate.", trials(&p.base), trials(&p.candidate))));
        let rows: Vec<Vec<Inline>> = p
            .metrics
            .iter()
            .map(|m| {
                let verdict = match m.verdict {
                    Verdict::Worse => vec![strong(m.verdict.name())],
                    v => plain(v.name()),
                };
                vec![
                    plain(m.metric.label),
                    plain(m.metric.unit.format(m.base_median)),
                    plain(m.metric.unit.format(m.candidate_median)),
                    plain(compare::change(m.ratio)),
                    plain(m.ci.as_ref().map(compare::change_interval).unwrap_or_else(|| "—".into())),
                    verdict,
                ]
            })
            .collect();
        let mut table = Table::numeric(&["metric", "base", "candidate", "change", &format!("{pct} CI"), "verdict"], rows);
        table.align[5] = crate::doc::Align::Left;
        d.push(Block::Table(table));
        let mut notes: Vec<Item> = p.notes.iter().map(|n| Item::from(plain(n.clone()))).collect();
        if let Some(n) = p.metrics.iter().filter(|m| m.verdict == Verdict::Inconclusive).map(|m| m.n()).min() {
            notes.push(Item::from(plain(format!(
                "{}: no confidence interval is given and nothing is called significant; thresholds on changes were not judged",
                compare::too_few_trials(n)
            ))));
        }
        if !notes.is_empty() {
            d.push(Block::List(notes));
        }
    }
    if !c.unmatched.is_empty() {
        d.push(Block::List(c.unmatched.iter().map(|u| Item::from(plain(u.clone()))).collect()));
    }
    if !c.gates.is_empty() {
        d.heading(3, "Thresholds");
        let items = c
            .gates
            .iter()
            .map(|g| {
                let th = &g.threshold;
                let line = if g.breached() {
                    vec![strong("failed"), t(": "), code(th.spec.clone()), t(" — significantly past the threshold")]
                } else {
                    vec![t("passed: "), code(th.spec.clone())]
                };
                let limit = th.limit_text();
                let side = match th.direction {
                    compare::Direction::Above => "above",
                    compare::Direction::Below => "below",
                };
                let children = g
                    .outcomes
                    .iter()
                    .map(|o| {
                        let p = &c.pairs[o.pair];
                        let m = p.metric(th.metric.key).expect("gates are only built for metrics both sides measured");
                        if th.is_absolute() {
                            let unit = th.metric.unit;
                            let what = format!("{}: {} {} (median of {} trials)", p.candidate.name, th.metric.key, unit.format(m.candidate_median), m.candidate.len());
                            return plain(match (o.status, m.candidate_ci) {
                                (GateStatus::Breached, Some(ci)) => format!("{what} [{}, {}]: the whole interval is {side} {limit}", unit.format(ci.low), unit.format(ci.high)),
                                (GateStatus::Held, Some(ci)) => format!("{what} [{}, {}]: not entirely {side} {limit}", unit.format(ci.low), unit.format(ci.high)),
                                (GateStatus::Breached, None) => format!("{what}: every trial is {side} {limit} (too few trials for an interval)"),
                                (GateStatus::Held, None) => format!("{what}: no trial is {side} {limit} (too few trials for an interval)"),
                                (GateStatus::Inconclusive, _) => format!("{what}: inconclusive, some trials are {side} {limit} and some not; {}", compare::too_few_trials(m.candidate.len())),
                            });
                        }
                        let ci = m.ci.as_ref().map(compare::change_interval).unwrap_or_default();
                        let what = format!("{} → {}: {} {}", p.base.name, p.candidate.name, th.metric.key, compare::change(m.ratio));
                        plain(match o.status {
                            GateStatus::Breached => format!("{what} {ci}: the whole interval is {side} {limit}"),
                            GateStatus::Held => format!("{what} {ci}: not entirely {side} {limit}"),
                            GateStatus::Inconclusive => format!("{what}: inconclusive, not failed: {}", compare::too_few_trials(m.n())),
                        })
                    })
                    .collect();
                Item { line, children }
            })
            .collect();
        d.push(Block::List(items));
    }
    d
}

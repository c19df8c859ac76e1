//! Broadcast, push and sink runs: their figures' data and their section of the report.
//!
//! A configuration is a fan-out one when its load generators report `fanout` in
//! `summary.json`. Each gets one [`FanoutPoint`]: medians over trials of deliveries per second,
//! reach, per-delivery and completion latency, and the missing deliveries of every trial that
//! has a summary (failed trials included: a trial that lost deliveries must not vanish from the
//! figures that would show it).

use std::collections::BTreeMap;

use crate::doc::{plain, Block, Document, Table};
use crate::format;
use crate::load::Run;
use crate::stats::Spread;

/// One configuration of a one-way run, over its trials.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutPoint {
    pub name: String,
    /// The server's workload and engine (`broadcast`, `zero-alloc`), from `server.json`.
    pub workload: String,
    pub engine: String,
    /// Members per room (broadcast; the largest room), or connections (push, sink).
    pub room_size: u32,
    pub trials: usize,
    pub deliveries_per_s: Option<Spread>,
    pub reach: Option<Spread>,
    pub delivery_p50_us: Option<Spread>,
    pub delivery_p99_us: Option<Spread>,
    pub completion_p50_us: Option<Spread>,
    pub completion_p99_us: Option<Spread>,
    /// Completion was measured per shard (collected shards): a lower bound of the room's.
    pub completion_within_shard: bool,
    /// Missing deliveries by cause, summed over trials.
    pub missing: BTreeMap<String, u64>,
    /// Receivers the server closed for being slow, summed over trials.
    pub slow_receivers_closed: u64,
}

/// The fan-out configurations of a run, in run order.
pub fn points(run: &Run) -> Vec<FanoutPoint> {
    run.configs
        .iter()
        .filter_map(|c| {
            let with: Vec<_> = c.trials.iter().filter_map(|t| Some((t, t.summary.as_ref()?.fanout.as_ref()?))).collect();
            let (first, f0) = with.first()?;
            let server = with.iter().find_map(|(t, _)| t.server.as_ref());
            let mut missing = BTreeMap::new();
            for (_, f) in &with {
                for (cause, n) in &f.missing {
                    *missing.entry(cause.clone()).or_default() += n;
                }
            }
            let summary = |pick: fn(&wsbench_core::result::LoadgenSummary) -> f64| {
                Spread::of(with.iter().filter_map(|(t, _)| t.summary.as_ref()).map(pick))
            };
            Some(FanoutPoint {
                name: c.name.clone(),
                workload: first.summary.as_ref().map_or("", |s| s.config.workload.name()).to_owned(),
                engine: server.map_or("external", |s| s.config.engine.name()).to_owned(),
                room_size: f0.room_size_max,
                trials: with.len(),
                deliveries_per_s: Spread::of(with.iter().map(|(_, f)| f.deliveries_per_s)),
                reach: Spread::of(with.iter().map(|(_, f)| f.reach)),
                delivery_p50_us: summary(|s| s.latency_us.p50),
                delivery_p99_us: summary(|s| s.latency_us.p99),
                completion_p50_us: Spread::of(with.iter().filter_map(|(_, f)| f.completion_us.map(|c| c.p50))),
                completion_p99_us: Spread::of(with.iter().filter_map(|(_, f)| f.completion_us.map(|c| c.p99))),
                completion_within_shard: with.iter().any(|(_, f)| f.completion_within_shard),
                missing,
                slow_receivers_closed: with
                    .iter()
                    .filter_map(|(t, _)| t.server.as_ref()?.fanout.map(|f| f.slow_receivers_closed))
                    .sum(),
            })
        })
        .collect()
}

fn spread_cell(s: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.is_flat() => f(s.median),
        Some(s) => format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max)),
    }
}

/// The report's fan-out section: one row per configuration, then the figure.
pub fn section(d: &mut Document, points: &[FanoutPoint], figure: Option<&crate::plot::FigureFiles>) {
    if points.is_empty() {
        return;
    }
    d.heading(2, "Fan-out");
    d.paragraph(plain(
        "One-way latency, from the publisher's (or the server's, for push) intended send time to each receipt: per delivery, and \
         for broadcast until the last member of the room had it (completion). Reach is deliveries made over deliveries expected \
         (every planned member, every measured message); missing deliveries are named by cause. Medians over trials [min–max].",
    ));
    if points.iter().any(|p| p.completion_within_shard) {
        d.paragraph(plain(
            "Completion marked \"within a shard\" comes from load-generator shards: each measured until the last member it held had              a broadcast, so the figure is a lower bound of the room's completion (the room's is the largest of its shards').",
        ));
    }
    let lat = |v: f64| format::latency_fixed(v);
    let rows = points
        .iter()
        .map(|p| {
            let missing: Vec<String> = p.missing.iter().map(|(c, n)| format!("{n} {c}")).collect();
            vec![
                plain(p.name.clone()),
                plain(format!("{} · {}", p.workload, p.engine)),
                plain(p.room_size.to_string()),
                plain(spread_cell(p.deliveries_per_s, format::rate)),
                plain(spread_cell(p.reach, |v| format!("{} %", format::trim_zeros(format!("{:.3}", v * 100.0))))),
                plain(spread_cell(p.delivery_p50_us, lat)),
                plain(spread_cell(p.delivery_p99_us, lat)),
                plain(match p.completion_within_shard {
                    true => format!("{} (within a shard)", spread_cell(p.completion_p99_us, lat)),
                    false => spread_cell(p.completion_p99_us, lat),
                }),
                plain(if missing.is_empty() { "none".into() } else { missing.join("; ") }),
                plain(p.slow_receivers_closed.to_string()),
            ]
        })
        .collect();
    d.push(Block::Table(Table::numeric(
        &["configuration", "workload · engine", "room size", "deliveries/s", "reach", "delivery p50", "delivery p99", "completion p99", "missing", "slow receivers closed"],
        rows,
    )));
    if let Some(f) = figure {
        d.push(Block::Figure(f.clone()));
    }
}

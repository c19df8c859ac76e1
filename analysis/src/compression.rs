//! permessage-deflate runs: what compression saved and what it cost, beside the plain
//! configuration of the same scenario, and the report's section that says so.
//!
//! A configuration compressed when its load generators offered deflate (`summary.json`'s
//! `deflate`). Its plain twin is the configuration whose server and load are the same apart from
//! the deflate keys; the section shows the twin first, then each compressing configuration with
//! its changes against it. Ratios are medians over trials of bytes on the wire over payload
//! bytes, each way.

use std::collections::BTreeMap;

use crate::doc::{plain, t, Block, Document, Table};
use crate::format;
use crate::load::{Run, Trial};
use crate::stats::{self, Spread};

/// One configuration of the compression table, over its usable trials.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionRow {
    pub name: String,
    /// The plain twin this configuration is compared with; `None` for a plain configuration.
    pub plain: Option<String>,
    /// The parameter sets agreed (`server_max_window_bits=15; ...`, or `declined`) with their
    /// connections, over every trial.
    pub agreements: BTreeMap<String, u32>,
    /// Wire bytes / payload bytes of the messages the load generators sent (to the server) and
    /// received (to the client).
    pub ratio_to_server: Option<Spread>,
    pub ratio_to_client: Option<Spread>,
    pub throughput: Option<Spread>,
    pub p50_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    /// The server's CPU time per message received, µs ([`stats::server_cpu_us_per_message`]).
    pub server_cpu_us: Option<Spread>,
    /// Of it, the server's time inflating and compressing, per message received, µs.
    pub server_deflate_us: Option<Spread>,
}

/// The compression rows of a run: every configuration that offered deflate and, before the
/// first that compares with it, its plain twin. Empty when no configuration offered deflate.
pub fn rows(run: &Run) -> Vec<CompressionRow> {
    let used = |i: usize| -> Vec<&Trial> { run.configs[i].trials.iter().filter(|t| stats::usable(t)).collect() };
    let offered = |i: usize| used(i).iter().any(|t| t.summary.as_ref().is_some_and(|s| s.setup.deflate.is_some()));
    let entries = &run.manifest.configs;
    let key = |i: usize| {
        let e = &entries[i];
        let strip = |v: &serde_json::Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("deflate");
            }
            v
        };
        (strip(&e.server), strip(&e.load), e.asked_rate.map(f64::to_bits))
    };
    let n = run.configs.len().min(entries.len());
    let mut rows: Vec<CompressionRow> = Vec::new();
    for i in (0..n).filter(|&i| offered(i)) {
        let twin = (0..n).find(|&j| j != i && !offered(j) && key(j) == key(i));
        if let Some(j) = twin {
            if !rows.iter().any(|r| r.name == run.configs[j].name) {
                rows.push(row(&run.configs[j].name, None, &used(j)));
            }
        }
        rows.push(row(&run.configs[i].name, twin.map(|j| run.configs[j].name.clone()), &used(i)));
    }
    rows
}

fn row(name: &str, plain: Option<String>, trials: &[&Trial]) -> CompressionRow {
    let summaries = || trials.iter().filter_map(|t| t.summary.as_ref());
    let deflates = || summaries().filter_map(|s| s.setup.deflate.as_ref());
    let mut agreements = BTreeMap::new();
    for d in deflates() {
        for (k, n) in &d.agreements {
            let k = k.strip_prefix("permessage-deflate").map(|r| r.trim_start_matches(';').trim()).unwrap_or(k);
            *agreements.entry(if k.is_empty() { "default parameters".to_owned() } else { k.to_owned() }).or_default() += n;
        }
    }
    let lat = |f: fn(&wsbench_core::hist::LatencySummary) -> f64| Spread::of(summaries().map(|s| f(&s.latency_us)));
    CompressionRow {
        name: name.to_owned(),
        plain,
        agreements,
        ratio_to_server: Spread::of(deflates().filter_map(|d| d.ratio_out)),
        ratio_to_client: Spread::of(deflates().filter_map(|d| d.ratio_in)),
        throughput: Spread::of(summaries().map(|s| s.throughput_msgs_per_s)),
        p50_us: lat(|l| l.p50),
        p99_us: lat(|l| l.p99),
        server_cpu_us: Spread::of(trials.iter().filter_map(|t| stats::server_cpu_us_per_message(t))),
        server_deflate_us: Spread::of(trials.iter().filter_map(|t| {
            let (d, s) = (t.server_deflate.as_ref()?, t.server.as_ref()?);
            (s.counts.messages_in > 0).then(|| d.cpu_s * 1e6 / s.counts.messages_in as f64)
        })),
    }
}

/// `value (+12 %)` against the plain twin's median, or the value alone.
fn versus(v: Option<Spread>, base: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    match (v, base) {
        (None, _) => "–".into(),
        (Some(v), Some(b)) if b.median > 0.0 => format!("{} ({:+.0} %)", f(v.median), 100.0 * (v.median / b.median - 1.0)),
        (Some(v), _) => f(v.median),
    }
}

fn ratio(v: Option<Spread>) -> String {
    v.map_or("–".into(), |s| crate::metric::Unit::Ratio.format(s.median))
}

/// The report's Compression section; nothing when no configuration offered deflate.
pub fn section(d: &mut Document, rows: &[CompressionRow]) {
    if rows.is_empty() {
        return;
    }
    d.heading(2, "Compression");
    d.paragraph(plain(
        "Configurations whose load generators offered permessage-deflate (RFC 7692), each below the plain configuration that differs \
         from it only in compression. The ratio is bytes on the wire over payload bytes of the compressed messages (frame headers not \
         counted), for the messages sent to the server and for those sent back: below 1 compression saved bytes. Server CPU per \
         message is the server's CPU time over its run divided by the messages it received; deflate is the part of it spent \
         inflating and compressing. Medians over trials; the change in brackets is against the plain configuration's median.",
    ));
    let by_name = |n: &str| rows.iter().find(|r| r.name == n);
    let us = |v: f64| format::latency_fixed(v);
    let table_rows = rows
        .iter()
        .map(|r| {
            let base = r.plain.as_deref().and_then(by_name);
            let b = |f: fn(&CompressionRow) -> Option<Spread>| base.and_then(f);
            let agreed = if r.plain.is_none() && r.agreements.is_empty() {
                "plain".to_owned()
            } else if r.agreements.len() == 1 {
                r.agreements.keys().next().cloned().unwrap_or_default()
            } else {
                r.agreements.iter().map(|(k, n)| format!("{k} ({n} connections)")).collect::<Vec<_>>().join(" / ")
            };
            vec![
                plain(r.name.clone()),
                plain(r.plain.clone().unwrap_or_else(|| "–".into())),
                plain(agreed),
                plain(ratio(r.ratio_to_server)),
                plain(ratio(r.ratio_to_client)),
                plain(versus(r.throughput, b(|r| r.throughput), format::rate)),
                plain(versus(r.p50_us, b(|r| r.p50_us), us)),
                plain(versus(r.p99_us, b(|r| r.p99_us), us)),
                plain(versus(r.server_cpu_us, b(|r| r.server_cpu_us), us)),
                plain(r.server_deflate_us.map_or("–".into(), |s| us(s.median))),
            ]
        })
        .collect();
    let mut table = Table::numeric(
        &[
            "configuration",
            "compared with",
            "parameters agreed",
            "ratio to server",
            "ratio to client",
            "throughput (msgs/s)",
            "p50",
            "p99",
            "server CPU/msg",
            "of which deflate",
        ],
        table_rows,
    );
    table.align[1] = crate::doc::Align::Left;
    table.align[2] = crate::doc::Align::Left;
    d.push(Block::Table(table));
    if rows.iter().any(|r| r.plain.is_some() && r.agreements.keys().all(|k| k == "declined")) {
        d.paragraph(plain(
            "Declined: the server answered the offer without the extension (a server without --deflate, or the tungstenite engine), \
             so those messages went uncompressed and the configuration measures the plain path.",
        ));
    }
    {
        let notes: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                let base = by_name(r.plain.as_deref()?)?;
                let change = |a: Option<Spread>, b: Option<Spread>| match (a, b) {
                    (Some(a), Some(b)) if b.median > 0.0 => Some(100.0 * (a.median / b.median - 1.0)),
                    _ => None,
                };
                let mut parts = Vec::new();
                if let Some(c) = change(r.throughput, base.throughput) {
                    parts.push(format!("throughput {c:+.0} %"));
                }
                if let Some(c) = change(r.p50_us, base.p50_us) {
                    parts.push(format!("p50 {c:+.0} %"));
                }
                if let Some(c) = change(r.server_cpu_us, base.server_cpu_us) {
                    parts.push(format!("server CPU per message {c:+.0} %"));
                }
                let saved = r.ratio_to_server.map(|s| format!(", sending {} of the payload's bytes", crate::metric::Unit::Ratio.format(s.median))).unwrap_or_default();
                (!parts.is_empty()).then(|| format!("{} against {}: {}{saved}", r.name, base.name, parts.join(", ")))
            })
            .collect();
        if !notes.is_empty() {
            d.paragraph(vec![t(format!("What compression cost here: {}.", notes.join("; ")))]);
        }
    }
}

//! `wsbench report`: a run directory in; `report/` with figures (PNG and SVG), `report.md` and a
//! self-contained `report.html` out.
//!
//! The report leads with one table row per configuration (medians over trials with their range).
//! A run that answers a question of its own gets a section for it next: a capacity search its
//! capacities with their spread, brackets and probes; a rate sweep its load curve and, per
//! sweep, where it became overloaded. Then it says everything that puts those figures in doubt:
//! warnings from the load generators, failed trials, missing or damaged files. It never hides a trial: what exists is shown and what
//! is missing is named. The content is built once as a [`Document`] ([`document`], pure) and
//! rendered twice: Markdown that links the PNGs beside it, and HTML with every figure's SVG inline,
//! the scenario file, and no external resource, so the one file can be mailed or archived as the
//! record of the run. Only [`report`] touches files.

use std::fs;
use std::path::{Path, PathBuf};

use wsbench_core::layout;
use wsbench_core::result::LoadgenSummary;
use wsbench_core::units::format_duration;
use wsbench_core::result::{LimitedBy, SearchOver};
use wsbench_core::units::thousands;
use wsbench_core::warning::WarningKind;

use crate::doc::{self, code, plain, strong, t, Align, Block, Document, Inline, Item, Table};
use crate::error::AnalysisError;
use crate::format::{self, TimeUnit};
use crate::load::{self, ProblemKind, Run};
use crate::plot::{
    self, CapacityProbes, Figure, FigureFiles, LatencyCdf, LatencyHeatmap, LatencyOverTime, LatencyVsIdle, LatencyVsRoomSize, LatencyVsSize, LatencyVsThroughput, PercentileDistribution, ServerResources,
    ThroughputOverTime,
};
use crate::series::{self, CapacityConfig, ConfigSeries, SweepGroup, ACHIEVED_SHARE};
use crate::stats::{self, ConfigStats, Spread, SETUP_STEPS};

/// File name of the HTML report in the report directory.
pub const REPORT_HTML: &str = "report.html";

/// The files a report wrote, all under [`ReportPaths::dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    /// `RUN_DIR/report`.
    pub dir: PathBuf,
    pub report_md: PathBuf,
    /// One self-contained page: tables, inline SVG figures, scenario, warnings.
    pub report_html: PathBuf,
    /// In the order the report shows them.
    pub figures: Vec<FigureFiles>,
}

impl ReportPaths {
    /// Every file written: the Markdown and HTML first, then each figure's PNG and SVG.
    pub fn files(&self) -> Vec<&Path> {
        [self.report_md.as_path(), self.report_html.as_path()]
            .into_iter()
            .chain(self.figures.iter().flat_map(|f| [f.png.as_path(), f.svg.as_path()]))
            .collect()
    }
}

/// Reads the run in `run_dir` and writes `run_dir/report/`: the figures as PNG and SVG,
/// `report.md` embedding them and `report.html` holding them. Trials with missing files are
/// reported, not fatal; only an unreadable manifest or an unwritable report directory is an error.
pub fn report(run_dir: &Path) -> Result<ReportPaths, AnalysisError> {
    let run = load::run(run_dir)?;
    let dir = run_dir.join(layout::REPORT_DIR);
    fs::create_dir_all(&dir).map_err(|e| AnalysisError::write(&dir, e))?;

    let series = ConfigSeries::of_run(&run);
    let stats: Vec<ConfigStats> = run.configs.iter().map(ConfigStats::of).collect();
    let m = &run.manifest;
    let subtitle = format!("{} · run {} · {}", m.scenario, m.run_id, m.host.hostname);
    // The answers a sweep or a search was run for come first; the report shows them in their
    // own sections, above the figures every run has.
    let mut figures = Vec::new();
    let capacity = series::capacity(&run);
    if !capacity.is_empty() {
        figures.push(plot::render(&CapacityProbes { configs: &capacity }, &subtitle, &dir)?);
    }
    let sweeps = series::rate_sweep(&run);
    if !sweeps.is_empty() {
        figures.push(plot::render(&LatencyVsThroughput { groups: &sweeps }, &subtitle, &dir)?);
    }
    figures.extend([
        plot::render(&LatencyOverTime { configs: &series }, &subtitle, &dir)?,
        plot::render(&LatencyHeatmap { configs: &series }, &subtitle, &dir)?,
        plot::render(&PercentileDistribution { configs: &series }, &subtitle, &dir)?,
        plot::render(&LatencyCdf { configs: &series }, &subtitle, &dir)?,
    ]);
    let sizes = series::size_sweep(&run);
    if !sizes.is_empty() {
        figures.push(plot::render(&LatencyVsSize { groups: &sizes }, &subtitle, &dir)?);
    }
    let idle = series::idle_lines(&run);
    if !idle.is_empty() {
        figures.push(plot::render(&LatencyVsIdle { lines: &idle }, &subtitle, &dir)?);
    }
    let fanout = crate::fanout::points(&run);
    if fanout.iter().any(|p| p.workload == "broadcast") {
        figures.push(plot::render(&LatencyVsRoomSize { points: &fanout }, &subtitle, &dir)?);
    }
    figures.push(plot::render(&ThroughputOverTime { configs: &series }, &subtitle, &dir)?);
    figures.push(plot::render(&ServerResources { configs: &series }, &subtitle, &dir)?);

    let content = document(&run, &stats, &figures);
    let report_md = dir.join(layout::REPORT_MD);
    fs::write(&report_md, doc::markdown(&content)).map_err(|e| AnalysisError::write(&report_md, e))?;
    let report_html = dir.join(REPORT_HTML);
    let html = doc::html(&content, &|f| fs::read_to_string(&f.svg).ok());
    fs::write(&report_html, html).map_err(|e| AnalysisError::write(&report_html, e))?;
    Ok(ReportPaths { dir, report_md, report_html, figures })
}

/// What a run found, for the terminal at its end: the results tables of the report, the
/// trials that failed and the warnings, by name.
pub fn headline(run: &Run) -> Document {
    let stats: Vec<ConfigStats> = run.configs.iter().map(ConfigStats::of).collect();
    let mut d = Document::new(format!("{} ({})", run.manifest.scenario, run.manifest.run_id));
    results_table(&mut d, &stats, !series::capacity(run).is_empty());
    // The explanations are the report's; the terminal keeps the tables.
    d.blocks.retain(|b| !matches!(b, Block::Paragraph(_)));
    let capacity = series::capacity(run);
    if !capacity.is_empty() {
        capacity_section(&mut d, &capacity, None);
        d.blocks.retain(|b| !matches!(b, Block::Paragraph(_)));
    }
    warnings(&mut d, run);
    trial_problems(&mut d, run);
    d
}

/// The same as [`headline`], for machines: the scenario, the run folder and each
/// configuration's medians and ranges over its trials.
pub fn headline_json(run: &Run) -> serde_json::Value {
    let stats: Vec<ConfigStats> = run.configs.iter().map(ConfigStats::of).collect();
    serde_json::json!({
        "scenario": run.manifest.scenario,
        "run_id": run.manifest.run_id,
        "run_dir": run.dir,
        "trials": run.manifest.trials,
        "failures": run.manifest.failures,
        "configs": stats,
    })
}

/// The whole `report.md`; figure links are relative to the report directory.
pub fn markdown(run: &Run, stats: &[ConfigStats], figures: &[FigureFiles]) -> String {
    doc::markdown(&document(run, stats, figures))
}

/// What the report says, before it is rendered as Markdown or HTML.
pub fn document(run: &Run, stats: &[ConfigStats], figures: &[FigureFiles]) -> Document {
    let mut d = Document::new(format!("wsbench report: {} ({})", run.manifest.scenario, run.manifest.run_id));
    let capacity = series::capacity(run);
    let sweeps = series::rate_sweep(run);
    let figure = |name: &str| figures.iter().find(|f| f.name == name);
    header(&mut d, run, &capacity, &sweeps);
    results_table(&mut d, stats, !capacity.is_empty());
    if !capacity.is_empty() {
        capacity_section(&mut d, &capacity, figure(CapacityProbes::NAME));
    }
    if !sweeps.is_empty() {
        sweep_section(&mut d, &sweeps, figure(LatencyVsThroughput::NAME));
    }
    let sizes = series::size_sweep(run);
    if !sizes.is_empty() {
        size_section(&mut d, &sizes, figure(LatencyVsSize::NAME));
    }
    crate::fanout::section(&mut d, &crate::fanout::points(run), figure(LatencyVsRoomSize::NAME));
    crate::compression::section(&mut d, &crate::compression::rows(run));
    churn_section(&mut d, run);
    ramp_section(&mut d, run);
    idle_section(&mut d, &series::idle_lines(run), figure(LatencyVsIdle::NAME));
    configurations(&mut d, run);
    warnings(&mut d, run);
    trial_problems(&mut d, run);
    d.heading(2, "Figures");
    if !capacity.is_empty() {
        d.paragraph(plain(
            "These figures show each configuration's probe at capacity: a search copies that probe's files into the trial folder. \
             Every probe's own files are in the trial's probe-NN/ folders.",
        ));
    }
    if !sweeps.is_empty() {
        d.paragraph(plain(
            "Every rate of a sweep is a configuration of its own. In the figures below the points of one sweep share its colour, \
             light at the lowest rate and dark at the highest.",
        ));
    }
    let shown_above = [CapacityProbes::NAME, LatencyVsThroughput::NAME, LatencyVsSize::NAME, LatencyVsRoomSize::NAME, LatencyVsIdle::NAME];
    for f in figures.iter().filter(|f| !shown_above.contains(&f.name)) {
        d.push(Block::Figure(f.clone()));
    }
    d.heading(2, "Scenario");
    d.paragraph(vec![t("The scenario file as it was run ("), code(run.manifest.scenario_file.clone()), t("):")]);
    d.push(Block::Code { language: "toml", text: run.manifest.scenario_text.clone() });
    d
}

fn header(d: &mut Document, run: &Run, capacity: &[CapacityConfig], sweeps: &[SweepGroup]) {
    let m = &run.manifest;
    let h = &m.host;
    d.heading(1, format!("wsbench report: {}", m.scenario));
    let command = m.command.join(" ");
    let items: Vec<Inline> = vec![
        vec![strong("Run:"), t(" "), code(m.run_id.clone()), t(format!(", started {}", m.started_at))],
        vec![strong("Host:"), t(format!(" {} ({} {}, {}, {} CPUs)", h.hostname, h.os, h.kernel, h.arch, h.cpus))],
        vec![strong("wsbench:"), t(format!(" {} (this report: {})", m.wsbench_version, wsbench_core::VERSION))],
        vec![strong("Trials:"), t(format!(" {} per configuration, {} configurations, run interleaved", m.trials, m.configs.len()))],
        vec![strong("Scenario:"), t(" "), code(m.scenario_file.clone()), t(", run with "), code(command)],
    ];
    let mut items: Vec<Item> = items.into_iter().map(Item::from).collect();
    if let Some(first) = capacity.first() {
        let precision = first.trials.first().map(|(_, c)| format!(", precision {}", percent(c.precision))).unwrap_or_default();
        items.push(Item::from(vec![
            strong("Capacity search:"),
            t(" the highest open-loop rate that meets "),
            code(first.slo.clone()),
            t(format!("{precision}; every trial is one search of several probes")),
        ]));
    }
    if !sweeps.is_empty() {
        let names: Vec<&str> = sweeps.iter().map(|g| g.name.as_str()).collect();
        let rates = sweeps.iter().flat_map(|g| g.points.iter().map(|p| p.asked));
        let (lo, hi) = rates.fold((f64::INFINITY, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        items.push(Item::from(vec![
            strong("Rate sweep:"),
            t(format!(
                " {} ({}), asked rates from {} to {} msgs/s; every rate is a configuration of its own",
                if sweeps.len() == 1 { "one sweep".to_string() } else { format!("{} sweeps", sweeps.len()) },
                names.join(", "),
                format::rate(lo),
                format::rate(hi)
            )),
        ]));
    }
    d.push(Block::List(items));
}

fn results_table(d: &mut Document, stats: &[ConfigStats], search: bool) {
    d.heading(2, "Results");
    d.paragraph(plain(
        "Each cell is the median over the trials that completed, then [min–max] across them. Latency runs from each message's \
         intended send time to its echo (coordinated omission corrected).",
    ));
    if search {
        d.paragraph(plain(
            "This run searched for capacity: each row is the configuration's probe at capacity, so configurations are measured at \
             different rates here. Their capacities are compared in the next section.",
        ));
    }
    let rows = stats
        .iter()
        .map(|s| {
            vec![
                plain(s.name.clone()),
                plain(format!("{}/{}", s.trials_used, s.trials_total)),
                plain(fixed_cell(s.throughput, format::rate, |v, _| format::rate(v))),
                plain(latency_cell(s.p50_us)),
                plain(latency_cell(s.p99_us)),
                plain(latency_cell(s.p99_9_us)),
                plain(latency_cell(s.max_us)),
            ]
        })
        .collect();
    d.push(Block::Table(Table::numeric(&["configuration", "trials", "throughput (msgs/s)", "p50", "p99", "p99.9", "max"], rows)));
    d.paragraph(plain(
        "Errors count failed sends and receives, corrupted echoes, lost messages and replies that answer no request sent; server CPU is the mean over the trial \
         (from processes.csv) in % of one core. Allocations per message are steady-state heap allocations counted \
         inside each process: the whole server (server.json), and the load generator's worker threads (summary.json).",
    ));
    let rows = stats
        .iter()
        .map(|s| {
            vec![
                plain(s.name.clone()),
                plain(fixed_cell(s.errors, count, |v, _| count(v))),
                plain(fixed_cell(s.server_cpu_pct, |v| format!("{v:.1} %"), |v, _| format!("{v:.1}"))),
                plain(bytes_cell(s.server_peak_rss_bytes)),
                plain(per_message_cell(s.server_allocations_per_message)),
                plain(per_message_cell(s.loadgen_worker_allocations_per_message)),
            ]
        })
        .collect();
    d.push(Block::Table(Table::numeric(
        &["configuration", "errors", "server CPU", "server peak RSS", "server allocs/msg", "loadgen hot-path allocs/msg"],
        rows,
    )));
    setup_table(d, stats);
}

/// Connection setup per step, when any configuration measured it: each cell is the p50 and the
/// p99 over a trial's connections, medians across trials.
fn setup_table(d: &mut Document, stats: &[ConfigStats]) {
    let measured: Vec<usize> = (0..SETUP_STEPS.len()).filter(|&i| stats.iter().any(|s| s.setup_us[i].p50.is_some())).collect();
    if measured.is_empty() {
        return;
    }
    d.paragraph(plain(
        "Connection setup, per connection: TCP connect, TLS handshake (wss:// only), WebSocket handshake (request written to \
         101 parsed) and the first message's round trip (in a fan-out run, each receiving connection's first delivery, one \
         way); each cell is p50 / p99 over a trial's connections.",
    ));
    let rows = stats
        .iter()
        .map(|s| {
            let mut row = vec![plain(s.name.clone())];
            for &i in &measured {
                let st = s.setup_us[i];
                row.push(plain(match (st.p50, st.p99) {
                    (Some(p50), Some(p99)) => format!("{} / {}", format::latency_fixed(p50.median), format::latency_fixed(p99.median)),
                    _ => "–".into(),
                }));
            }
            row
        })
        .collect();
    let mut head = vec!["configuration"];
    head.extend(measured.iter().map(|&i| SETUP_STEPS[i]));
    d.push(Block::Table(Table::numeric(&head, rows)));
}
/// `median [min–max]`, or the median alone when the trials agree or there was one. `bound`
/// gets the median too, so bounds can share its unit and decimals.
fn fixed_cell(s: Option<Spread>, median: impl Fn(f64) -> String, bound: impl Fn(f64, f64) -> String) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n < 2 || s.is_flat() => median(s.median),
        Some(s) => format!("{} [{}–{}]", median(s.median), bound(s.min, s.median), bound(s.max, s.median)),
    }
}

/// Allocations per message, to three significant digits: `7.00`, `0.000125 [0–0.000250]`.
fn per_message_cell(s: Option<Spread>) -> String {
    let f = |v: f64| crate::metric::Unit::PerMessage.format(v);
    fixed_cell(s, f, |v, _| f(v))
}

/// A latency cell whose range reads in the unit and decimals of its median: `48.2 µs [47.1–49.3]`.
fn latency_cell(s: Option<Spread>) -> String {
    fixed_cell(s, format::latency_fixed, |v, median| {
        let unit = TimeUnit::for_us(median);
        let d = format::decimals_for(median / unit.us_per_unit());
        format!("{:.d$}", v / unit.us_per_unit())
    })
}

/// A memory cell whose range reads in the unit of its median: `12.3 MiB [12.1–12.6]`.
fn bytes_cell(s: Option<Spread>) -> String {
    fixed_cell(s, format::bytes, |v, median| {
        let divisor = match format::bytes(median).rsplit(' ').next() {
            Some("KiB") => 1024f64,
            Some("MiB") => 1024f64.powi(2),
            Some("GiB") => 1024f64.powi(3),
            Some("TiB") => 1024f64.powi(4),
            _ => 1.0,
        };
        format!("{:.1}", v / divisor)
    })
}

fn count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A share as a percentage without needless decimals: `10 %`, `2.5 %`.
fn percent(share: f64) -> String {
    format!("{} %", format::trim_zeros(format!("{:.2}", share * 100.0)))
}

/// A rate cell: `7500` or `7500 [7000–8125]`.
fn rate_cell(s: Option<Spread>) -> String {
    fixed_cell(s, format::rate, |v, _| format::rate(v))
}

fn capacity_section(d: &mut Document, configs: &[CapacityConfig], figure: Option<&FigureFiles>) {
    d.heading(2, "Capacity");
    if configs.iter().any(|c| c.over == SearchOver::Connections) {
        d.paragraph(plain(
            "Capacity by connections: the most connections that met the objective, each at the rate the search gave it (or with the \
             total rate fixed, as for a broadcast room that grows with every connection). Each trial doubled the connections until \
             a probe failed, then bisected until the bracket [capacity, first failing) was narrower than the precision or one \
             connection. A probe fails when it misses the objective, is overloaded, has errors or lost deliveries, or connections \
             failed: the server refusing connections is a limit like any other.",
        ));
    } else {
        d.paragraph(plain(format!(
            "Capacity is the highest open-loop rate that met the objective. Each trial searched for it: doubling the rate until a probe \
             failed, then bisecting until the bracket [capacity, first failing) was narrower than the precision. A probe fails when it \
             misses the objective, achieves less than {:.0} % of its asked rate (overloaded), or has errors. Latency runs from the \
             intended send time, so a server that stalls cannot pass by stalling the load generator too.",
            ACHIEVED_SHARE * 100.0
        )));
    }
    let rows = configs
        .iter()
        .map(|c| {
            let searches = || c.trials.iter().map(|(_, r)| r);
            let capacity = if c.capacity.max <= 0.0 { "none: no probe passed".to_string() } else { rate_cell(Some(c.capacity)) };
            let brackets: Vec<String> = searches().map(|r| bracket(r, c.over)).collect();
            let converged = match (c.converged(), c.trials.len()) {
                (n, total) if n == total => "yes".to_string(),
                (0, _) => "no".to_string(),
                (n, total) => format!("{n} of {total}"),
            };
            let probes: Vec<String> = searches().map(|r| r.probes.len().to_string()).collect();
            let limited: Vec<&str> = searches().map(|r| r.limited_by.map(LimitedBy::name).unwrap_or("—")).collect();
            let capacity = if searches().any(|r| r.limited_by == Some(LimitedBy::LoadGenerator)) { format!("at least {capacity}") } else { capacity };
            vec![
                plain(c.name.clone()),
                plain(capacity),
                vec![code(c.slo.clone())],
                plain(brackets.join(", ")),
                plain(limited.join(", ")),
                plain(converged),
                plain(probes.join(", ")),
            ]
        })
        .collect();
    let unit = configs.first().map_or("msgs/s", |c| c.axis_unit());
    let (capacity_header, bracket_header) = (format!("capacity ({unit})"), format!("bracket ({unit})"));
    let mut table = Table::numeric(&["configuration", &capacity_header, "objective", &bracket_header, "limited by", "converged", "probes"], rows);
    table.align[2] = Align::Left;
    table.align[4] = Align::Left;
    d.push(Block::Table(table));
    let several = configs.iter().any(|c| c.trials.len() > 1);
    let mut caption = String::from(
        "Capacity is the median over trials, then [min–max]. The bracket runs from the capacity to the lowest rate that failed",
    );
    if several {
        caption += " (one per trial, as are the probe counts)";
    }
    caption += ". For a search run the trial folder's summary.json is the probe at capacity, copied there from its probe-NN/ folder: \
                the Results table above and the figures below show each configuration at its own capacity.";
    d.paragraph(plain(caption));
    if configs.iter().flat_map(|c| &c.trials).any(|(_, r)| r.limited_by == Some(LimitedBy::LoadGenerator)) {
        d.paragraph(plain(
            "Limited by the load generator: at the first failing rate the load generator fell behind its own schedule (it sent less \
             than asked, its send lag alone took half the objective, or a thread was saturated), every time it was tried. That rate \
             says nothing about the server, so the capacity is a lower bound: at least that many msgs/s, the load generator could \
             not offer more. Give it more threads or processes, a quieter machine, or the zero-alloc client engine.",
        ));
    }
    if configs.iter().any(|c| c.converged() < c.trials.len()) {
        d.paragraph(plain(
            "Not converged: the search ran out of probes (max_probes) or reached max_rate before the bracket was narrower than the \
             precision, so the capacity is a lower bound. Raise max_probes or max_rate to narrow it.",
        ));
    }
    if let Some(f) = figure {
        d.push(Block::Figure(f.clone()));
    }
    for c in configs {
        d.heading(3, format!("Probes of {}", c.name));
        let stat = c.objective.map(|o| o.stat.name()).unwrap_or("objective");
        let with_trial = c.trials.len() > 1;
        let mut rows = Vec::new();
        for (n, search) in &c.trials {
            for p in &search.probes {
                let value = c.probe_value(&p.latency_us).map(format::latency_fixed).unwrap_or_else(|| "—".into());
                let mut row = vec![
                    plain(p.dir.clone()),
                    plain(if p.asked_msgs_per_s > 0.0 { format::rate(p.asked_msgs_per_s) } else { "closed loop".into() }),
                    plain(format::rate(p.achieved_msgs_per_s)),
                    plain(value),
                    plain(if p.passed { "passed" } else { "failed" }),
                    plain(p.verdict.clone()),
                ];
                if c.over == SearchOver::Connections {
                    row.insert(1, plain(p.connections.map(|n| thousands(f64::from(n))).unwrap_or_default()));
                }
                if with_trial {
                    row.insert(0, plain(n.to_string()));
                }
                rows.push(row);
            }
        }
        let headers: Vec<String> = with_trial
            .then_some("trial")
            .into_iter()
            .chain(["probe"])
            .chain((c.over == SearchOver::Connections).then_some("connections"))
            .chain(["asked (msgs/s)", "achieved (msgs/s)", stat, "result", "why"])
            .map(String::from)
            .collect();
        let mut align = vec![Align::Right; headers.len()];
        let first_text = usize::from(with_trial);
        align[first_text] = Align::Left;
        let n = align.len();
        align[n - 2] = Align::Left;
        align[n - 1] = Align::Left;
        d.push(Block::Table(Table { headers, align, rows }));
    }
}

/// `[7500, 8125)`; `≥ 7500 (no probe failed)`; `< 5000 (none passed)`: in msgs/s, or in
/// connections for a search over them.
fn bracket(c: &wsbench_core::result::CapacityResult, over: SearchOver) -> String {
    let n = |v: f64| match over {
        SearchOver::Rate => format::rate(v),
        SearchOver::Connections => thousands(v),
    };
    let capacity = c.capacity_on_its_axis();
    match c.first_failing_on_its_axis() {
        Some(f) if capacity > 0.0 => format!("[{} – {})", n(capacity), n(f)),
        Some(f) => format!("< {} (none passed)", n(f)),
        None => format!("≥ {} (no probe failed)", n(capacity)),
    }
}

fn sweep_section(d: &mut Document, sweeps: &[SweepGroup], figure: Option<&FigureFiles>) {
    d.heading(2, "Rate sweep");
    d.paragraph(plain(format!(
        "Each sweep runs one configuration at several open-loop rates. Achieved is echoes received per second while the window was open (a backlog answered \
         late, during the drain, does not count), median over trials (with [min–max]); a point is overloaded when it achieved less than {:.0} % of its asked rate, and the first overloaded \
         point of a sweep is its knee. Latency runs from the intended send time (coordinated omission corrected), median over trials.",
        ACHIEVED_SHARE * 100.0
    )));
    let knees: Vec<String> = sweeps
        .iter()
        .map(|g| match (g.knee(), g.points.last()) {
            (Some(k), _) => format!(
                "{}: knee at {} msgs/s asked, {} achieved",
                g.name,
                format::rate(k.asked),
                k.achieved.map(|a| format::rate(a.median)).unwrap_or_else(|| "—".into())
            ),
            (None, Some(last)) => format!("{}: no knee up to {} msgs/s asked", g.name, format::rate(last.asked)),
            (None, None) => format!("{}: no point measured", g.name),
        })
        .collect();
    d.paragraph(vec![strong("Knees:"), t(format!(" {}.", knees.join("; ")))]);
    for g in sweeps {
        d.heading(3, g.name.clone());
        let rows = g
            .points
            .iter()
            .map(|p| {
                let share = p.achieved.map(|a| format!("{:.1} %", 100.0 * a.median / p.asked)).unwrap_or_else(|| "—".into());
                let overloaded = match (p.achieved, p.knee, p.overloaded) {
                    (None, _, _) => "—",
                    (_, true, _) => "yes (knee)",
                    (_, false, true) => "yes",
                    (_, false, false) => "no",
                };
                let warnings = if p.warnings.is_empty() { "none".to_string() } else { p.warnings.iter().map(kind_name).collect::<Vec<_>>().join(", ") };
                vec![
                    plain(format::rate(p.asked)),
                    plain(rate_cell(p.achieved)),
                    plain(share),
                    plain(latency_cell(p.p50)),
                    plain(latency_cell(p.p99)),
                    plain(latency_cell(p.p99_9)),
                    plain(overloaded),
                    plain(format!("{}/{}", p.trials_used, p.trials_total)),
                    plain(warnings),
                ]
            })
            .collect();
        let mut table = Table::numeric(
            &["asked (msgs/s)", "achieved (msgs/s)", "achieved/asked", "p50", "p99", "p99.9", "overloaded", "trials", "load-generator warnings"],
            rows,
        );
        // Rates lead, so the first column is a number; the verdict and the warnings are words.
        table.align[0] = Align::Right;
        let n = table.align.len();
        for i in [n - 3, n - 1] {
            table.align[i] = Align::Left;
        }
        d.push(Block::Table(table));
    }
    let behind = |k: &WarningKind| matches!(k, WarningKind::SendLagHigh | WarningKind::LoadgenSaturated);
    if sweeps.iter().flat_map(|g| &g.points).any(|p| p.warnings.iter().any(behind)) {
        d.paragraph(plain(
            "Where the load generator reports send lag high or saturated, it sent late and then caught up: the achieved rate can \
             look fine while the latency already includes the load generator's own delay, so such points say as much about the \
             load generator as about the server. More load-generator threads or processes separate the two.",
        ));
    }
    if let Some(f) = figure {
        d.push(Block::Figure(f.clone()));
    }
}

/// The size sweep: the fitted fixed cost and bandwidth of each group, then every size with its
/// latency and throughput in messages and in bytes per second.
fn size_section(d: &mut Document, groups: &[series::SizeGroup], figure: Option<&FigureFiles>) {
    d.heading(2, "Message size");
    d.paragraph(plain(
        "Configurations that differ only in message size, with the model t = t0 + size / bandwidth fitted to their p50 latency \
         (least squares on relative error, as the log axes show it). t0 is the fixed cost of a message whatever its size; bandwidth is \
         how fast latency grows with size: copying, masking and the path between the processes. Where one straight line does not \
         hold, the fit bends once, at a knee: messages that no longer fit the socket buffers cost more per byte (each process is \
         woken several times per message), so the bandwidth stated is that of the sizes past the knee, and the knee column gives \
         the size and the bandwidth below it. The knee is kept only when it fits better by the Bayesian information criterion, \
         which charges it for its extra parameters. On loopback all of it is this host's, not a network's.",
    ));
    let rows = groups
        .iter()
        .map(|g| {
            let (t0, bw) = match g.fit {
                Some(f) => (
                    if f.t0_us >= 0.0 { format::latency_us(f.t0_us) } else { format!("{} (below 0: the fit does not hold at small sizes)", format::latency_us(f.t0_us)) },
                    f.bandwidth_mb_s.map_or("no size cost measured".into(), |b| format!("{} MB/s", format::thousands(b))),
                ),
                None => ("—".into(), "—".into()),
            };
            let knee = match g.fit.and_then(|f| f.knee) {
                Some(k) => format!(
                    "{}; below it {}",
                    format::bytes(k.size_bytes),
                    k.below_mb_s.map_or("no size cost".into(), |b| format!("{} MB/s", format::thousands(b)))
                ),
                None if g.fit.is_some() => "none: one line".into(),
                None => "—".into(),
            };
            let (lo, hi) = (g.points[0].size as f64, g.points[g.points.len() - 1].size as f64);
            let (bulk, check) = match (&g.bulk, g.fit.and_then(|f| f.bandwidth_mb_s)) {
                (None, _) => ("—".to_string(), "—".to_string()),
                (Some(b), fitted) => (
                    format!("{} MB/s", fixed_cell(Some(b.mb_s), format::thousands, |v, _| format::thousands(v))),
                    fitted.map_or("—".into(), |f| format!("{:.2}", f / b.mb_s.median)),
                ),
            };
            vec![
                plain(if g.name.is_empty() { "all configurations".into() } else { g.name.clone() }),
                plain(format!("{} – {} ({} sizes)", format::bytes(lo), format::bytes(hi), g.points.len())),
                plain(t0),
                plain(bw),
                plain(knee),
                plain(bulk),
                plain(check),
            ]
        })
        .collect();
    d.push(Block::Table(Table::numeric(&["sweep", "sizes", "t0 (fixed cost)", "bandwidth (fitted)", "knee", "bulk transfer", "fitted / bulk"], rows)));
    if let Some(b) = groups.iter().find_map(|g| g.bulk.as_ref()) {
        d.paragraph(plain(format!(
            "Bulk transfer measures the bandwidth directly, in the same run: one connection streams {} messages back to back, \
             closed loop with {} in flight, and its payload bytes per second each way (echoes per second × size) stand beside the \
             fitted bandwidth. The fit reads the bandwidth off one message's round trip, in which sending, echoing and receiving \
             follow one another; a pipeline can overlap them where there are idle cores to overlap into, so on a quiet host the \
             bulk figure may be the higher one. The issue's check is that the two agree within 2×.",
            format::bytes(b.size as f64),
            b.in_flight
        )));
        let apart: Vec<String> = groups.iter().filter_map(bulk_disagreement).collect();
        if !apart.is_empty() {
            d.paragraph(plain(format!(
                "Not within 2× of each other: {}. Where they can part: p50 leaves out the round trips that waited for a CPU, which \
                 throughput and the bulk transfer include; a pipeline of large messages can stall on flow control (a side that stops \
                 reading while its own write waits) where one message at a time does not; and with too few sizes past the socket \
                 buffers the fit cannot see the knee and takes its slope from the middle sizes. Read the fitted bandwidth as the \
                 per-byte cost of one message on an idle path, the bulk figure as what streaming large messages achieved on this host.",
                apart.join("; ")
            )));
        }
    }
    if let Some(f) = figure {
        d.push(Block::Figure(f.clone()));
    }
    let rows = groups
        .iter()
        .flat_map(|g| g.points.iter())
        .map(|p| {
            let mb_s = p.throughput.map(|t| format!("{:.1}", t.median * p.size as f64 / 1e6)).unwrap_or_else(|| "—".into());
            vec![
                plain(p.name.clone()),
                plain(format::bytes(p.size as f64)),
                plain(latency_cell(Some(p.p50))),
                plain(latency_cell(Some(p.p99))),
                plain(rate_cell(p.throughput)),
                plain(mb_s),
            ]
        })
        .collect();
    d.push(Block::Table(Table::numeric(&["configuration", "size", "p50", "p99", "throughput (msgs/s)", "throughput (MB/s)"], rows)));
}

/// A sweep whose fitted bandwidth and bulk transfer are more than 2× apart, with what its largest
/// size measured: its p50 round trip and its throughput, each as bytes per second.
fn bulk_disagreement(g: &series::SizeGroup) -> Option<String> {
    let (b, fitted) = (g.bulk.as_ref()?, g.fit?.bandwidth_mb_s?);
    let ratio = fitted / b.mb_s.median;
    if (0.5..=2.0).contains(&ratio) {
        return None;
    }
    let last = g.points.last()?;
    let size = last.size as f64;
    let by_p50 = size / last.p50.median;
    let by_throughput = last.throughput.map(|t| format!(" and {} MB/s by its throughput", format::thousands(t.median * size / 1e6))).unwrap_or_default();
    Some(format!(
        "{}'s fit gives {} MB/s, {ratio:.1}× the bulk transfer's {} MB/s, while its largest size ({}) moved {} MB/s by its p50 round trip{by_throughput}",
        if g.name.is_empty() { "the sweep" } else { &g.name },
        format::thousands(fitted),
        format::thousands(b.mb_s.median),
        format::bytes(size),
        format::thousands(by_p50),
    ))
}

/// Runs with churn: per trial, how many connections replaced others, how fast, what their
/// handshakes took under load, and how the replaced ones closed.
fn churn_section(d: &mut Document, run: &Run) {
    let rows: Vec<Vec<Inline>> = run
        .trial_summaries()
        .filter_map(|(c, t, s)| {
            let ch = s.connections.churn.as_ref()?;
            let hs = s.setup.handshake_us.map_or("–".into(), |h| format!("{} / {}", format::latency_fixed(h.p50), format::latency_fixed(h.p99)));
            let closes = ch.closes.iter().map(|(k, n)| format!("{n}× {k}")).collect::<Vec<_>>().join(", ");
            let failed = ch.failures.values().sum::<u32>();
            Some(vec![
                plain(c.name.clone()),
                plain(t.number.to_string()),
                plain(count(ch.opened_in_window as f64)),
                plain(format::rate(ch.opened_per_s)),
                plain(hs),
                plain(format!("{} / {}", count(ch.clean as f64), count(ch.unclean as f64))),
                plain(count(f64::from(failed))),
                plain(if closes.is_empty() { "–".into() } else { closes }),
            ])
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    d.heading(2, "Connection churn");
    d.paragraph(plain(
        "Connections closed (1000, the server's reply awaited) and reopened in their place during the run, so the server accepted \
         and upgraded connections under load. Replaced counts those opened within the measured window; the handshake cell is p50 / \
         p99 over every connection of the trial, replacements included; a close is clean when the server answered 1000 with 1000.",
    ));
    d.push(Block::Table(Table::numeric(
        &["configuration", "trial", "replaced", "opened/s", "handshake p50 / p99", "clean / unclean closes", "failed to reopen", "close outcomes"],
        rows,
    )));
}

/// Connection ramps: per trial and stage, the open count the plan moves to and the fewest and
/// most connections open over the stage's intervals, as `intervals.csv` has them.
fn ramp_section(d: &mut Document, run: &Run) {
    let mut several = false;
    let rows: Vec<Vec<Inline>> = run
        .trial_summaries()
        .filter(|(_, _, s)| s.config.ramps_connections())
        .flat_map(|(c, t, s)| {
            let (p, processes) = (&s.config, shards_of(s));
            several |= processes > 1;
            let mut planned = p.first_connections();
            p.stages
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let from = planned;
                    planned = st.connections.unwrap_or(from);
                    let k = i as u32 + 1;
                    let rows = t.intervals.iter().filter(|r| r.stage == Some(k));
                    let open = match (rows.clone().map(|r| r.open_min).min(), rows.map(|r| r.open_max).max()) {
                        (Some(a), Some(b)) => format!("{} – {}", count(f64::from(a)), count(f64::from(b))),
                        _ => "–".into(),
                    };
                    vec![plain(c.name.clone()), plain(t.number.to_string()), plain(k.to_string()), plain(format!("{from} → {planned}")), plain(open), plain(processes.to_string())]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    d.heading(2, "Connection ramps");
    let mut text = String::from(
        "Per stage, the open connections the plan moves between and the fewest and most open over the stage's intervals (intervals.csv `open_min` / `open_max`; a connection replaced under churn counts as open throughout).",
    );
    if several {
        text.push_str(
            " Where a trial ran as several shards (load-generator processes, each holding its places of every count), each interval's figures are the sums of theirs, so the fewest is a lower bound and the most an upper bound of the whole's (exact where the count only rises or only falls within the interval).",
        );
    }
    d.paragraph(plain(text));
    d.push(Block::Table(Table::numeric(&["configuration", "trial", "stage", "planned", "open (fewest – most)", "shards"], rows)));
}

/// How many shards a merged result came from, as its command says (`--shard i/n`, `--shards
/// n`: merged results keep the first shard's command); 1 for a process of its own.
fn shards_of(s: &LoadgenSummary) -> u32 {
    let after = |flag: &str| s.command.windows(2).find(|w| w[0] == flag).map(|w| w[1].as_str());
    let n = match (after("--shard"), after("--shards")) {
        (Some(i_n), _) => i_n.split_once('/').and_then(|(_, n)| n.parse().ok()),
        (None, Some(n)) => n.parse().ok(),
        (None, None) => None,
    };
    n.unwrap_or(1)
}

/// The idle warm-up probe: first-message latency per idle time and setting, what the data
/// shows, and why a real network path is where the effect is larger.
fn idle_section(d: &mut Document, lines: &[series::IdleLine], figure: Option<&FigureFiles>) {
    if lines.is_empty() {
        return;
    }
    d.heading(2, "First message after idle");
    d.paragraph(plain(
        "Each connection was warmed by a few round trips, stayed idle for the time shown, then sent one message; each cell is that message's \
         round trip, p50 / p99 over the connections (medians over trials).",
    ));
    let idles: Vec<f64> = lines[0].points.iter().map(|p| p.0).collect();
    let mut head = vec!["configuration".to_string()];
    head.extend(idles.iter().map(|s| format!("after {}", format_duration(std::time::Duration::from_secs_f64(*s)))));
    let rows = lines
        .iter()
        .map(|l| {
            let mut row = vec![plain(l.name.clone())];
            row.extend(l.points.iter().map(|p| plain(format!("{} / {}", format::latency_fixed(p.1), format::latency_fixed(p.2)))));
            row
        })
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    d.push(Block::Table(Table::numeric(&head, rows)));
    // What the data shows: the longest idle against the shortest, per setting.
    let shows: Vec<String> = lines
        .iter()
        .filter(|l| l.points.len() >= 2)
        .map(|l| {
            let (a, b) = (l.points[0], l.points[l.points.len() - 1]);
            format!("{}: p50 {} after {} idle, {} after {} ({:.1}×)", l.name, format::latency_fixed(a.1), format_duration(std::time::Duration::from_secs_f64(a.0)), format::latency_fixed(b.1), format_duration(std::time::Duration::from_secs_f64(b.0)), b.1 / a.1.max(f64::MIN_POSITIVE))
        })
        .collect();
    if !shows.is_empty() {
        d.paragraph(plain(format!("What this run shows: {}.", shows.join("; "))));
    }
    d.paragraph(plain(
        "On loopback there is no congestion window to lose and no round-trip time to pay again: what idle costs here is the host's (caches, \
         CPU frequency and idle states, the scheduler waking a sleeping thread), not TCP's. \
         On a real network path the effect is expected to be larger: TCP restarts its congestion window after an idle period longer than \
         the retransmission timeout (RFC 5681, section 4.1), so the first larger message after a pause goes out in several round trips \
         unless heartbeats keep the connection from idling.",
    ));
    if let Some(f) = figure {
        d.push(Block::Figure(f.clone()));
    }
}

fn configurations(d: &mut Document, run: &Run) {
    d.heading(2, "Configurations");
    let rows = run
        .configs
        .iter()
        .map(|c| {
            let summary = c.trials.iter().find_map(|t| t.summary.as_ref());
            let server_plan = c.trials.iter().find_map(|t| t.server.as_ref()).map(|s| &s.config);
            let entry = run.manifest.configs.iter().find(|e| e.name == c.name);
            let server: Inline = match (server_plan, entry) {
                (Some(p), _) => {
                    let mut s = format!("{}, {} ({} handler), {}", p.engine.name(), p.workload.name(), p.handler.name(), p.runtime.name());
                    if p.runtime == wsbench_core::plan::Runtime::MultiThread {
                        s += &format!(" ×{}", p.workers);
                    }
                    if let Some(pause) = p.pause {
                        s += &format!(", pauses {} every {}", format_duration(pause.pause_for), format_duration(pause.every));
                    }
                    plain(s)
                }
                (None, Some(e)) if c.external_server => match e.server.get("command").and_then(|v| v.as_array()) {
                    Some(cmd) => vec![t("external: "), code(cmd.iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(" "))],
                    // Collected shards (`wsbench collect`) name the server they reached.
                    None => match e.server.get("url").and_then(|v| v.as_str()) {
                        Some(url) => vec![t("external: "), code(url.to_owned())],
                        None => plain("external command"),
                    },
                },
                _ => plain("—"),
            };
            let searched = c.trials.iter().any(|t| t.capacity.is_some());
            let load = match summary {
                Some(s) if searched => format!("{} (the probe at capacity)", describe_load(s)),
                Some(s) => describe_load(s),
                None if searched => "no probe met the objective".into(),
                None => "—".into(),
            };
            vec![plain(c.name.clone()), server, plain(load)]
        })
        .collect();
    let headers = ["configuration", "server", "load"].map(String::from).to_vec();
    d.push(Block::Table(Table { headers, align: vec![Align::Left; 3], rows }));
}

fn describe_load(s: &LoadgenSummary) -> String {
    let p = &s.config;
    let schedule = match p.rate {
        Some(r) if !p.stages.is_empty() => {
            let stages: Vec<String> = p
                .stages
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    // A connection ramp's stages say where the open count goes as well.
                    let conns = match st.connections {
                        Some(c) if p.ramps_connections() => format!(" and {c} connections"),
                        _ => String::new(),
                    };
                    if st.duration.is_zero() {
                        format!("{}. a step to {} msgs/s{conns}", i + 1, format::rate(st.rate))
                    } else {
                        format!("{}. {} to {} msgs/s{conns}", i + 1, format_duration(st.duration), format::rate(st.rate))
                    }
                })
                .collect();
            let (from, moves) = if p.ramps_connections() { (format!(" and {} connections", p.first_connections()), "the rate and the open connections move") } else { (String::new(), "the rate moves") };
            format!("open loop on a ramp from {} msgs/s{from} (the warm-up's), stages {}; {moves} linearly within each stage", format::rate(r), stages.join(", "))
        }
        Some(r) => format!("open loop at {} msgs/s", format::rate(r)),
        None => format!("closed loop, {} in flight per connection", p.in_flight),
    };
    // How the sends were paced and timed, where it is not the default: it moves the figures.
    let mut pacing = Vec::new();
    if p.rate.is_some() {
        match p.coalesce {
            wsbench_core::plan::Coalesce::Every(d) if !d.is_zero() => pacing.push(format!("sends coalesced every {}, up to that late by design", format_duration(d))),
            wsbench_core::plan::Coalesce::Every(_) => pacing.push("sends never coalesced".into()),
            wsbench_core::plan::Coalesce::Auto => {}
        }
        if !p.spin.is_zero() {
            pacing.push(format!("spinning the last {} before each send", format_duration(p.spin)));
        }
    }
    if p.rx_timestamps == wsbench_core::plan::RxTimestamps::Kernel {
        pacing.push("echo arrival from kernel receive stamps".into());
    }
    let schedule = if pacing.is_empty() { schedule } else { format!("{schedule} ({})", pacing.join("; ")) };
    let mut churn = Vec::new();
    if let Some(n) = p.churn.reconnect_after {
        churn.push(format!("reconnect after {n} messages"));
    }
    if let Some(life) = p.churn.connection_lifetime {
        let jitter = if p.churn.lifetime_jitter > 0.0 { format!(" ± {}", percent(p.churn.lifetime_jitter)) } else { String::new() };
        churn.push(format!("connections live {}{jitter}", format_duration(life)));
    }
    let churn = if churn.is_empty() { String::new() } else { format!(", {}", churn.join(", ")) };
    format!(
        "{} connections, {} {} messages, {}{churn}, {} measured after {} warm-up",
        if p.ramps_connections() { format!("up to {}", p.connections) } else { p.connections.to_string() },
        format::bytes(p.size as f64),
        p.mode.name(),
        schedule,
        format_duration(p.duration),
        format_duration(p.warmup)
    )
}

fn warnings(d: &mut Document, run: &Run) {
    d.heading(2, "Warnings");
    let mut any = false;
    for c in &run.configs {
        let mut items: Vec<Item> = Vec::new();
        for trial in &c.trials {
            match (&trial.capacity, &trial.summary) {
                // A search's summary is a copy of its probe at capacity: its warnings are among the probes'.
                (Some(search), _) => items.extend(probe_warnings(trial.number, search)),
                (None, Some(s)) => items.extend(
                    s.warnings.iter().map(|w| Item::from(vec![t(format!("trial {}: ", trial.number)), strong(kind_name(&w.kind)), t(format!(": {}", w.message))])),
                ),
                (None, None) => {}
            }
        }
        if items.is_empty() {
            continue;
        }
        any = true;
        d.heading(3, c.name.clone());
        d.push(Block::List(items));
    }
    if !any {
        d.paragraph(plain("None: no load generator reported anything that puts these figures in doubt."));
    }
}

/// What the probes of one capacity search warned, grouped by kind with a count, plus how often
/// the load generator fell behind and whether that ended the search.
fn probe_warnings(trial: u32, search: &wsbench_core::result::CapacityResult) -> Vec<Item> {
    let total = search.probes.len();
    let mut kinds: Vec<(WarningKind, Vec<&str>, &str)> = Vec::new();
    for p in &search.probes {
        for w in &p.warnings {
            match kinds.iter_mut().find(|(k, _, _)| *k == w.kind) {
                Some((_, dirs, _)) if !dirs.contains(&p.dir.as_str()) => dirs.push(&p.dir),
                Some(_) => {}
                None => kinds.push((w.kind, vec![&p.dir], &w.message)),
            }
        }
    }
    let mut items: Vec<Item> = kinds
        .iter()
        .map(|(kind, dirs, first)| {
            Item::from(vec![
                t(format!("trial {trial}: ")),
                strong(kind_name(kind)),
                t(format!(" in {} of {total} probes ({}); first: {first}", dirs.len(), dirs.join(", "))),
            ])
        })
        .collect();
    let behind = search.probes.iter().filter(|p| p.load_generator_behind).count();
    if behind > 0 {
        let ended = if search.limited_by == Some(LimitedBy::LoadGenerator) {
            format!(
                "; it ended the search, so the capacity is a lower bound: at least {} msgs/s, the load generator could not offer more",
                format::rate(search.capacity_msgs_per_s)
            )
        } else {
            String::new()
        };
        items.push(Item::from(vec![
            t(format!("trial {trial}: ")),
            strong("load generator behind"),
            t(format!(" its schedule in {behind} of {total} probes{ended}")),
        ]));
    }
    items
}

/// `SendLagHigh` -> `send lag high`, from the name the result files use.
fn kind_name(kind: &WarningKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_else(|| format!("{kind:?}"))
}

fn trial_problems(d: &mut Document, run: &Run) {
    d.heading(2, "Failed trials and missing files");
    let mut items = Vec::new();
    for c in &run.configs {
        for trial in &c.trials {
            if trial.failure.is_none() && trial.problems.is_empty() {
                continue;
            }
            let verdict = if stats::usable(trial) { "included" } else { "left out of the table and figures" };
            let line = vec![strong(c.name.clone()), t(format!(", trial {} ({verdict}):", trial.number))];
            let mut children: Vec<Inline> = Vec::new();
            if let Some(why) = &trial.failure {
                children.push(plain(format!("failed: {why}")));
            }
            for p in &trial.problems {
                children.push(plain(match &p.kind {
                    ProblemKind::Unreadable(_) => format!("unreadable: {p}"),
                    _ => p.to_string(),
                }));
            }
            items.push(Item { line, children });
        }
    }
    if items.is_empty() {
        let n: usize = run.configs.iter().map(|c| c.trials.len()).sum();
        d.paragraph(plain(if n == 1 {
            "None: the trial completed with every file in place.".to_string()
        } else {
            format!("None: all {n} trials completed with every file in place.")
        }));
    } else {
        d.push(Block::List(items));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64, min: f64, max: f64, n: usize) -> Option<Spread> {
        Some(Spread { median, min, max, n })
    }

    #[test]
    fn the_load_says_how_sends_were_paced_and_timed_when_not_by_default() {
        let mut s = crate::merge::tests::summary(50, Some(20_000.0));
        assert!(describe_load(&s).contains("open loop at 20,000 msgs/s, "), "{}", describe_load(&s));
        s.config.coalesce = wsbench_core::plan::Coalesce::Every(std::time::Duration::from_millis(1));
        s.config.rx_timestamps = wsbench_core::plan::RxTimestamps::Kernel;
        let text = describe_load(&s);
        assert!(text.contains("open loop at 20,000 msgs/s (sends coalesced every 1ms, up to that late by design; echo arrival from kernel receive stamps)"), "{text}");
    }

    #[test]
    fn cells_show_median_and_range_in_one_unit() {
        assert_eq!(latency_cell(spread(48.23, 47.1, 49.34, 3)), "48.2 µs [47.1–49.3]");
        assert_eq!(latency_cell(spread(900.0, 850.0, 1_200.0, 2)), "900 µs [850–1200]");
        assert_eq!(latency_cell(spread(59.4, 58.0, 60.8, 2)), "59.4 µs [58.0–60.8]");
        assert_eq!(latency_cell(spread(1_000.0, 1_000.0, 1_000.0, 2)), "1.00 ms");
        assert_eq!(latency_cell(None), "—");
        assert_eq!(fixed_cell(spread(0.0, 0.0, 0.0, 2), count, |v, _| count(v)), "0");
        assert_eq!(fixed_cell(spread(1.5, 0.0, 3.0, 2), count, |v, _| count(v)), "1.5 [0–3]");
        assert_eq!(bytes_cell(spread(12.5 * 1048576.0, 12.0 * 1048576.0, 13.0 * 1048576.0, 2)), "12.5 MiB [12.0–13.0]");
    }

    #[test]
    fn brackets_say_which_side_is_open() {
        let search = |capacity: f64, failing: Option<f64>| wsbench_core::result::CapacityResult {
            schema_version: wsbench_core::SCHEMA_VERSION,
            slo: "p99 <= 5 ms".into(),
            precision: 0.05,
            capacity_msgs_per_s: capacity,
            first_failing_msgs_per_s: failing,
            converged: false,
            limited_by: None,
            over: SearchOver::Rate,
            capacity_connections: None,
            first_failing_connections: None,
            probes: Vec::new(),
        };
        assert_eq!(bracket(&search(7_500.0, Some(8_125.0)), SearchOver::Rate), "[7,500 – 8,125)");
        assert_eq!(bracket(&search(400_000.0, None), SearchOver::Rate), "≥ 400,000 (no probe failed)");
        assert_eq!(bracket(&search(0.0, Some(1_250.0)), SearchOver::Rate), "< 1,250 (none passed)");
        // A search over connections brackets connections, not the rate they made.
        let by_connections = wsbench_core::result::CapacityResult {
            over: SearchOver::Connections,
            capacity_connections: Some(1_200),
            first_failing_connections: Some(1_250),
            ..search(12_000.0, Some(12_500.0))
        };
        assert_eq!(bracket(&by_connections, SearchOver::Connections), "[1,200 – 1,250)");
        assert_eq!(percent(0.1), "10 %");
        assert_eq!(percent(0.025), "2.5 %");
    }

}

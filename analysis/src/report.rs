//! `wsbench report`: a run directory in, `report/` with figures (PNG and SVG) and `report.md` out.
//!
//! The report leads with one table row per configuration (medians over trials with their range),
//! then says everything that puts those figures in doubt: warnings from the load generators,
//! failed trials, missing or damaged files. It never hides a trial: what exists is shown and what
//! is missing is named. Writing Markdown is pure ([`markdown`]); only [`report`] touches files.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use wsbench_core::layout;
use wsbench_core::result::LoadgenSummary;
use wsbench_core::units::format_duration;

use crate::error::AnalysisError;
use crate::format::{self, TimeUnit};
use crate::load::{self, ProblemKind, Run};
use crate::plot::{self, FigureFiles, LatencyOverTime, PercentileDistribution, ServerResources, ThroughputOverTime};
use crate::series::ConfigSeries;
use crate::stats::{self, ConfigStats, Spread};

/// The files a report wrote, all under [`ReportPaths::dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    /// `RUN_DIR/report`.
    pub dir: PathBuf,
    pub report_md: PathBuf,
    /// In the order the report shows them.
    pub figures: Vec<FigureFiles>,
}

impl ReportPaths {
    /// Every file written: the Markdown first, then each figure's PNG and SVG.
    pub fn files(&self) -> Vec<&Path> {
        std::iter::once(self.report_md.as_path()).chain(self.figures.iter().flat_map(|f| [f.png.as_path(), f.svg.as_path()])).collect()
    }
}

/// Reads the run in `run_dir` and writes `run_dir/report/`: four figures as PNG and SVG, and
/// `report.md` embedding them. Trials with missing files are reported, not fatal; only an
/// unreadable manifest or an unwritable report directory is an error.
pub fn report(run_dir: &Path) -> Result<ReportPaths, AnalysisError> {
    let run = load::run(run_dir)?;
    let dir = run_dir.join(layout::REPORT_DIR);
    fs::create_dir_all(&dir).map_err(|e| AnalysisError::write(&dir, e))?;

    let series: Vec<ConfigSeries> = run.configs.iter().map(ConfigSeries::of).collect();
    let stats: Vec<ConfigStats> = run.configs.iter().map(ConfigStats::of).collect();
    let m = &run.manifest;
    let subtitle = format!("{} · run {} · {}", m.scenario, m.run_id, m.host.hostname);
    let figures = vec![
        plot::render(&LatencyOverTime { configs: &series }, &subtitle, &dir)?,
        plot::render(&PercentileDistribution { configs: &series }, &subtitle, &dir)?,
        plot::render(&ThroughputOverTime { configs: &series }, &subtitle, &dir)?,
        plot::render(&ServerResources { configs: &series }, &subtitle, &dir)?,
    ];

    let report_md = dir.join(layout::REPORT_MD);
    fs::write(&report_md, markdown(&run, &stats, &figures)).map_err(|e| AnalysisError::write(&report_md, e))?;
    Ok(ReportPaths { dir, report_md, figures })
}

/// The whole `report.md`; figure links are relative to the report directory.
pub fn markdown(run: &Run, stats: &[ConfigStats], figures: &[FigureFiles]) -> String {
    let mut md = String::new();
    header(&mut md, run);
    results_table(&mut md, stats);
    configurations(&mut md, run);
    warnings(&mut md, run);
    trial_problems(&mut md, run);
    md.push_str("## Figures\n\n");
    for f in figures {
        let png = file_name(&f.png);
        let svg = file_name(&f.svg);
        let _ = write!(md, "### {}\n\n![{}]({png})\n\n{} ([SVG]({svg}))\n\n", f.title, f.title, f.how_to_read);
    }
    md
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn header(md: &mut String, run: &Run) {
    let m = &run.manifest;
    let h = &m.host;
    let _ = writeln!(md, "# wsbench report: {}\n", escape(&m.scenario));
    let _ = writeln!(md, "- **Run:** `{}`, started {}", m.run_id, m.started_at);
    let _ = writeln!(md, "- **Host:** {} ({} {}, {}, {} CPUs)", escape(&h.hostname), h.os, h.kernel, h.arch, h.cpus);
    let _ = writeln!(md, "- **wsbench:** {} (this report: {})", m.wsbench_version, wsbench_core::VERSION);
    let _ = writeln!(md, "- **Trials:** {} per configuration, {} configurations, run interleaved", m.trials, m.configs.len());
    let _ = writeln!(md, "- **Scenario:** `{}`, run with `{}`\n", m.scenario_file, m.command.join(" ").replace('`', "'"));
}

fn results_table(md: &mut String, stats: &[ConfigStats]) {
    md.push_str("## Results\n\n");
    md.push_str(
        "Each cell is the median over the trials that completed, then [min–max] across them. Latency runs from each message's \
         intended send time to its echo (coordinated omission corrected).\n\n",
    );
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 6]);
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                escape(&s.name),
                format!("{}/{}", s.trials_used, s.trials_total),
                fixed_cell(s.throughput, format::rate, |v, _| format::rate(v)),
                latency_cell(s.p50_us),
                latency_cell(s.p99_us),
                latency_cell(s.p99_9_us),
                latency_cell(s.max_us),
            ]
        })
        .collect();
    md.push_str(&table(&["configuration", "trials", "throughput (msgs/s)", "p50", "p99", "p99.9", "max"], &align, &rows));
    md.push_str(
        "\nErrors count failed sends and receives, corrupted echoes and lost messages; server CPU is the mean over the trial \
         (from processes.csv) in % of one core.\n\n",
    );
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                escape(&s.name),
                fixed_cell(s.errors, count, |v, _| count(v)),
                fixed_cell(s.server_cpu_pct, |v| format!("{v:.1} %"), |v, _| format!("{v:.1}")),
                bytes_cell(s.server_peak_rss_bytes),
            ]
        })
        .collect();
    md.push_str(&table(
        &["configuration", "errors", "server CPU", "server peak RSS"],
        &[Align::Left, Align::Right, Align::Right, Align::Right],
        &rows,
    ));
    md.push('\n');
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

fn configurations(md: &mut String, run: &Run) {
    md.push_str("## Configurations\n\n");
    let rows: Vec<Vec<String>> = run
        .configs
        .iter()
        .map(|c| {
            let summary = c.trials.iter().find_map(|t| t.summary.as_ref());
            let server_plan = c.trials.iter().find_map(|t| t.server.as_ref()).map(|s| &s.config);
            let entry = run.manifest.configs.iter().find(|e| e.name == c.name);
            let server = match (server_plan, entry) {
                (Some(p), _) => {
                    let mut s = format!("{}, {}, {}", p.engine.name(), p.workload.name(), p.runtime.name());
                    if p.runtime == wsbench_core::plan::Runtime::MultiThread {
                        let _ = write!(s, " ×{}", p.workers);
                    }
                    if let Some(pause) = p.pause {
                        let _ = write!(s, ", pauses {} every {}", format_duration(pause.pause_for), format_duration(pause.every));
                    }
                    s
                }
                (None, Some(e)) if c.external_server => match e.server.get("command").and_then(|v| v.as_array()) {
                    Some(cmd) => format!("external: `{}`", cmd.iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(" ").replace('`', "'")),
                    None => "external command".into(),
                },
                _ => "—".into(),
            };
            vec![escape(&c.name), escape(&server), summary.map(describe_load).unwrap_or_else(|| "—".into())]
        })
        .collect();
    md.push_str(&table(&["configuration", "server", "load"], &[Align::Left; 3], &rows));
    md.push('\n');
}

fn describe_load(s: &LoadgenSummary) -> String {
    let p = &s.config;
    let schedule = match p.rate {
        Some(r) => format!("open loop at {} msgs/s", format::rate(r)),
        None => format!("closed loop, {} in flight per connection", p.in_flight),
    };
    format!(
        "{} connections, {} {} messages, {}, {} measured after {} warm-up",
        p.connections,
        format::bytes(p.size as f64),
        p.mode.name(),
        schedule,
        format_duration(p.duration),
        format_duration(p.warmup)
    )
}

fn warnings(md: &mut String, run: &Run) {
    md.push_str("## Warnings\n\n");
    let mut any = false;
    for c in &run.configs {
        let with: Vec<_> = c.trials.iter().filter_map(|t| t.summary.as_ref().filter(|s| !s.warnings.is_empty()).map(|s| (t.number, s))).collect();
        if with.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(md, "### {}\n", escape(&c.name));
        for (n, s) in with {
            for w in &s.warnings {
                let _ = writeln!(md, "- trial {n}: **{}**: {}", kind_name(&w.kind), escape(&w.message));
            }
        }
        md.push('\n');
    }
    if !any {
        md.push_str("None: no load generator reported anything that puts these figures in doubt.\n\n");
    }
}

/// `SendLagHigh` -> `send lag high`, from the name the result files use.
fn kind_name(kind: &wsbench_core::warning::WarningKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_else(|| format!("{kind:?}"))
}

fn trial_problems(md: &mut String, run: &Run) {
    md.push_str("## Failed trials and missing files\n\n");
    let mut any = false;
    for c in &run.configs {
        for t in &c.trials {
            if t.failure.is_none() && t.problems.is_empty() {
                continue;
            }
            any = true;
            let verdict = if stats::usable(t) { "included" } else { "left out of the table and figures" };
            let _ = writeln!(md, "- **{}**, trial {} ({verdict}):", escape(&c.name), t.number);
            if let Some(why) = &t.failure {
                let _ = writeln!(md, "  - failed: {}", escape(why));
            }
            for p in &t.problems {
                let line = match &p.kind {
                    ProblemKind::Unreadable(_) => format!("unreadable: {p}"),
                    _ => p.to_string(),
                };
                let _ = writeln!(md, "  - {}", escape(&line));
            }
        }
    }
    if any {
        md.push('\n');
    } else {
        let n: usize = run.configs.iter().map(|c| c.trials.len()).sum();
        let _ = writeln!(md, "None: all {n} trials completed with every file in place.\n");
    }
}

/// Keeps user-supplied text from breaking a Markdown table or starting markup.
fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A Markdown table padded to aligned columns, so it reads in a terminal as well as on GitHub.
fn table(headers: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h).max(3)).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let pad = |s: &str, w: usize, a: Align| {
        let fill = " ".repeat(w.saturating_sub(width(s)));
        if a == Align::Right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut out = line(headers.iter().zip(&widths).zip(align).map(|((h, &w), &a)| pad(h, w, a)).collect());
    out += &line(
        widths
            .iter()
            .zip(align)
            .map(|(&w, &a)| if a == Align::Right { format!("{}:", "-".repeat(w - 1)) } else { format!(":{}", "-".repeat(w - 1)) })
            .collect(),
    );
    for row in rows {
        out += &line(row.iter().zip(&widths).zip(align).map(|((c, &w), &a)| pad(c, w, a)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64, min: f64, max: f64, n: usize) -> Option<Spread> {
        Some(Spread { median, min, max, n })
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
    fn tables_are_aligned_and_escaped() {
        let t =
            table(&["name", "value"], &[Align::Left, Align::Right], &[vec![escape("a|b"), "1".into()], vec!["longer name".into(), "12.5 µs".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{t}");
        assert!(t.contains("a\\|b"));
        assert!(lines[1].contains("---:"), "{t}");
    }
}

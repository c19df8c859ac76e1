//! `report()` on a fabricated run directory: the files a user opens exist, decode and say the
//! right things, and a run with failed trials and missing files still gets a report.

mod common;

use std::fs;

use wsbench_analysis::{format, report, stats::Spread};
use wsbench_core::layout;

fn median_of(values: impl IntoIterator<Item = f64>) -> f64 {
    Spread::of(values).unwrap().median
}

#[test]
fn report_writes_figures_and_markdown_with_medians() {
    let dir = common::temp_dir("report");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    let paths = report(&run.dir).unwrap();

    assert_eq!(paths.dir, run.dir.join(layout::REPORT_DIR));
    // No size sweep here: the configurations differ in their server.
    assert_eq!(paths.figures.len(), 6);
    for name in ["latency-over-time", "latency-heatmap", "percentile-distribution", "latency-cdf", "throughput-over-time", "server-resources"] {
        let png = paths.dir.join(format!("{name}.png"));
        let svg = paths.dir.join(format!("{name}.svg"));
        assert!(paths.files().contains(&png.as_path()), "{name} not listed");
        let size = fs::metadata(&png).unwrap().len();
        assert!(size > 20_000, "{name}.png is only {size} bytes");
        let img = image::open(&png).unwrap_or_else(|e| panic!("{name}.png does not decode: {e}"));
        assert_eq!(img.width(), wsbench_analysis::plot::SIZE.0, "{name}");
        if name != "latency-heatmap" {
            assert_eq!(img.height(), wsbench_analysis::plot::SIZE.1, "{name}");
        }
        let svg_text = fs::read_to_string(&svg).unwrap();
        assert!(svg_text.starts_with("<svg") && svg_text.contains("</svg>"), "{name}.svg");
        assert!(svg_text.contains("current-thread") && svg_text.contains("multi-thread"), "{name}.svg has no legend");
    }

    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.starts_with("# wsbench report: demo"), "{md}");
    for must in [
        "20261125-101500",
        "demo-host",
        wsbench_core::VERSION,
        "current-thread",
        "multi-thread",
        "](latency-over-time.png)",
        "](server-resources.png)",
    ] {
        assert!(md.contains(must), "report.md lacks {must:?}:\n{md}");
    }
    // The table's throughput is the median over the two trials of each configuration.
    for trials in &run.truth {
        let m = median_of(trials.iter().map(|t| t.summary.throughput_msgs_per_s));
        assert!(md.contains(&format::rate(m)), "median throughput {} not in:\n{md}", format::rate(m));
        let p99 = median_of(trials.iter().map(|t| t.summary.latency_us.p99));
        assert!(md.contains(&format::latency_fixed(p99)), "median p99 {} not in:\n{md}", format::latency_fixed(p99));
    }
    // Warnings are grouped per configuration and trial.
    assert!(md.contains("### multi-thread") && md.contains("- trial 2: **send lag high**"), "{md}");
    assert!(md.contains("None: all 4 trials completed"), "{md}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn failed_trials_and_missing_files_are_reported_not_fatal() {
    let dir = common::temp_dir("report-gaps");
    let mut run = common::fabricate(&dir.join("run"), &common::default_shapes());
    let t2 = layout::trial_dir(&run.dir, "current-thread", 2);
    fs::remove_file(t2.join(layout::LATENCY_LOG)).unwrap();
    fs::remove_file(t2.join(layout::PROCESSES_CSV)).unwrap();
    fs::write(t2.join(layout::INTERVALS_CSV), "this is,not\nintervals\n").unwrap();
    fs::remove_dir_all(layout::trial_dir(&run.dir, "multi-thread", 2)).unwrap();
    run.manifest.failures.push(("multi-thread".into(), 2, "the server died during the trial (signal 9)".into()));
    common::write_manifest(&run.dir, &run.manifest);

    let paths = report(&run.dir).unwrap();
    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.contains("multi-thread/trial-2: no such directory"), "{md}");
    assert!(md.contains("the server died during the trial"), "{md}");
    assert!(md.contains("current-thread/trial-2/latency.hlog: missing"), "{md}");
    assert!(md.contains("current-thread/trial-2/processes.csv: missing"), "{md}");
    assert!(md.contains("unreadable: current-thread/trial-2/intervals.csv: not a valid intervals.csv"), "{md}");
    // The failed trial is out of the medians: multi-thread's figures are trial 1's alone.
    let only = &run.truth[1][0].summary;
    assert!(md.contains(&format::rate(only.throughput_msgs_per_s)), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| multi-thread ") && l.contains(" 1/2 |")), "{md}");
    for f in &paths.figures {
        assert!(f.png.is_file() && f.svg.is_file());
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_run_with_nothing_measured_still_reports() {
    let dir = common::temp_dir("report-empty");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    for c in ["current-thread", "multi-thread"] {
        fs::remove_dir_all(run.dir.join(c)).unwrap();
    }
    let paths = report(&run.dir).unwrap();
    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.lines().filter(|l| l.contains(" 0/2 |") && l.contains("—")).count() == 2, "{md}");
    assert!(paths.figures.iter().all(|f| f.png.is_file()));
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_directory_without_a_run_is_a_clear_error() {
    let dir = common::temp_dir("report-none");
    let e = report(&dir).unwrap_err();
    assert!(e.to_string().contains("run.json"), "{e}");
    fs::remove_dir_all(&dir).ok();
}

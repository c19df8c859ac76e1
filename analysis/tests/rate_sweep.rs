//! A rate sweep (`rates = [...]`) through the report: the load curve figure, the per-sweep
//! tables with the knee at the right point, and the other figures still drawn for ten-odd
//! configurations.

mod common;

use std::fs;

use wsbench_analysis::series::{self, ConfigSeries, ACHIEVED_SHARE};
use wsbench_analysis::stats::Spread;
use wsbench_analysis::{format, load, report};

#[test]
fn the_sweep_series_finds_each_knee_where_the_server_fell_behind() {
    let dir = common::temp_dir("sweep-series");
    let run = common::fabricate_sweep(&dir.join("run"));
    let loaded = load::run(&run.dir).unwrap();
    let sweeps = series::rate_sweep(&loaded);

    assert_eq!(sweeps.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["current-thread", "multi-thread"]);
    for g in &sweeps {
        let asked: Vec<f64> = g.points.iter().map(|p| p.asked).collect();
        assert_eq!(asked, common::SWEEP_RATES.map(|r| r as f64), "points sorted by asked rate");
        assert!(g.points.iter().filter(|p| p.knee).count() <= 1, "one knee per sweep at most");
    }
    let ct = &sweeps[0];
    let knee = ct.knee().expect("current-thread saturates");
    assert_eq!(knee.asked, common::SWEEP_KNEE as f64);
    assert_eq!(knee.name, format!("current-thread@{}", common::SWEEP_KNEE));
    // Overloaded from the knee on, and only there.
    let overloaded: Vec<bool> = ct.points.iter().map(|p| p.overloaded).collect();
    assert_eq!(overloaded, [false, false, true, true]);
    assert!(sweeps[1].knee().is_none() && sweeps[1].points.iter().all(|p| !p.overloaded));

    // Achieved is the median over the point's trials, from their summaries.
    let truth = &run.truth[2]; // current-thread@4000
    let median = Spread::of(truth.iter().map(|t| t.summary.throughput_msgs_per_s)).unwrap();
    assert_eq!(knee.achieved.unwrap(), median);
    assert!(median.median < ACHIEVED_SHARE * knee.asked);
    let p99 = Spread::of(truth.iter().map(|t| t.summary.latency_us.p99)).unwrap();
    assert_eq!(knee.p99.unwrap(), p99);

    // Every point gets its sweep's colour family, ranked by rate.
    let series = ConfigSeries::of_run(&loaded);
    let families: Vec<_> = series.iter().map(|c| c.family.map(|f| (f.group, f.rank, f.size))).collect();
    assert_eq!(families[..4], [Some((0, 0, 4)), Some((0, 1, 4)), Some((0, 2, 4)), Some((0, 3, 4))]);
    assert_eq!(families[7], Some((1, 3, 4)));
    assert_eq!(sweeps.iter().map(|g| g.color_index).collect::<Vec<_>>(), [0, 1], "a sweep run colours its sweeps like configurations");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn sweeps_beside_single_configurations_take_colours_of_their_own() {
    let dir = common::temp_dir("sweep-mixed");
    let mut run = common::fabricate_sweep(&dir.join("run"));
    // The first configuration stands alone: it keeps colour 0, so the sweeps move on.
    run.manifest.configs[0].group = None;
    common::write_manifest(&run.dir, &run.manifest);
    let loaded = load::run(&run.dir).unwrap();
    let sweeps = series::rate_sweep(&loaded);
    assert_eq!(sweeps.iter().map(|g| (g.name.as_str(), g.points.len(), g.color_index)).collect::<Vec<_>>(), [("current-thread", 3, 1), ("multi-thread", 4, 2)]);
    let series = ConfigSeries::of_run(&loaded);
    assert_eq!(series[0].family, None);
    assert_eq!(series[1].family.map(|f| (f.color_index, f.rank)), Some((1, 0)));
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_report_draws_the_load_curve_and_tables_each_sweep() {
    let dir = common::temp_dir("sweep-report");
    let run = common::fabricate_sweep(&dir.join("run"));
    let paths = report(&run.dir).unwrap();

    let names: Vec<&str> = paths.figures.iter().map(|f| f.name).collect();
    assert_eq!(names[0], "latency-vs-throughput", "{names:?}");
    assert!(!names.contains(&"latency-vs-size") && !names.contains(&"capacity-probes"), "{names:?}");
    for f in &paths.figures {
        let img = image::open(&f.png).unwrap_or_else(|e| panic!("{}.png does not decode: {e}", f.name));
        assert_eq!(img.width(), wsbench_analysis::plot::SIZE.0, "{}", f.name);
        let svg = fs::read_to_string(&f.svg).unwrap();
        assert!(svg.contains("</svg>"), "{}", f.name);
    }
    let curve = paths.figures.iter().find(|f| f.name == "latency-vs-throughput").unwrap();
    let svg = fs::read_to_string(&curve.svg).unwrap();
    for must in ["current-thread", "multi-thread", "p50", "p99", "p99.9", "overloaded", "current-thread knee: asked 4,000, achieved"] {
        assert!(svg.contains(must), "latency-vs-throughput.svg lacks {must:?}");
    }
    assert!(!svg.contains("No knee"), "there is a knee");

    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.contains("**Rate sweep:** 2 sweeps (current-thread, multi-thread), asked rates from 1,000 to 8,000 msgs/s"), "{md}");
    assert!(md.contains("## Rate sweep\n"), "{md}");
    assert!(md.contains("**Knees:** current-thread: knee at 4,000 msgs/s asked"), "{md}");
    assert!(md.contains("multi-thread: no knee up to 8,000 msgs/s asked"), "{md}");
    // The sweep's figure sits in its section, before the configurations, and only once.
    let section = md.find("## Rate sweep").unwrap();
    let figure = md.find("](latency-vs-throughput.png)").unwrap();
    assert!(section < figure && figure < md.find("## Configurations").unwrap(), "{md}");
    assert_eq!(md.matches("](latency-vs-throughput.png)").count(), 1);

    // One row per asked rate: the knee at 4000, overloaded after it, not before.
    let rows = |group: &str| -> Vec<String> {
        let start = md.find(&format!("### {group}\n")).unwrap();
        md[start..].lines().skip(4).take_while(|l| l.starts_with('|')).map(str::to_owned).collect()
    };
    let ct = rows("current-thread");
    assert_eq!(ct.len(), 4, "{ct:?}");
    let cell = |row: &str, i: usize| row.split('|').nth(i + 1).unwrap().trim().to_owned();
    assert_eq!(ct.iter().map(|r| cell(r, 0)).collect::<Vec<_>>(), ["1,000", "2,000", "4,000", "8,000"]);
    assert_eq!(ct.iter().map(|r| cell(r, 6)).collect::<Vec<_>>(), ["no", "no", "yes (knee)", "yes"]);
    let achieved = Spread::of(run.truth[2].iter().map(|t| t.summary.throughput_msgs_per_s)).unwrap();
    assert!(cell(&ct[2], 1).starts_with(&format::rate(achieved.median)), "{} vs {}", ct[2], format::rate(achieved.median));
    assert!(rows("multi-thread").iter().all(|r| cell(r, 6) == "no"));
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_sweep_without_overload_says_so_in_the_figure() {
    let dir = common::temp_dir("sweep-no-knee");
    let mut run = common::fabricate_sweep(&dir.join("run"));
    // Only the multi-thread sweep, which keeps up everywhere.
    run.manifest.configs.retain(|c| c.group.as_deref() == Some("multi-thread"));
    common::write_manifest(&run.dir, &run.manifest);
    let paths = report(&run.dir).unwrap();
    let curve = paths.figures.iter().find(|f| f.name == "latency-vs-throughput").unwrap();
    let svg = fs::read_to_string(&curve.svg).unwrap();
    assert!(svg.contains("No knee: every point achieved at least 95 % of its asked rate."), "the figure says there was no overload");
    fs::remove_dir_all(&dir).ok();
}

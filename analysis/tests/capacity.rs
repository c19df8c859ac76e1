//! A capacity-search run through the report, `compare` and the CSV export: the capacity with its
//! spread over trials, the bracket and probes, the probe figure, and capacity as a metric.

mod common;

use std::fs;

use wsbench_analysis::compare::{compare, GateStatus, Selection, Settings, Threshold, Verdict};
use wsbench_analysis::export::{csv::Csv, Exporter};
use wsbench_analysis::stats::Spread;
use wsbench_analysis::{format, load, report, series};
use wsbench_core::layout;

fn median(values: impl IntoIterator<Item = f64>) -> Spread {
    Spread::of(values).unwrap()
}

#[test]
fn the_report_states_each_capacity_with_its_spread_and_plots_the_probes() {
    let dir = common::temp_dir("capacity-report");
    let search = common::fabricate_search(&dir.join("run"));
    let paths = report(&search.run.dir).unwrap();

    let names: Vec<&str> = paths.figures.iter().map(|f| f.name).collect();
    assert_eq!(names[0], "capacity-probes", "{names:?}");
    assert!(!names.contains(&"latency-vs-throughput"), "a search is no sweep: {names:?}");
    let fig = &paths.figures[0];
    let img = image::open(&fig.png).unwrap();
    assert_eq!((img.width(), img.height()), wsbench_analysis::plot::SIZE);
    let svg = fs::read_to_string(&fig.svg).unwrap();
    for must in ["objective: p99 &lt;= 2 ms", "asked rate (msgs/s)", "p99 latency from the intended send time", "probe met the objective", "probe failed"] {
        assert!(svg.contains(must), "capacity-probes.svg lacks {must:?}");
    }

    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.contains("## Capacity\n"), "{md}");
    assert!(md.contains("**Capacity search:** the highest open-loop rate that meets `p99 <= 2 ms`, precision 10 %"), "{md}");
    for (c, (name, _)) in common::TRUE_CAPACITY.iter().enumerate() {
        let found = &search.searches[c];
        let s = median(found.iter().map(|r| r.capacity_msgs_per_s));
        assert!(s.n == 3 && !s.is_flat(), "the fabricated trials disagree: {s:?}");
        let cell = format!("{} [{}–{}]", format::rate(s.median), format::rate(s.min), format::rate(s.max));
        let row = md.lines().find(|l| l.starts_with(&format!("| {name} ")) && l.contains("`p99 <= 2 ms`")).unwrap_or_else(|| panic!("no capacity row for {name}:\n{md}"));
        assert!(row.contains(&cell), "{row} lacks {cell}");
        // One bracket and one probe count per trial.
        let brackets: Vec<String> = found
            .iter()
            .map(|r| format!("[{} – {})", format::rate(r.capacity_msgs_per_s), format::rate(r.first_failing_msgs_per_s.unwrap())))
            .collect();
        assert!(row.contains(&brackets.join(", ")), "{row} lacks {brackets:?}");
        let probes: Vec<String> = found.iter().map(|r| r.probes.len().to_string()).collect();
        assert!(row.contains(&format!(" {} |", probes.join(", "))), "{row}");
        assert!(row.contains(" yes "), "every fabricated search converged: {row}");
        // Every probe is listed with its verdict.
        assert!(md.contains(&format!("### Probes of {name}")), "{md}");
    }
    assert!(md.contains("the trial folder's summary.json is the probe at capacity"), "{md}");
    assert!(md.contains("(the probe at capacity)"), "the configurations table says which load it shows");
    let probe_rows = md.lines().filter(|l| l.contains("| probe-0") || l.contains("| probe-1")).count();
    let total: usize = search.searches.iter().flatten().map(|r| r.probes.len()).sum();
    assert_eq!(probe_rows, total, "{md}");
    // The figure belongs to the capacity section, above the per-run figures.
    assert!(md.find("](capacity-probes.png)").unwrap() < md.find("## Configurations").unwrap());

    let html = fs::read_to_string(&paths.report_html).unwrap();
    assert!(html.contains("<h2>Capacity</h2>") && html.contains("<figure id=\"capacity-probes\">"));
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn capacity_is_a_metric_compare_judges_like_the_others() {
    let dir = common::temp_dir("capacity-compare");
    let search = common::fabricate_search(&dir.join("run"));
    let run = &search.run.dir;
    let fail_if: Vec<Threshold> = vec!["capacity < -5%".parse().unwrap()];

    let sel = Selection::Baseline { run: run.clone(), baseline: "current-thread".into() };
    let c = compare(&sel, &fail_if, &Settings::default()).unwrap();
    let m = c.pairs[0].metric("capacity").expect("capacity is compared");
    assert_eq!(c.pairs[0].metrics[0].metric.key, "capacity", "capacity leads the table");
    let base = median(search.searches[0].iter().map(|r| r.capacity_msgs_per_s)).median;
    let candidate = median(search.searches[1].iter().map(|r| r.capacity_msgs_per_s)).median;
    assert_eq!((m.base_median, m.candidate_median), (base, candidate));
    assert_eq!(m.base.len(), common::SEARCH_TRIALS as usize);
    // Three searches a side are too few for an interval: no verdict, and the gate does not fail.
    assert_eq!(m.verdict, Verdict::Inconclusive, "{m:?}");
    assert_eq!(c.gates[0].outcomes[0].status, GateStatus::Inconclusive);

    // The other way round the capacity fell by a quarter; an absolute floor every search missed
    // breaks even with three trials.
    let lowest_base = search.searches[1].iter().map(|r| r.capacity_msgs_per_s).fold(f64::INFINITY, f64::min);
    let floor: Vec<Threshold> = vec!["capacity < -5%".parse().unwrap(), format!("capacity < {}", lowest_base).parse().unwrap()];
    let sel = Selection::Baseline { run: run.clone(), baseline: "multi-thread".into() };
    let c = compare(&sel, &floor, &Settings::default()).unwrap();
    assert_eq!(c.pairs[0].metric("capacity").unwrap().verdict, Verdict::Inconclusive);
    assert_eq!(c.gates[0].outcomes[0].status, GateStatus::Inconclusive);
    assert_eq!(c.gates[1].outcomes[0].status, GateStatus::Breached);
    assert!(c.failed());

    // A run that searched for nothing has no capacity: the gate refuses rather than passing.
    let plain = common::fabricate(&dir.join("plain"), &common::default_shapes());
    let e = compare(&Selection::Baseline { run: plain.dir.clone(), baseline: "current-thread".into() }, &fail_if, &Settings::default()).unwrap_err();
    assert!(e.to_string().contains("no capacity values"), "{e}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_search_that_found_nothing_is_a_capacity_of_zero_not_a_missing_trial() {
    let dir = common::temp_dir("capacity-none");
    let search = common::fabricate_search(&dir.join("run"));
    // Trial 3 of current-thread: every probe failed, so no probe's files were copied.
    let tdir = layout::trial_dir(&search.run.dir, "current-thread", 3);
    // Stopped by max_probes = 2 after 2500 and 1250 msgs/s, both above a capacity of 1000.
    let mut none = common::simulate_search(1_000.0);
    none.probes.truncate(2);
    assert!(none.probes.iter().all(|p| !p.passed), "{:?}", none.probes);
    none.capacity_msgs_per_s = 0.0;
    none.first_failing_msgs_per_s = Some(1_250.0);
    none.converged = false;
    for entry in fs::read_dir(&tdir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::remove_file(path).unwrap();
        }
    }
    common::write_capacity(&tdir, &none);

    let loaded = load::run(&search.run.dir).unwrap();
    let trial = &loaded.configs[0].trials[2];
    assert!(trial.summary.is_none() && trial.capacity.is_some());
    assert!(trial.problems.is_empty(), "nothing is missing: {:?}", trial.problems);
    let caps = series::capacity(&loaded);
    let expected = median([search.searches[0][0].capacity_msgs_per_s, search.searches[0][1].capacity_msgs_per_s, 0.0]);
    assert_eq!(caps[0].capacity, expected);

    let paths = report(&search.run.dir).unwrap();
    let md = fs::read_to_string(&paths.report_md).unwrap();
    let first_failing = none.first_failing_msgs_per_s.unwrap();
    assert!(md.contains(&format!("< {} (none passed)", format::rate(first_failing))), "{md}");
    assert!(md.contains("None: all 6 trials completed with every file in place."), "{md}");
    // The results table counts the trial but has no figures from it: two of three summaries.
    let row = md.lines().find(|l| l.starts_with("| current-thread ") && l.contains(" 3/3 |")).unwrap();
    let throughput = median(search.run.truth[0][..2].iter().map(|t| t.summary.throughput_msgs_per_s));
    assert!(row.contains(&format::rate(throughput.median)), "{row}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_csv_export_carries_the_capacity_of_every_trial() {
    let dir = common::temp_dir("capacity-csv");
    let search = common::fabricate_search(&dir.join("run"));
    let run = load::run(&search.run.dir).unwrap();
    let mut out = Vec::new();
    Csv.export(&run, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (config, cap, slo) = (col("config"), col("capacity_msgs_per_s"), col("capacity_slo"));
    assert_eq!(headers.iter().next_back(), Some("capacity_probes"), "capacity columns are appended");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    for (i, row) in rows.iter().enumerate() {
        let (c, t) = (i / 3, i % 3);
        assert_eq!(&row[config], common::TRUE_CAPACITY[c].0);
        assert_eq!(row[cap].parse::<f64>().unwrap(), search.searches[c][t].capacity_msgs_per_s);
        assert_eq!(&row[slo], "p99 <= 2 ms");
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn probe_warnings_are_listed_with_counts_and_a_load_generator_limit_is_named() {
    let dir = common::temp_dir("capacity-warnings");
    let mut search = common::fabricate_search(&dir.join("run"));
    let run = search.run.dir.clone();
    // Trial 1 of the first configuration: the load generator fell behind in every failing probe,
    // the last of which ended the search.
    let r = &mut search.searches[0][0];
    let n = r.probes.len();
    for p in r.probes.iter_mut().filter(|p| !p.passed) {
        p.load_generator_behind = true;
        p.warnings = vec![wsbench_core::warning::Warning::send_lag_high(4_200.0)];
    }
    let lagged = r.probes.iter().filter(|p| !p.passed).count();
    assert!(lagged > 0);
    r.limited_by = Some(wsbench_core::result::LimitedBy::LoadGenerator);
    common::write_capacity(&layout::trial_dir(&run, &search.run.manifest.configs[0].name, 1), r);

    let md = fs::read_to_string(wsbench_analysis::report(&run).unwrap().report_md).unwrap();
    let warnings = &md[md.find("## Warnings").unwrap()..];
    let warnings = &warnings[..warnings[3..].find("\n## ").map(|i| i + 3).unwrap_or(warnings.len())];
    assert!(!warnings.contains("None:"), "{warnings}");
    assert!(warnings.contains(&format!("send lag high** in {lagged} of {n} probes")), "{warnings}");
    assert!(warnings.contains(&format!("its schedule in {lagged} of {n} probes; it ended the search")), "{warnings}");
    let capacity = &md[md.find("## Capacity").unwrap()..];
    assert!(capacity.contains("| limited by") && capacity.contains("load generator, server"), "{capacity}");
    assert!(capacity.contains("at least "), "{capacity}");
    fs::remove_dir_all(&dir).ok();
}

//! `compare` and the exporters on fabricated runs: which configurations are paired, the verdicts,
//! the gates and their exit codes, the refusals, and what each output format carries.

mod common;

use std::fs;
use std::path::Path;

use wsbench_analysis::compare::{self, compare, CompareError, GateStatus, Selection, Settings, Threshold, Verdict};
use wsbench_analysis::export::{csv::Csv, ComparisonFormat, Exporter};
use wsbench_analysis::{load, AnalysisError, Comparison};
use wsbench_core::layout;

/// Enough trials for an interval ([`compare::MIN_TRIALS`]).
const FIVE: u32 = compare::MIN_TRIALS as u32;

fn thresholds(specs: &[&str]) -> Vec<Threshold> {
    specs.iter().map(|s| s.parse().unwrap()).collect()
}

fn pair(base: &Path, candidate: &Path) -> Selection {
    Selection::Pair { base: base.to_owned(), candidate: candidate.to_owned(), config: None }
}

fn export(c: &Comparison, format: ComparisonFormat) -> String {
    let mut out = Vec::new();
    format.exporter().export(c, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_run_compared_with_itself_changes_nothing_and_passes_every_gate() {
    let dir = common::temp_dir("compare-aa");
    let run = common::fabricate_trials(&dir.join("run"), &common::default_shapes(), FIVE);
    let c = compare(&pair(&run.dir, &run.dir), &thresholds(&["p99 > +10%", "throughput < -5%", "p50 > +0%"]), &Settings::default()).unwrap();
    assert_eq!(c.pairs.len(), 2, "configurations of equal names are paired");
    for p in &c.pairs {
        assert_eq!(p.base.name, p.candidate.name);
        assert!(p.metrics.len() >= 8, "{:?}", p.metrics.iter().map(|m| m.metric.key).collect::<Vec<_>>());
        for m in &p.metrics {
            assert_eq!(m.ratio, 1.0, "{}", m.metric.key);
            assert_eq!(m.verdict, Verdict::NoSignificantChange, "{}: {:?}", m.metric.key, m.ci);
        }
        // Allocation counts were not fabricated: the metric is absent, not zero.
        assert!(p.metric("allocations").is_none());
    }
    assert!(!c.failed());
    assert_eq!(c.exit_code(), compare::EXIT_OK);
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_slower_configuration_is_worse_and_breaks_the_gate() {
    let dir = common::temp_dir("compare-baseline");
    let run = common::fabricate_trials(&dir.join("run"), &common::default_shapes(), FIVE);
    let sel = Selection::Baseline { run: run.dir.clone(), baseline: "current-thread".into() };
    let c = compare(&sel, &thresholds(&["p50 > +10%", "throughput < -5%"]), &Settings::default()).unwrap();
    assert_eq!(c.baseline.as_deref(), Some("current-thread"));
    assert_eq!(c.pairs.len(), 1);
    let p = &c.pairs[0];
    assert_eq!((p.base.name.as_str(), p.candidate.name.as_str()), ("current-thread", "multi-thread"));
    // The multi-thread shape has a 38 % higher median latency and 29 % more throughput.
    let p50 = p.metric("p50").unwrap();
    assert_eq!(p50.verdict, Verdict::Worse, "{p50:?}");
    assert!(p50.ci.unwrap().low > 1.1 && p50.ci.unwrap().contains(p50.ratio), "{p50:?}");
    assert_eq!(p.metric("throughput").unwrap().verdict, Verdict::Better);
    assert_eq!(p.metric("cpu").unwrap().verdict, Verdict::Worse);
    // Three errors in one of five trials against none: the interval reaches 1, so no verdict.
    let errors = p.metric("errors").unwrap();
    assert_eq!((errors.base_median, errors.candidate_median), (0.0, 0.0));
    assert_eq!(errors.verdict, Verdict::NoSignificantChange, "{errors:?}");

    assert_eq!(c.gates[0].outcomes[0].status, GateStatus::Breached);
    assert_eq!(c.gates[1].outcomes[0].status, GateStatus::Held, "throughput rose");
    assert!(c.failed());
    assert_eq!(c.exit_code(), compare::EXIT_BREACHED);

    // The other way round: the candidate is faster, nothing breaks.
    let sel = Selection::Baseline { run: run.dir.clone(), baseline: "multi-thread".into() };
    let c = compare(&sel, &thresholds(&["p50 > +10%"]), &Settings::default()).unwrap();
    assert_eq!(c.pairs[0].metric("p50").unwrap().verdict, Verdict::Better);
    assert_eq!(c.exit_code(), compare::EXIT_OK);
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn configuration_directories_compare_directly_and_the_same_seed_gives_the_same_answer() {
    let dir = common::temp_dir("compare-configs");
    let run = common::fabricate_trials(&dir.join("run"), &common::default_shapes(), FIVE);
    let sel = pair(&run.dir.join("current-thread"), &run.dir.join("multi-thread"));
    let a = compare(&sel, &[], &Settings::default()).unwrap();
    let b = compare(&sel, &[], &Settings::default()).unwrap();
    assert_eq!(a, b, "deterministic");
    assert_eq!(a.pairs.len(), 1);
    assert_eq!(a.pairs[0].candidate.name, "multi-thread");
    assert_eq!(a.pairs[0].metric("p50").unwrap().verdict, Verdict::Worse);

    // A run against one of its own configuration folders, chosen with --config.
    let sel = Selection::Pair { base: run.dir.clone(), candidate: run.dir.join("multi-thread"), config: Some("current-thread".into()) };
    let c = compare(&sel, &[], &Settings::default()).unwrap();
    assert_eq!((c.pairs[0].base.name.as_str(), c.pairs[0].candidate.name.as_str()), ("current-thread", "multi-thread"));
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn too_few_trials_are_inconclusive_and_never_fail_a_change_gate() {
    // The case: two trials a side (quick.toml's default), a threshold on a change.
    let dir = common::temp_dir("compare-few");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    fs::remove_dir_all(layout::trial_dir(&run.dir, "multi-thread", 2)).unwrap();
    let sel = Selection::Baseline { run: run.dir.clone(), baseline: "current-thread".into() };
    let c = compare(&sel, &thresholds(&["p50 > +10%", "p50 > 1us"]), &Settings::default()).unwrap();
    let p = &c.pairs[0];
    assert_eq!((p.candidate.trials_used, p.candidate.trials_total), (1, 2));
    assert!(p.metrics.iter().all(|m| m.ci.is_none() && m.verdict == Verdict::Inconclusive));
    assert!(p.notes.iter().any(|n| n.contains("1 of 2 trials left out")), "{:?}", p.notes);
    assert_eq!(c.gates[0].outcomes[0].status, GateStatus::Inconclusive);
    // An absolute limit every trial is past fails even so: that is what was measured.
    assert_eq!(c.gates[1].outcomes[0].status, GateStatus::Breached);
    let c = compare(&sel, &thresholds(&["p50 > +10%"]), &Settings::default()).unwrap();
    assert_eq!(c.exit_code(), compare::EXIT_OK, "nothing is judged, so nothing fails");
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("too few trials for a confident verdict (n = 1; at least 5 recommended)"), "{:?}", c.warnings());
    let text = export(&c, ComparisonFormat::Terminal);
    assert!(text.contains("inconclusive") && text.contains("too few trials for a confident verdict"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&export(&c, ComparisonFormat::Json)).unwrap();
    assert_eq!(json["pairs"][0]["metrics"][0]["verdict"], "inconclusive");
    assert_eq!(json["thresholds"][0]["outcomes"][0]["status"], "inconclusive");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn absolute_thresholds_hold_the_candidate_against_a_limit() {
    let dir = common::temp_dir("compare-absolute");
    let run = common::fabricate_trials(&dir.join("run"), &common::default_shapes(), FIVE);
    let sel = Selection::Baseline { run: run.dir.clone(), baseline: "current-thread".into() };
    let truth: Vec<f64> = run.truth[1].iter().map(|t| t.summary.latency_us.p99).collect();
    let (lo, hi) = truth.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let below = format!("p99 > {}us", (lo * 0.5).floor());
    let above = format!("p99 > {}us", (hi * 2.0).ceil());
    let c = compare(&sel, &thresholds(&[&below, &above, "throughput < 1", "p95 > +0%"]), &Settings::default()).unwrap();
    let status: Vec<GateStatus> = c.gates.iter().map(|g| g.outcomes[0].status).collect();
    assert_eq!(&status[..3], [GateStatus::Breached, GateStatus::Held, GateStatus::Held], "p99 of the candidate's trials: {truth:?}");
    assert!(c.pairs[0].metric("p95").is_some(), "p95 is a metric");
    let lines = c.gate_lines();
    assert!(lines[0].contains("breached") && lines[0].contains("multi-thread (") && lines[0].contains("n = 5"), "{lines:?}");
    let json: serde_json::Value = serde_json::from_str(&export(&c, ComparisonFormat::Json)).unwrap();
    assert_eq!(json["thresholds"][0]["kind"], "absolute");
    assert_eq!(json["thresholds"][3]["kind"], "change");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = common::temp_dir("compare-bad");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    let mut shapes = common::default_shapes();
    shapes[0].name = "other-a";
    shapes[1].name = "other-b";
    let other = common::fabricate(&dir.join("other"), &shapes);

    let e = compare(&pair(&run.dir, &other.dir), &[], &Settings::default()).unwrap_err();
    assert!(matches!(e, CompareError::NoCommonConfigs { .. }), "{e}");
    assert!(e.to_string().contains("--config NAME") && e.to_string().contains("other-a"), "{e}");

    let e = compare(&Selection::Baseline { run: run.dir.clone(), baseline: "nope".into() }, &[], &Settings::default()).unwrap_err();
    assert!(e.to_string().contains("no configuration named \"nope\"") && e.to_string().contains("current-thread, multi-thread"), "{e}");

    let e = compare(&Selection::Baseline { run: run.dir.join("current-thread"), baseline: "current-thread".into() }, &[], &Settings::default())
        .unwrap_err();
    assert!(matches!(e, CompareError::BaselineNeedsRun { .. }), "{e}");

    let e = compare(&pair(&dir.join("missing"), &run.dir), &[], &Settings::default()).unwrap_err();
    assert!(matches!(e, CompareError::Read(AnalysisError::NotAResult { .. })), "{e}");

    let e = compare(&pair(&run.dir, &run.dir), &thresholds(&["allocations > +0%"]), &Settings::default()).unwrap_err();
    assert!(e.to_string().contains("no allocations values"), "{e}");
    for e in [e, "p99 >> 3%".parse::<Threshold>().unwrap_err()] {
        assert_eq!(e.exit_code(), compare::EXIT_BAD_INPUT);
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_format_carries_the_interval() {
    let dir = common::temp_dir("compare-formats");
    let run = common::fabricate_trials(&dir.join("run"), &common::default_shapes(), FIVE);
    let sel = Selection::Baseline { run: run.dir.clone(), baseline: "current-thread".into() };
    let c = compare(&sel, &thresholds(&["p50 > +10%"]), &Settings::default()).unwrap();

    let text = export(&c, ComparisonFormat::Terminal);
    assert!(text.contains("current-thread → multi-thread"), "{text}");
    let p50 = text.lines().find(|l| l.trim_start().starts_with("p50 latency")).unwrap_or_else(|| panic!("{text}"));
    assert!(p50.contains('[') && p50.contains("worse"), "{p50}");
    assert!(text.contains("failed: p50 > +10%"), "{text}");
    assert!(!text.contains("**") && !text.contains('`'), "no markup in the terminal:\n{text}");

    let md = export(&c, ComparisonFormat::Markdown);
    assert!(md.starts_with("## wsbench compare\n"), "{md}");
    assert!(md.contains("| metric ") && md.contains("95 % CI") && md.contains("**worse**"), "{md}");
    assert!(md.contains("**failed**: `p50 > +10%`"), "{md}");

    let json: serde_json::Value = serde_json::from_str(&export(&c, ComparisonFormat::Json)).unwrap();
    assert_eq!(json["schema_version"], compare::SCHEMA_VERSION);
    assert_eq!(json["failed"], true);
    assert_eq!(json["baseline"], "current-thread");
    assert_eq!(json["resamples"], 10_000);
    let metrics = json["pairs"][0]["metrics"].as_array().unwrap();
    let p50 = metrics.iter().find(|m| m["metric"] == "p50").unwrap();
    for key in ["label", "unit", "better", "ratio", "verdict"] {
        assert!(!p50[key].is_null(), "{key}: {p50}");
    }
    assert_eq!(p50["unit"], "us");
    assert_eq!(p50["verdict"], "worse");
    assert_eq!(p50["base"]["values"].as_array().unwrap().len(), 5);
    assert!(p50["ci"]["low"].as_f64().unwrap() > 1.0);
    let gate = &json["thresholds"][0];
    assert_eq!((gate["spec"].as_str(), gate["breached"].as_bool()), (Some("p50 > +10%"), Some(true)));
    assert_eq!(gate["outcomes"][0]["status"], "breached");
    assert!((gate["limit"].as_f64().unwrap() - 1.1).abs() < 1e-12);
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_csv_export_has_a_row_per_configuration_and_trial() {
    let dir = common::temp_dir("export-csv");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    fs::remove_dir_all(layout::trial_dir(&run.dir, "multi-thread", 2)).unwrap();
    let mut out = Vec::new();
    Csv.export(&load::run(&run.dir).unwrap(), &mut out).unwrap();

    let mut reader = csv::Reader::from_reader(out.as_slice());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    for column in [
        "config", "trial", "usable", "complete", "throughput_msgs_per_s", "sent", "received", "errors", "corrupted", "lost", "latency_p50_us",
        "latency_p99_us", "latency_p99_9_us", "latency_max_us", "service_time_p50_us", "service_time_p99_us", "send_lag_p50_us", "send_lag_p99_us",
        "server_cpu_pct", "server_peak_rss_bytes", "server_allocations_per_message", "loadgen_allocations_per_message", "warnings",
    ] {
        assert!(headers.iter().any(|h| h == column), "no column {column}: {headers:?}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    let col = |row: &csv::StringRecord, name: &str| row.get(headers.iter().position(|h| h == name).unwrap()).unwrap().to_owned();
    let truth = &run.truth[0][0].summary;
    assert_eq!((col(&rows[0], "config"), col(&rows[0], "trial")), ("current-thread".into(), "1".into()));
    assert_eq!(col(&rows[0], "latency_p99_us").parse::<f64>().unwrap(), truth.latency_us.p99);
    assert_eq!(col(&rows[0], "received").parse::<u64>().unwrap(), truth.messages.received);
    assert!(col(&rows[0], "server_cpu_pct").parse::<f64>().unwrap() > 50.0);
    assert_eq!(col(&rows[0], "server_allocations_per_message"), "", "not measured: empty, not zero");
    // The trial that never ran still has its row, marked unusable and empty.
    assert_eq!((col(&rows[3], "config"), col(&rows[3], "trial"), col(&rows[3], "usable")), ("multi-thread".into(), "2".into(), "false".into()));
    assert_eq!(col(&rows[3], "throughput_msgs_per_s"), "");
    assert_eq!(col(&rows[2], "warnings"), "0");
    fs::remove_dir_all(&dir).ok();
}

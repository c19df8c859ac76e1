//! `merge_loadgen()` on files written by two fabricated load-generator processes.

mod common;

use std::fs;

use wsbench_analysis::merge_loadgen;
use wsbench_core::hist::{self, LatencySummary};
use wsbench_core::layout;
use wsbench_core::result::IntervalRow;
use wsbench_core::warning::Warning;

#[test]
fn two_processes_merge_losslessly_into_one_trial() {
    let dir = common::temp_dir("merge");
    let shapes = common::default_shapes();
    let shared = Warning::too_few_samples(10);
    let a = common::write_loadgen(&layout::shard_dir(&dir, 0), &shapes[0], 1, vec![shared.clone()], 2);
    let b = common::write_loadgen(&layout::shard_dir(&dir, 1), &shapes[1], 2, vec![shared.clone(), Warning::lost(4)], 5);
    let shards = vec![layout::shard_dir(&dir, 0), layout::shard_dir(&dir, 1)];

    let merged = merge_loadgen(&shards, &dir, false).unwrap();

    // Histograms: the merged log equals the interval-wise sum, count for count.
    let back = hist::read_interval_log(&dir.join(layout::LATENCY_LOG)).unwrap();
    assert_eq!(back.len(), a.latency.len());
    for (k, iv) in back.iter().enumerate() {
        let mut want = a.latency[k].histogram.clone();
        want.add(&b.latency[k].histogram).unwrap();
        assert_eq!(iv.histogram, want, "interval {k}");
    }
    let total = hist::total(&back);
    assert_eq!(merged.latency_us, LatencySummary::from_histogram_ns(&total));
    assert_eq!(merged.latency_us.count, a.summary.latency_us.count + b.summary.latency_us.count);

    // Counts add; rates are recomputed; warnings are a union without duplicates.
    assert_eq!(merged.messages.received, a.summary.messages.received + b.summary.messages.received);
    assert_eq!(merged.messages.errors, 7);
    assert_eq!(merged.connections.target, 20);
    assert_eq!(merged.throughput_msgs_per_s, merged.messages.received as f64 / merged.duration_s);
    assert_eq!(merged.warnings, vec![shared, Warning::lost(4)]);
    assert_eq!(merged.cpu.process_pct, 120.0);
    assert_eq!(merged.cpu.busiest_thread_pct, 58.0);
    assert!(merged.complete);

    // intervals.csv: per-second counts add up, percentiles come from the merged histograms.
    let rows: Vec<IntervalRow> = csv::Reader::from_path(dir.join(layout::INTERVALS_CSV)).unwrap().deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), back.len());
    for (row, iv) in rows.iter().zip(&back) {
        assert_eq!(row.received, iv.histogram.len());
        assert_eq!(row.p99_us, Some(LatencySummary::from_histogram_ns(&iv.histogram).p99));
    }
    let on_disk: wsbench_core::result::LoadgenSummary = serde_json::from_str(&fs::read_to_string(dir.join(layout::SUMMARY)).unwrap()).unwrap();
    assert_eq!(on_disk, merged);
    for f in [layout::SERVICE_TIME_LOG, layout::SEND_LAG_LOG] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_shard_missing_a_file_is_named() {
    let dir = common::temp_dir("merge-missing");
    let shapes = common::default_shapes();
    common::write_loadgen(&layout::shard_dir(&dir, 0), &shapes[0], 1, vec![], 0);
    common::write_loadgen(&layout::shard_dir(&dir, 1), &shapes[0], 2, vec![], 0);
    fs::remove_file(layout::shard_dir(&dir, 1).join(layout::SEND_LAG_LOG)).unwrap();
    let e = merge_loadgen(&[layout::shard_dir(&dir, 0), layout::shard_dir(&dir, 1)], &dir, false).unwrap_err();
    assert!(e.to_string().contains("loadgen-1/send_lag.hlog"), "{e}");
    assert!(merge_loadgen(&[], &dir, false).is_err());
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn unmerged_shards_are_merged_when_a_report_reads_them() {
    let dir = common::temp_dir("merge-on-read");
    let run = common::fabricate(&dir.join("run"), &common::default_shapes());
    // Replace trial 1 of the first configuration by two unmerged shards.
    let t1 = layout::trial_dir(&run.dir, "current-thread", 1);
    for f in [layout::SUMMARY, layout::LATENCY_LOG, layout::SERVICE_TIME_LOG, layout::SEND_LAG_LOG, layout::INTERVALS_CSV] {
        fs::remove_file(t1.join(f)).unwrap();
    }
    let shapes = common::default_shapes();
    common::write_loadgen(&layout::shard_dir(&t1, 0), &shapes[0], 7, vec![], 0);
    common::write_loadgen(&layout::shard_dir(&t1, 1), &shapes[0], 8, vec![], 0);

    let loaded = wsbench_analysis::load::run(&run.dir).unwrap();
    let trial = &loaded.configs[0].trials[0];
    assert!(trial.summary.is_some() && !trial.latency.is_empty());
    let md = fs::read_to_string(wsbench_analysis::report(&run.dir).unwrap().report_md).unwrap();
    assert!(md.contains("were not merged; merged them while reading"), "{md}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn results_that_measured_different_things_are_refused_unless_forced() {
    let dir = common::temp_dir("merge-mismatch");
    let shapes = common::default_shapes();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let ta = common::write_loadgen(&a, &shapes[0], 1, vec![], 0);
    let tb = common::write_loadgen(&b, &shapes[0], 2, vec![], 0);
    // b: 1 KiB text messages instead of 32 B binary ones.
    let path = b.join(layout::SUMMARY);
    let mut s: wsbench_core::result::LoadgenSummary = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    (s.config.size, s.config.mode) = (1024, wsbench_core::plan::Mode::Text);
    fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();

    let out = dir.join("out");
    let e = merge_loadgen(&[a.clone(), b.clone()], &out, false).unwrap_err();
    let text = e.to_string();
    assert!(e.is_bad_input());
    assert!(text.contains("size: 32 (") && text.contains("1024 (") && text.contains("mode: binary (") && text.contains("text ("), "{text}");
    assert!(!text.contains("engine:") && !text.contains("rate plan:"), "only differing keys are named: {text}");
    assert!(!out.join(layout::SUMMARY).exists(), "a refused merge writes nothing");

    let merged = merge_loadgen(&[a, b], &out, true).unwrap();
    assert_eq!(merged.messages.received, ta.summary.messages.received + tb.summary.messages.received);
    let on_disk: serde_json::Value = serde_json::from_str(&fs::read_to_string(out.join(layout::SUMMARY)).unwrap()).unwrap();
    assert_eq!(on_disk["config"]["differing"]["size"], serde_json::json!(["32", "1024"]));
    assert_eq!(on_disk["config"]["differing"]["mode"], serde_json::json!(["binary", "text"]));
    assert!(on_disk["config"]["differing"].get("engine").is_none());
    fs::remove_dir_all(&dir).ok();
}

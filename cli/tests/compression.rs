//! End to end: permessage-deflate and gatekeeping as scenario keys, through `wsbench run` and
//! the binaries it starts on 127.0.0.1, checked in the files and report a user reads.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Runs `wsbench run SCENARIO --results DIR --run-id r1 EXTRA...` within 120 s.
fn run(scenario: &Path, results: &Path, extra: &[&str]) -> std::process::Output {
    run_r1(scenario, results, extra, Duration::from_secs(120))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn an_origin_the_server_does_not_allow_fails_its_trial_with_403_counted() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("gated.toml");
    fs::write(
        &scenario,
        "name = \"gated\"\n[server]\nallow_origin = [\"https://a.example\"]\nconn_rate = 1000\nconn_burst = 50\n\
         [load]\nconnections = 3\nin_flight = 1\nwarmup = \"200ms\"\nduration = \"1s\"\n\
         [[configs]]\nname = \"allowed\"\nload = { origin = \"https://a.example\" }\n\
         [[configs]]\nname = \"foreign\"\nload = { origin = \"https://evil.example\" }\n",
    )
    .unwrap();
    let results = tmp.path().join("results");
    let out = run(&scenario, &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one trial must fail: {stderr}");
    let dir = results.join("gated/r1");
    let ok = summary(&dir.join("allowed/trial-1"));
    assert!(ok.passed() && ok.connections.established == 3, "{:?}", ok.connections);
    let refused = summary(&dir.join("foreign/trial-1"));
    assert_eq!(refused.connections.failures.get("HTTP status 403"), Some(&3), "{:?}", refused.connections);
    let server = json(&dir.join("foreign/trial-1/server.json"));
    assert_eq!(server["limits_reached"]["refused_origin"], 3, "{server}");
    assert_eq!(server["config"]["gate"]["allow_origins"][0], "https://a.example");
    assert_eq!(server["config"]["gate"]["conn_burst"], 50);
    assert!(stderr.contains("foreign"), "the failed configuration is named: {stderr}");
}

#[test]
fn deflate_on_a_tungstenite_engine_is_a_scenario_error_naming_key_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let out = wsbench()
        .arg("run")
        .arg(repo_file("scenarios/deflate.toml"))
        .args(["--dry-run", "--set", "load.engine=tungstenite", "--results"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config `deflate`: load key `deflate` needs load key `engine = \"zero-alloc\"`"), "{stderr}");
    assert!(stderr.contains("deflate.toml:"), "the file is named: {stderr}");
}

#[test]
fn the_deflate_scenario_reports_a_compression_ratio_below_1_beside_plain() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let short = ["--set", "trials=1", "--set", "load.duration=1s", "--set", "load.warmup=300ms", "--set", "load.connections=4"];
    let out = run(&repo_file("scenarios/deflate.toml"), &results, &short);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = results.join("deflate/r1");

    // What the binaries wrote: plain offered nothing, deflate agreed on every connection.
    assert!(summary(&dir.join("plain/trial-1")).setup.deflate.is_none());
    let d = summary(&dir.join("deflate/trial-1")).setup.deflate.expect("summary.json has deflate");
    assert_eq!(d.agreements.get("declined"), None, "{d:?}");
    assert_eq!(d.agreements.values().sum::<u32>(), 4, "{d:?}");
    let server = json(&dir.join("deflate-no-context/trial-1/server.json"));
    assert_eq!(server["deflate"]["agreements"][0]["server_no_context_takeover"], true, "{server}");

    // What the report says: a Compression section whose deflate rows compare with plain.
    let md = fs::read_to_string(dir.join("report/report.md")).unwrap();
    let section = md.split("## Compression").nth(1).expect("report.md has a Compression section");
    let section = section.split("\n## ").next().unwrap();
    let cells = |name: &str| -> Vec<String> {
        let line = section.lines().find(|l| l.starts_with(&format!("| {name} "))).unwrap_or_else(|| panic!("no row {name}: {section}"));
        line.split('|').map(|c| c.trim().to_owned()).collect()
    };
    let row = cells("deflate");
    assert_eq!(row[2], "plain", "{row:?}");
    assert!(row[3].contains("server_max_window_bits="), "{row:?}");
    for col in [4, 5] {
        let ratio: f64 = row[col].parse().unwrap_or_else(|_| panic!("ratio cell {col}: {row:?}"));
        assert!(ratio > 0.0 && ratio < 1.0, "the filler compresses: {row:?}");
    }
    assert!(row[6].contains(" %)"), "throughput against plain: {row:?}");
    assert!(cells("deflate-no-context")[3].contains("client_no_context_takeover"));
    assert_eq!(cells("plain")[3], "plain");

    // compare knows the ratio: an absolute limit every trial is past fails (exit 1).
    let compare = |limit: &str| {
        wsbench().arg("compare").arg(dir.join("deflate")).arg(dir.join("deflate-no-context")).args(["--fail-if", limit]).output().unwrap().status.code()
    };
    assert_eq!(compare("compression > 0.9"), Some(0));
    assert_eq!(compare("compression > 0.0001"), Some(1));
}

#[test]
fn a_size_sweep_measures_a_bulk_transfer_and_the_report_puts_it_beside_the_fit() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("sweep.toml");
    fs::write(
        &scenario,
        "name = \"sweep\"\n[server]\nengine = \"zero-alloc\"\nmax_message_size = \"2MiB\"\n\
         [load]\nengine = \"zero-alloc\"\nconnections = 1\nin_flight = 1\nwarmup = \"300ms\"\nduration = \"1s\"\n\
         sizes = [\"1KiB\", \"16KiB\", \"64KiB\", \"256KiB\", \"1MiB\"]\n",
    )
    .unwrap();
    let results = tmp.path().join("results");
    let out = run(&scenario, &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = results.join("sweep/r1");

    // The bulk configuration ran in the same run: one connection, the largest size, 2 in flight.
    let manifest = json(&dir.join("run.json"));
    let bulk = manifest["configs"].as_array().unwrap().iter().find(|c| c["name"] == "bulk").expect("run.json lists `bulk`");
    assert_eq!((bulk["load"]["bulk"].as_bool(), bulk["load"]["size"].as_u64(), bulk["load"]["in_flight"].as_u64()), (Some(true), Some(1 << 20), Some(u64::from(wsbench_core::scenario::BULK_IN_FLIGHT))));
    let s = summary(&dir.join("bulk/trial-1"));
    assert!(s.passed() && s.messages.received > 0 && s.config.connections == 1, "{:?}", s.messages);

    // The report's size table: fitted bandwidth, its knee, bulk transfer and their ratio, consistent.
    let md = fs::read_to_string(dir.join("report/report.md")).unwrap();
    let section = md.split("## Message size").nth(1).expect("a Message size section").split("\n## ").next().unwrap();
    let row: Vec<&str> = section.lines().find(|l| l.starts_with("| all configurations")).expect("the sweep's row").split('|').map(str::trim).collect();
    let mb_s = |cell: &str| -> f64 { cell.trim_end_matches(" MB/s").replace(',', "").parse().unwrap_or_else(|_| panic!("{cell:?} in {row:?}")) };
    let (fitted, bulk_mb_s) = (mb_s(row[4]), mb_s(row[6]));
    assert!(row[5] == "none: one line" || row[5].contains("; below it "), "{row:?}");
    let ratio: f64 = row[7].parse().unwrap();
    assert!(bulk_mb_s > 0.0 && fitted > 0.0, "{row:?}");
    assert!((ratio - fitted / bulk_mb_s).abs() <= 0.02 * ratio + 0.01, "{row:?}");
    // The bulk figure is the bulk trial's own: echoes per second × size.
    let measured = s.throughput_msgs_per_s * (1u64 << 20) as f64 / 1e6;
    assert!((bulk_mb_s - measured).abs() <= 0.01 * measured + 1.0, "{bulk_mb_s} vs {measured}");
    // The check, 2×: when the two part further, the report says so and why.
    let apart = !(0.5..=2.0).contains(&ratio);
    assert_eq!(section.contains("Not within 2× of each other: the sweep's fit gives"), apart, "ratio {ratio}: {section}");
    eprintln!("size sweep: fitted {fitted} MB/s, bulk {bulk_mb_s} MB/s, fitted/bulk {ratio}");
}
